#!/bin/bash
# The CUDA path of `astroenhance run` on a lent GPU, in one call of at most BUDGET seconds (default 540; issue 19).
# Parts run most telling first; each has its own time limit, cut to what the budget has left, and writes into
# OUTDIR as it goes, so a slow part still leaves the others' numbers.
#   1. the table: a 4096^2 frame, bf16, enhance_array and run --format fits, per stage (with where the
#      host's time goes: --profile)
#   2. the same frame with both networks stubbed (--stub-networks: everything around them), enhance_array, with its
#      tensor operations and waits for the device (--count-ops)
#   3. fp32/bf16/fp16 on a 512^2 frame: agreement with CPU fp32, RRDBNet x4 beside, per-stage seconds
#   4. `run` end to end on the shipped example
#   5. the 4096^2 frame in fp32; bf16 variants on 2048^2: 32 tiles per call, channels-last weights, the pieces copied
#      in the engine's thread, 128 rows per finishing step (VARIANTS=0 leaves them out)
# Usage: scripts/gpu_check.sh OUTDIR   (astroenhance importable: see scripts/gpu_wheels.sh for the GPU image)
# Here, first: scripts/gpu_wheels.sh; PYTHON=.venv/bin/python scripts/gpu_train_hst.sh --prepare (the benchmark frame
# into .gpu_data/). The device call (carry .whl and .gpu_data; timeout 600):
#   python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl \
#     && export PYTHONPATH=/tmp/site:$PWD && bash scripts/gpu_check.sh $OUT
# Compare with the 2026-12-04 H200 figures in docs/experiments.md (before the sinks took tensors and the block
# projection lost its bisection).
set -u
out=$1; mkdir -p "$out"
deadline=$(( $(date +%s) + ${BUDGET:-540} ))
export PYTHONUNBUFFERED=1
b="python3 benchmarks/bench_gpu.py --device cuda --workdir /tmp/ae-gpu"
limit() {  # the smaller of $1 seconds and what the budget has left (0: skip the part)
  local left=$(( deadline - $(date +%s) - 5 ))
  [ "$left" -lt 20 ] && echo 0 || echo $(( $1 < left ? $1 : left ))
}
part() {  # part SECONDS FILE COMMAND...: run COMMAND within its limit, appending its output to OUTDIR/FILE
  local t; t=$(limit "$1"); local f=$2; shift 2
  [ "$t" -eq 0 ] && { echo "(skipped, no time left: $*)" | tee -a "$out/$f"; return; }
  timeout "$t" "$@" 2>&1 | tee -a "$out/$f"
}
nvidia-smi --query-gpu=name,memory.total,memory.used --format=csv 2>&1 | tee "$out/gpu.txt"
part 200 2_4096.txt $b --size 4096 --precisions bf16 --skip rrdb,agreement --profile 20
part 120 3_variants.txt $b --size 4096 --precisions bf16 --skip file,rrdb,agreement --stub-networks --count-ops
part 150 1_small.txt $b --size 512 --precisions fp32,bf16,fp16
frame=examples/abell_2744_group_of_galaxies_f105w.fits.gz
for prec in fp32 bf16; do
  TIMEFORMAT="run --device cuda --precision $prec: %R s wall"
  t=$(limit 60); [ "$t" -eq 0 ] && continue
  { time timeout "$t" python3 -m astroenhance run $frame -o "/tmp/ae-gpu/run-$prec" --device cuda --precision $prec \
      --format fits -q ; } 2>&1 | tail -2
done | tee "$out/4_run.txt"
part 120 2_4096.txt $b --size 4096 --precisions fp32 --skip rrdb,agreement
for opt in $([ "${VARIANTS:-1}" = 1 ] && echo "--batch=32 --channels-last --no-copy-thread --finish-rows=128"); do
  part 60 3_variants.txt $b --size 2048 --precisions bf16 --skip file,rrdb,agreement $opt
done
echo "gpu_check: $(( ${BUDGET:-540} - (deadline - $(date +%s)) )) s"
