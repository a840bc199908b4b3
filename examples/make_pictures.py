"""Regenerate the pictures in examples/ (needs ../shared/data beside the repository).

    python examples/make_pictures.py
"""
import shutil
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

from astropy.io import fits
from astropy.nddata import Cutout2D
from astropy.wcs import WCS
from PIL import Image

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data"
CLI = [sys.executable, "-m", "astroenhance.cli"]


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="ae-pictures-"))
    subprocess.run(CLI + ["run", str(HERE / "abell_2744_group_of_galaxies_f105w.fits.gz"), "-o", str(work), "-q",
                          "--format", "png"], check=True)
    shutil.copy(work / "abell_2744_group_of_galaxies_f105w.enhanced.png", HERE / "run_abell2744.png")
    bands = [DATA / "fits" / "multiband_cfhtls" / f"CFHTLS-test_{b}.fits" for b in "gri"]
    subprocess.run(CLI + ["compose", *map(str, bands), "-o", str(work), "--format", "png"], check=True)
    shutil.copy(work / "CFHTLS-test.composite.png", HERE / "compose_cfhtls.png")
    with fits.open(DATA / "fits" / "hst" / "j8bt06nyq_flt.fits") as h, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data, wcs = h["SCI"].data[256:768, 256:768], WCS(h["SCI"].header, h)[256:768, 256:768]
    pieces = []
    for k, (cx, cy) in enumerate([(150, 150), (360, 150), (150, 360), (360, 360)]):
        cut = Cutout2D(data, (cx, cy), (300, 300), wcs=wcs, mode="trim")
        fits.writeto(work / f"piece{k}.fits", cut.data, cut.wcs.to_header(), overwrite=True)
        pieces.append(str(work / f"piece{k}.fits"))
    subprocess.run(CLI + ["mosaic", *pieces, "-o", str(work), "--grid", "first"], check=True)
    shutil.copy(work / "mosaic.mosaic.png", HERE / "mosaic_hrc.png")
    for name in ("run_abell2744.png", "compose_cfhtls.png", "mosaic_hrc.png"):
        print(HERE / name, Image.open(HERE / name).size)


if __name__ == "__main__":
    main()
