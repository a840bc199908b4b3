#!/bin/bash
# Train the telescope SR network (issue 15) on a lent GPU within one call: a short run to measure the speed, then
# MINUTES of training (bf16, pairs made ahead by CPU workers, cosine schedule over the steps that fit), the weights
# exported into OUTDIR/W and scored on the validation frame beside the shipped `hst` (evaluate --task hst).
# Here, first:  scripts/gpu_train_hst.sh --prepare   (the training and validation frames into .gpu_data/, ignored by
#   git; 6 MB) and scripts/gpu_wheels.sh; the device call carries [".whl", ".gpu_data"] and runs
#   python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl \
#     && export PYTHONPATH=/tmp/site:$PWD && bash scripts/gpu_train_hst.sh $OUT 7 srresnet-12x48
# The frames are the split of docs/experiments.md (training: SLACS 1 and 2 at 0.03" and 0.05", SLACS 1430+4105;
# validation: SLACS 2303+1422); the test frames stay here and are scored here, once, on the weights brought back.
set -u
D=../shared/data/fits/hst_real
if [ "${1:-}" = "--prepare" ]; then
  mkdir -p .gpu_data/train .gpu_data/val
  cp $D/slacs1_030mas_500px_sci_wht_psf.fits.gz $D/slacs2_030mas_500px_sci_wht_psf.fits.gz \
     $D/slacs1_050mas_301px_sci_wht_psf.fits.gz $D/slacs2_050mas_301px_sci_wht_psf.fits.gz \
     $D/slacs1430p4105_050mas_image.fits .gpu_data/train/
  cp $D/slacs2303p1422_050mas_image.fits .gpu_data/val/
  # the speed benchmark's frame (benchmarks/bench_memory.py reads it here when ../shared is absent): its SCI alone
  ${PYTHON:-python3} -c "from astropy.io import fits; h = fits.open('../shared/data/fits/hst/j8bt06nyq_flt.fits'); \
fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(h['SCI'].data, h['SCI'].header, name='SCI')]).writeto(\
'.gpu_data/j8bt06nyq_flt.fits.gz', overwrite=True)"
  grep -qs "^/.gpu_data/" .git/info/exclude || echo /.gpu_data/ >> .git/info/exclude
  du -sh .gpu_data; exit 0
fi
out=$1; minutes=${2:-7}; arch=${3:-srresnet-12x48}
export PYTHONUNBUFFERED=1
mkdir -p "$out"
T=(); for f in .gpu_data/train/*; do T+=(--truth "$f"); done
# DEVICE=cpu PRECISION=fp32 WORKERS=1 BATCH=4 try the script here (a dry run of a minute); CROP=48: larger crops
# (docs/experiments.md, twenty-ninth session: context or the count of real crops?)
common=(--arch "$arch" --batch "${BATCH:-32}" --crop "${CROP:-32}" --device "${DEVICE:-cuda}" --precision "${PRECISION:-bf16}"
        --workers "${WORKERS:-12}" --synthetic 0.3 --backgrounds 0.6 --sharp-psfs 0.6 --lr 2e-4
        --edge-weight 0.5 --source-weight 15  # the shipped hst's loss (docs/experiments.md, sessions 21 and 26)
        --val .gpu_data/val/slacs2303p1422_050mas_image.fits "${T[@]}")
# 1. speed: 300 steps
${PYTHON:-python3} -m astroenhance train sr-hst -o /tmp/hst-speed --iters 300 --val-every 300 "${common[@]}" 2>&1 | tail -2 \
  | tee "$out/speed.txt"
rate=$(grep -o "[0-9.]* it/s" "$out/speed.txt" | tail -1 | cut -d' ' -f1)
iters=$(python3 -c "print(max(500, int(float('${rate:-5}') * 60 * $minutes * 0.9)))")
echo "rate ${rate} it/s -> $iters steps in $minutes minutes" | tee -a "$out/speed.txt"
# 2. the run (the time limit is a guard: the schedule is over $iters steps)
${PYTHON:-python3} -m astroenhance train sr-hst -o /tmp/hst-gpu --iters "$iters" --val-every $((iters / 8)) \
  --minutes "$(python3 -c "print($minutes + 1)")" "${common[@]}" 2>&1 | tee "$out/train.txt"
cp /tmp/hst-gpu/log.csv /tmp/hst-gpu/config.json "$out/"
${PYTHON:-python3} -m astroenhance weights export /tmp/hst-gpu --id "sr-hst-${arch#srresnet-}" --weights-dir "$out/W" --mode hst
# 3. the validation frame through run's code path: the new network, then the shipped one
{ echo "== new: $arch"; timeout 120 ${PYTHON:-python3} -m astroenhance evaluate --task hst --data .gpu_data/val --weights "$out/W" \
    --noise-frames 0
  echo "== shipped: hst"; timeout 120 ${PYTHON:-python3} -m astroenhance evaluate --task hst --data .gpu_data/val --noise-frames 0
} 2>&1 | tee "$out/eval.txt"
