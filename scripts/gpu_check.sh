#!/bin/bash
# The CUDA path of `astroenhance run` on a lent GPU, in one call of about 6-8 minutes (issue 19); every part has its
# own time limit and writes into OUTDIR as it goes, so a slow part still leaves the others' numbers.
#   1. fp32/bf16/fp16 on a 512^2 frame: agreement with CPU fp32, RRDBNet x4 beside, per-stage seconds
#   2. the table: a 4096^2 frame, bf16 (with where the host's time goes: --profile) and fp32,
#      enhance_array and run --format fits, per stage
#   3. bf16 variants on 2048^2: 32 tiles per call, channels-last weights (VARIANTS=0 leaves them out); the 4096^2
#      frame with both networks stubbed (--stub-networks: everything around them) and its operation/wait counts
#   4. `run` end to end on the shipped example
# Usage: scripts/gpu_check.sh OUTDIR   (astroenhance importable: see scripts/gpu_wheels.sh for the GPU image)
set -u
out=$1; mkdir -p "$out"
export PYTHONUNBUFFERED=1
b="python3 benchmarks/bench_gpu.py --device cuda --workdir /tmp/ae-gpu"
nvidia-smi --query-gpu=name,memory.total,memory.used --format=csv 2>&1 | tee "$out/gpu.txt"
timeout 150 $b --size 512 --precisions fp32,bf16,fp16 2>&1 | tee "$out/1_small.txt"
timeout 200 $b --size 4096 --precisions bf16 --skip rrdb,agreement --profile 20 2>&1 | tee "$out/2_4096.txt"
timeout 120 $b --size 4096 --precisions fp32 --skip rrdb,agreement 2>&1 | tee -a "$out/2_4096.txt"
for opt in $([ "${VARIANTS:-1}" = 1 ] && echo "--batch=32 --channels-last"); do
  timeout 60 $b --size 2048 --precisions bf16 --skip file,rrdb,agreement $opt 2>&1 | tee -a "$out/3_variants.txt"
done
timeout 150 $b --size 4096 --precisions bf16 --skip rrdb,agreement --stub-networks --count-ops 2>&1 \
  | tee -a "$out/3_variants.txt"
frame=examples/abell_2744_group_of_galaxies_f105w.fits.gz
for prec in fp32 bf16; do
  TIMEFORMAT="run --device cuda --precision $prec: %R s wall"
  { time timeout 60 python3 -m astroenhance run $frame -o "/tmp/ae-gpu/run-$prec" --device cuda --precision $prec \
      --format fits -q ; } 2>&1 | tail -2
done | tee "$out/4_run.txt"
