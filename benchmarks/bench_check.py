"""Wall time and peak memory of `astroenhance check` on `run`'s outputs, against astropy verifying the same
checksums, in one run.

    python benchmarks/bench_check.py [FRAME]

FRAME (default the ACS/HRC crop in tests/data; the whole 1024² frame: ../shared/data/fits/hst/j8bt06nyq_flt.fits,
a 4096² output of 235 MB) is enhanced once by `run`; then each row is one fresh process: `check` of the FITS output
(every HDU's DATASUM and CHECKSUM, read in pieces), the baseline astropy opening it with ``checksum=True`` and
reading every HDU's data (how astropy verifies), `check` of the PNG output (its CRCs and pixel stream) against
the baseline Pillow decoding it whole, and `check` of the JPEG and TIFF outputs (decoded in bounded memory: a JPEG
at 1/8 scale, a TIFF strip by strip) against Pillow and tifffile decoding them whole. Every process imports astropy, Pillow and astroenhance.check and checks
the file once before the clock starts (the seconds are the work alone; peak RSS, sampled every 20 ms, includes the
imports and the file's pages in the page cache that each maps).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from bench_memory import SAFE_PATH  # (a sibling script: its folder is sys.path[0] when run as a script)

REPO = Path(__file__).resolve().parents[1]

PROBE = r"""
import json, sys, threading, time
peak = [0.0]
def sample():
    while True:
        with open("/proc/self/status") as f:
            peak[0] = max(peak[0], next(int(l.split()[1]) / 1e3 for l in f if l.startswith("VmRSS:")))
        time.sleep(0.02)
threading.Thread(target=sample, daemon=True).start()
what, path = sys.argv[1], sys.argv[2]
import warnings
from astropy.io import fits
from PIL import Image
from astroenhance.check import check_output
check_output(path)  # (once, so that every module either path loads is loaded before the clock starts)
start = time.perf_counter()
if what == "check":
    ok = check_output(path).ok
elif what == "astropy":
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # (a checksum that does not verify warns)
        with fits.open(path, checksum=True) as h:
            ok = all(hdu.data is not None or hdu.size == 0 for hdu in h)
elif what == "tifffile":
    import tifffile
    tifffile.imread(path)
    ok = True
else:
    Image.MAX_IMAGE_PIXELS = None
    with Image.open(path) as im:
        im.load()
    ok = True
print(json.dumps({"seconds": time.perf_counter() - start, "rss": peak[0], "ok": ok}))
"""


def measure(what: str, path: Path) -> dict:
    done = subprocess.run([sys.executable, "-c", PROBE, what, str(path)], capture_output=True, text=True, check=True,
                          env=SAFE_PATH)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("frame", nargs="?", default=str(REPO / "tests/data/fits/j8bt06nyq_flt_crop.fits"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "astroenhance", "run", args.frame, "-o", tmp, "-q", "--format",
                        "fits,png,jpeg,tiff"], check=True, env=SAFE_PATH)
        fits_out, png_out, jpeg_out, tiff_out = (next(Path(tmp).glob(f"*.enhanced.{ext}"))
                                                 for ext in ("fits", "png", "jpg", "tif"))
        print("; ".join(f"{p.name}: {p.stat().st_size / 1e6:.0f} MB" for p in (fits_out, png_out, jpeg_out, tiff_out)))
        print(f"{'command':<58}{'seconds':>9}{'peak RSS MB':>13}{'verified':>10}{'x baseline (s, RSS)':>22}")
        for rows in ((("astropy checksum=True, every HDU read (baseline)", "astropy", fits_out),
                      ("astroenhance check of the FITS", "check", fits_out)),
                     (("Pillow decoding the PNG whole (baseline)", "pillow", png_out),
                      ("astroenhance check of the PNG", "check", png_out)),
                     (("Pillow decoding the JPEG whole (baseline)", "pillow", jpeg_out),
                      ("astroenhance check of the JPEG", "check", jpeg_out)),
                     (("tifffile reading the TIFF whole (baseline)", "tifffile", tiff_out),
                      ("astroenhance check of the TIFF", "check", tiff_out))):
            base = None
            for name, what, path in rows:
                r = measure(what, path)
                base = base or r
                ratio = f"{r['seconds'] / base['seconds']:.2f}, {r['rss'] / base['rss']:.2f}"
                print(f"{name:<58}{r['seconds']:>9.2f}{r['rss']:>13.0f}{str(r['ok']):>10}{ratio:>22}")


if __name__ == "__main__":
    main()
