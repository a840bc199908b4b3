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
    sr_comparison(work)
    cosmic_ray_comparison(work)
    depth_comparison(work)
    truths = work / "truths"  # two held-out deep frames through evaluate --task hst's protocol
    truths.mkdir()
    for frame in (DATA / "fits" / "hst" / "abell_2744_dwarf_galaxy_f105w.fits.gz",
                  DATA / "fits" / "hst_real" / "slacs3_030mas_500px_sci_wht_psf.fits.gz"):
        shutil.copy(frame, truths)
    subprocess.run(CLI + ["evaluate", "--task", "hst", "--data", str(truths), "--noise-frames", "0",
                          "--figure", str(HERE / "hst_protocol.png")], check=True)
    subprocess.run(CLI + ["evaluate", "--task", "hst", "--simulated", "2", "--noise-frames", "0",  # known truths
                          "--figure", str(HERE / "hst_simulated.png")], check=True)
    for name in ("run_abell2744.png", "compose_cfhtls.png", "mosaic_hrc.png", "sr_hrc.png", "cosmic_rays_hrc.png",
                 "hst_protocol.png", "hst_simulated.png", "depth_map_slacs3.png"):
        print(HERE / name, Image.open(HERE / name).size)


def sr_comparison(work: Path) -> None:
    """sr_hrc.png: a 96x96 piece of the ACS/HRC frame (stars, a cosmic ray) as input (pixels replicated), bicubic,
    `run` (hst, the default for FITS) and `run --sr-model psnr`, all in the output's own display mapping, grey
    (--no-colorize).
    Generated detail is not measurement."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    from astroenhance.imaging.normalize import Normalizer

    with fits.open(DATA / "fits" / "hst" / "j8bt06nyq_flt.fits") as h:
        piece = h["SCI"].data[600:696, 400:496].astype(np.float32)
        fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(piece, h["SCI"].header, name="SCI"),
                      fits.ImageHDU(h["ERR"].data[600:696, 400:496], name="ERR"),
                      fits.ImageHDU(h["DQ"].data[600:696, 400:496], name="DQ")]).writeto(work / "hrc.fits", overwrite=True)
    panels = []
    for model in ("hst", "psnr"):
        out = work / model
        subprocess.run(CLI + ["run", str(work / "hrc.fits"), "-o", str(out), "-q", "--format", "fits",
                              "--no-colorize", "--sr-model", model], check=True)
        with fits.open(out / "hrc.enhanced.fits") as h:
            p = h[0].header
            norm = Normalizer(p["AE_STRCH"], p["AE_INTVL"], p["AE_VMIN"], p["AE_VMAX"], p["AE_STRA"])
            panels.append(h["GREEN"].data)
    with fits.open(work / "hrc.fits") as h:
        lr = np.nan_to_num(h["SCI"].data.astype(np.float64), nan=float(np.nanmedian(h["SCI"].data)))
    up = F.interpolate(torch.from_numpy(lr)[None, None], scale_factor=4, mode="bicubic", align_corners=False)[0, 0]
    first = [norm(np.repeat(np.repeat(lr, 4, 0), 4, 1)), norm(up.numpy())]
    row = np.concatenate([np.nan_to_num(x)[::-1] for x in first + panels], axis=1)
    Image.fromarray((np.clip(row, 0, 1) * 255).astype(np.uint8)).save(HERE / "sr_hrc.png")


def cosmic_ray_comparison(work: Path) -> None:
    """cosmic_rays_hrc.png: the piece of sr_comparison as input (pixels replicated; red: what --clean-cosmic-rays
    reads as no data), `run --no-clean-cosmic-rays`, `run --clean-cosmic-rays --fill-holes 0` (no data shown black)
    and `run --clean-cosmic-rays` (small holes interpolated for display; hst, grey), in the output's display
    mapping."""
    import numpy as np

    from astroenhance.io.readers import open_frames

    if not (work / "hrc.fits").exists():
        sr_comparison(work)
    panels = []
    for name, extra in (("plain", ["--no-clean-cosmic-rays"]), ("black", ["--clean-cosmic-rays", "--fill-holes", "0"]),
                        ("clean", ["--clean-cosmic-rays"])):
        subprocess.run(CLI + ["run", str(work / "hrc.fits"), "-o", str(work / name), "-q", "--format", "fits",
                              "--no-colorize", *extra], check=True)
        with fits.open(work / name / "hrc.enhanced.fits") as h:
            panels.append(np.nan_to_num(h["GREEN"].data.astype(np.float64)))
    with open_frames(work / "hrc.fits") as [src]:
        base = src.read_rows(0, src.shape[0])
    with open_frames(work / "hrc.fits", cosmic_rays=True) as [src]:
        hits = np.isnan(src.read_rows(0, src.shape[0])) & ~np.isnan(base)
    big = np.repeat(np.repeat(hits, 4, 0), 4, 1)
    # the input in the plain run's display mapping: each input pixel 4x4, as the network sees it
    with fits.open(work / "plain" / "hrc.enhanced.fits") as h:
        from astroenhance.imaging.normalize import Normalizer
        p = h[0].header
        norm = Normalizer(p["AE_STRCH"], p["AE_INTVL"], p["AE_VMIN"], p["AE_VMAX"], p["AE_STRA"])
    shown = np.clip(np.nan_to_num(norm(np.repeat(np.repeat(base, 4, 0), 4, 1))), 0, 1)
    rgb_in = np.repeat(shown[..., None], 3, -1)
    rgb_in[big] = [1.0, 0.15, 0.15]
    rows = [rgb_in] + [np.repeat(np.clip(x, 0, 1)[..., None], 3, -1) for x in panels]
    row = np.concatenate([r[::-1] for r in rows], axis=1)
    Image.fromarray((row * 255).astype(np.uint8)).save(HERE / "cosmic_rays_hrc.png")


def depth_comparison(work: Path) -> None:
    """depth_map_slacs3.png: a deep frame (SLACS 3 at 0.03") binned 4x with noise of 0.5x its pixel rms on the left
    half and 3x on the right (ERR says so: a mosaic's edge), 320x320 output pixels across the step: the input (pixels
    replicated), `run --no-noise-map` (one sigma for the frame), `run` (the sky's noise map), the deep truth; grey,
    all in the one-sigma run's display mapping."""
    import numpy as np

    from astroenhance.training.hst import _read_output, degrade_two_depths, load_truth

    truth = load_truth(DATA / "fits" / "hst_real" / "slacs3_030mas_500px_sci_wht_psf.fits.gz")[0]
    truth = truth[:, :(truth.shape[1] // 8) * 8]
    lr, sigma = degrade_two_depths(truth, (0.5, 3.0), np.random.default_rng(1))
    half = lr.shape[1] // 2
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(lr.astype(np.float32), name="SCI"),
                  fits.ImageHDU(sigma.astype(np.float32), name="ERR")]).writeto(work / "step.fits", overwrite=True)
    panels, display = [], None
    for name, extra in (("one", ["--no-noise-map"]), ("map", [])):
        subprocess.run(CLI + ["run", str(work / "step.fits"), "-o", str(work / name), "-q", "--format", "fits",
                              "--no-colorize", *extra], check=True)
        lum, norm, _ = _read_output(work / name / "step.enhanced.fits")
        display = display or norm
        panels.append(norm.inverse(np.nan_to_num(lum)))
    cut, h = half * 4, min(truth.shape[0], 320)
    y0 = (truth.shape[0] - h) // 2
    rows = [np.repeat(np.repeat(lr, 4, 0), 4, 1), *panels, truth]
    row = np.concatenate([np.clip(display(x[y0:y0 + h, cut - 160:cut + 160]), 0, 1)[::-1] for x in rows], axis=1)
    Image.fromarray((row * 255).astype(np.uint8)).save(HERE / "depth_map_slacs3.png")


if __name__ == "__main__":
    main()
