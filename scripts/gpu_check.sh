#!/bin/bash
# The CUDA path of `astroenhance run` on a lent GPU: fp32/bf16/fp16 against the CPU fp32 result, and timings.
# Usage: scripts/gpu_check.sh OUTDIR   (needs astropy importable)
set -u
out=$1; mkdir -p "$out"
frame=examples/abell_2744_group_of_galaxies_f105w.fits.gz
for cfg in "cpu fp32" "cuda fp32" "cuda bf16" "cuda fp16"; do
  set -- $cfg
  /usr/bin/time -f "$1 $2: %e s wall, %M KB RSS" python3 -m astroenhance run $frame -o "$out/$1-$2" --device $1 --precision $2 --format fits 2>&1 | tail -2
done
python3 - "$out" <<'PY'
import sys, numpy as np
from astropy.io import fits
out = sys.argv[1]
ref = np.stack([fits.getdata(f"{out}/cpu-fp32/abell_2744_group_of_galaxies_f105w.enhanced.fits", e) for e in (1, 2, 3)])
for name in ("cuda-fp32", "cuda-bf16", "cuda-fp16"):
    try:
        x = np.stack([fits.getdata(f"{out}/{name}/abell_2744_group_of_galaxies_f105w.enhanced.fits", e) for e in (1, 2, 3)])
    except Exception as exc:
        print(name, "missing:", exc); continue
    d = np.abs(x - ref); ok = np.isfinite(d)
    print(f"{name}: max |diff| vs cpu fp32 {d[ok].max():.2e}, mean {d[ok].mean():.2e}, shape {x.shape}")
PY
python3 - <<'PY'
import time, torch
from astroenhance.pipeline import Enhancer
from astroenhance.config import EnhanceConfig
import numpy as np
for prec in ("fp32", "bf16"):
    enh = Enhancer(EnhanceConfig(device="cuda", precision=prec))
    x = np.random.default_rng(0).random((2048, 2048), dtype=np.float32)
    enh.enhance_array(x[:256, :256])
    torch.cuda.synchronize(); t = time.perf_counter()
    r = enh.enhance_array(x)
    torch.cuda.synchronize(); dt = time.perf_counter() - t
    print(f"cuda {prec}: 2048^2 input -> {16*2048*2048/dt/1e6:.1f} output MP/s ({dt:.2f} s)")
PY
