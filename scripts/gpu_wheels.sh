#!/bin/bash
# The wheels a lent GPU machine lacks for `run --format fits` and benchmarks/bench_gpu.py: its image has torch,
# numpy, scipy, typer, rich, safetensors, pillow and tifffile, not astropy (/work/.library/device/KINDS.md).
# Here, once per session (pip download works here, nothing can be fetched there):
#   echo /.whl/ >> .git/info/exclude; scripts/gpu_wheels.sh
# then every device call carries [".whl"] and begins with
#   python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl \
#     && export PYTHONPATH=/tmp/site:$PWD || exit; bash scripts/gpu_check.sh $OUT
set -eu
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .whl astropy==8.0.2 pyerfa==2.0.1.5 astropy-iers-data pyavm==0.9.9 pypng==0.20220715.0
ls -la .whl
