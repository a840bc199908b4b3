"""How the files in tests/data were made from the project's data collection (run once; the results are committed).

    python scripts/make_test_fixtures.py DATA_DIR

Most files are copied unchanged (a few gzip-compressed). Two are cut down so the test data stays small:
* ``j8bt06nyq_flt_crop.fits``: rows 256:512, columns 192:448 of every image extension (SCI, ERR, DQ) of the
  ACS/HRC 47 Tuc frame, CRPIX and LTV shifted by the crop's origin (the WCS stays exact on the crop).
* ``cfhtls/``: the central 256x256 of the CFHTLS g/r/i frames (CRPIX shifted) and the matching rows and
  columns of the reference composite PNG (whose rows run top-down).
Credits for every file: ``SOURCES.csv`` beside this script.
"""

from __future__ import annotations

import gzip
import shutil
import sys
from pathlib import Path

import numpy as np
from astropy.io import fits
from PIL import Image

HERE = Path(__file__).resolve().parents[1] / "tests" / "data"
FITS_FIXTURES = ["2chipA.fits.gz", "abell_2744_dwarf_galaxy_f105w.fits.gz", "hubble_wfpc2_sample.fits",
                 "j94f05bgq_flt.fits", "reference_drizzlepac_gaussian_drz_sci.fits", "sample_ipppssoot_flt.fits",
                 "sample_mvm_drc.fits", "sample_svm_flc.fits", "test_drizzlepac_flt.fits", "wfpc2_raw_test0.fits"]
GZIP = {"sample_svm_flc.fits", "sample_ipppssoot_flt.fits"}  # compress well; tests open them by the .gz name
HRC = (slice(256, 512), slice(192, 448))
CFHT_BOX = 256


def _shift_crpix(header: fits.Header, y0: int, x0: int) -> None:
    for key, off in (("CRPIX1", x0), ("CRPIX2", y0)):
        if key in header:
            header[key] -= off
    for key, off in (("LTV1", x0), ("LTV2", y0)):
        if key in header:
            header[key] -= off


def main(data: Path) -> None:
    (HERE / "fits").mkdir(exist_ok=True)
    for name in FITS_FIXTURES:
        src = data / "fixtures" / "fits" / name
        if name in GZIP:
            with open(HERE / "fits" / (name + ".gz"), "wb") as raw, \
                    gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as fout:
                fout.write(src.read_bytes())
        else:
            shutil.copyfile(src, HERE / "fits" / name)
    shutil.copyfile(data / "fits" / "hst" / "f105w_psf.fits.gz", HERE / "fits" / "f105w_psf.fits.gz")
    (HERE / "color").mkdir(exist_ok=True)
    for png in sorted((data / "fixtures" / "color").glob("*.png")):
        shutil.copyfile(png, HERE / "color" / png.name)

    with fits.open(data / "fits" / "hst" / "j8bt06nyq_flt.fits") as hdul:
        out = [fits.PrimaryHDU(header=hdul[0].header)]
        for hdu in hdul[1:]:
            if hdu.is_image and hdu.data is not None and hdu.data.ndim == 2:
                header = hdu.header.copy()
                _shift_crpix(header, HRC[0].start, HRC[1].start)
                out.append(fits.ImageHDU(hdu.data[HRC], header, name=hdu.name, ver=hdu.ver))
        fits.HDUList(out).writeto(HERE / "fits" / "j8bt06nyq_flt_crop.fits", overwrite=True)

    (HERE / "cfhtls").mkdir(exist_ok=True)
    cfht = data / "fits" / "multiband_cfhtls"
    for band in "gri":
        with fits.open(cfht / f"CFHTLS-test_{band}.fits") as hdul:
            data, header = hdul[0].data, hdul[0].header.copy()
            h, w = data.shape
            y0, x0 = (h - CFHT_BOX) // 2, (w - CFHT_BOX) // 2
            _shift_crpix(header, y0, x0)
            fits.writeto(HERE / "cfhtls" / f"CFHTLS-test_{band}.fits", data[y0:y0 + CFHT_BOX, x0:x0 + CFHT_BOX],
                         header, overwrite=True)
    ref = np.asarray(Image.open(cfht / "CFHTLS-test_gri.png").convert("RGB"))
    top = h - (y0 + CFHT_BOX)  # PNG rows run top-down, FITS rows bottom-up
    Image.fromarray(ref[top:top + CFHT_BOX, x0:x0 + CFHT_BOX]).save(HERE / "cfhtls" / "CFHTLS-test_gri.png")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python scripts/make_test_fixtures.py DATA_DIR (the data collection's root folder)")
    main(Path(sys.argv[1]))
