#!/usr/bin/env bash
# Open an RGB FITS written by `astroenhance run` in SAOImage DS9 as an RGB frame (headless, under Xvfb) and
# compare DS9's ICRS position and RED value at one pixel with astropy's.  Needs Debian's saods9, xvfb and
# xpa-tools (apt-get install saods9 xvfb xpa-tools).  Usage: scripts/ds9_check.sh OUT.fits [X Y] (1-based pixel)
set -euo pipefail
f=$1; x=${2:-101}; y=${3:-201}; name=aecheck$$  # our own XPA name: never another DS9
py=${PYTHON:-python}
export DISPLAY=:$((90 + RANDOM % 100)) XPA_METHOD=local  # XPA_METHOD=local: no name server; else DS9 stops on a dialog
Xvfb "$DISPLAY" -screen 0 1280x1024x24 >/dev/null 2>&1 &
xvfb=$!
trap 'kill $xvfb ${ds9:-} 2>/dev/null || true' EXIT
sleep 2
ds9 -title "$name" -rgb -red "$f[RED]" -green "$f[GREEN]" -blue "$f[BLUE]" >/dev/null 2>&1 &
ds9=$!
for _ in $(seq 60); do xpaget "$name" rgb channel >/dev/null 2>&1 && break; sleep 1; done
xpaset -p "$name" rgb channel red
xpaset -p "$name" crosshair "$x" "$y" image
read -r ra dec < <(xpaget "$name" crosshair wcs icrs degrees)
value=$(xpaget "$name" data image "$x" "$y" 1 1 yes)
echo "ds9: size $(xpaget "$name" fits size) RA $ra Dec $dec RED $value"
"$py" - "$f" "$x" "$y" "$ra" "$dec" "$value" <<'PY'
import sys, warnings
import numpy as np
from astropy.io import fits
from astropy.wcs import WCS
f, x, y, ra, dec, value = sys.argv[1], *map(float, sys.argv[2:])
warnings.simplefilter("ignore")
with fits.open(f) as h:
    w = WCS(h["RED"].header, h)
    sky = w.all_pix2world([[x, y]], 1)[0]
    v = float(h["RED"].data[int(y) - 1, int(x) - 1])
print(f"astropy: RA {sky[0]:.7f} Dec {sky[1]:.7f} RED {v:.6g}")
ok = abs(sky[0] - ra) * np.cos(np.radians(dec)) < 2e-7 and abs(sky[1] - dec) < 2e-7 and abs(v - value) < 1e-5
print("agree" if ok else "DISAGREE")
sys.exit(0 if ok else 1)
PY
