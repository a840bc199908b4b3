#!/bin/bash
# The CUDA path of `astroenhance run` on a lent GPU, in one call (issue 19): per-stage speed on a SIZE^2 frame in
# fp32/bf16/fp16 beside RRDBNet x4 and the agreement with CPU fp32 (benchmarks/bench_gpu.py), bf16 at larger batches,
# and `run` end to end on the shipped example.
# Usage: scripts/gpu_check.sh OUTDIR [SIZE]   (astroenhance importable there: pip install -e . with its dependencies)
set -u
out=$1; size=${2:-4096}; mkdir -p "$out"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,memory.used --format=csv 2>&1 | tee "$out/gpu.txt"
python3 benchmarks/bench_gpu.py --device cuda --size "$size" --workdir /tmp/ae-gpu 2>&1 | tee "$out/bench_gpu.txt"
for opt in "--batch 8" "--batch 32" "--channels-last"; do
  python3 benchmarks/bench_gpu.py --device cuda --size "$size" --precisions bf16 $opt --workdir /tmp/ae-gpu 2>&1 \
    | grep -v "^RRDB\|vs cpu" | tee -a "$out/bench_gpu_variants.txt"
done
frame=examples/abell_2744_group_of_galaxies_f105w.fits.gz
for prec in fp32 bf16; do
  /usr/bin/time -f "run --device cuda --precision $prec: %e s wall, %M KB RSS" \
    python3 -m astroenhance run $frame -o "$out/run-$prec" --device cuda --precision $prec --format fits -q 2>&1 | tail -1
done | tee "$out/run.txt"
rm -rf "$out"/run-*
