"""`evaluate --task hst` on the validation sets used to choose SR settings for real frames, per weights folder.

    python benchmarks/bench_hst_validation.py --data ../shared/data [--weights W1,W2,...] [--tolerances 2/2,2/3]
        [--flux-lowpass 0,1,2] [--psf-smooth 0.4,0.6] [--psf-keep 0,1:2.5]
        [--starfield-held-out] [--simulated-from 100] [--psf-fwhm stars] [--sets slacs2303,...] [--draws N] [--workdir DIR]

Twelve sets, none used for training or test (docs/experiments.md):

* ``slacs2303``: the SLACS 2303 field at 0.05" (`fits/hst_real/slacs2303p1422_050mas_image.fits`);
* ``cosmos``: the first two COSMOS galaxy stamps of `fits/hst_real/paltas_cosmos_real_galaxy_images_23.5_n1subset.fits`
  (HDUs 0 and 1, written as frames of their own);
* ``cosmos_fields``: four frames of real COSMOS galaxies placed at random on noise (`galaxy_field`: the paltas
  stamps other than ``cosmos``'s and the btk ones): many compact galaxies' cores and no stars, binned undersampled;
* ``galaxies``: three synthetic frames filled by large ellipticals (`elliptical`, `crowded`: Sérsic r_e 70 / 120 /
  45 px, n 4 / 3 / 5, peak S/N 3,000-8,000, small galaxies, Moffat PSF, white noise of sigma 1; seeded, so always
  the same), the case where the frame's median sits on a galaxy's halo;
* ``undersampled``: two synthetic frames sampled as WFC3/IR's 0.13" pixels sample its PSF (FWHM about 1.3 pixels:
  rendered 3x finer, through a Moffat PSF, then binned 3x3 — pixel-integrated): a field of stars and small
  galaxies, and a bright disk galaxy with knots filling half the frame, with the sources' Poisson noise
  (`undersampled`; seeded).
* ``bright``: two synthetic 400² frames filled by one bright galaxy whose own Poisson noise dominates the read
  noise over most of the frame (a cD elliptical with globular clusters; a large disk with knots), well sampled
  (Moffat FWHM 2.2 pixels): the case where the truth's pixel rms, and so the protocol's added noise, is set by the
  galaxy's light, not the sky (`bright`; seeded).
* ``starfield``: two frames of the ``undersampled`` field's kind (stars and small galaxies, other seeds) through a
  PSF 8x wider: binned 4x4, well sampled (FWHM 1.6 input pixels) and full of stars, where the wellsampled fields
  hold a few.
* ``simulated``: eight simulated fields with a noise-free truth (`training.fields.simulated_field`, fields 100-107:
  `evaluate --simulated N` reports fields 0 to N - 1), HST's Airy PSF, drawn unlike the training fields.
* ``wellsampled``: the same eight fields with the PSF 4x wider (`simulated_field`'s ``psf_scale``): binned 4x4, the
  input samples its PSF as a drizzled frame does at its own pixels (FWHM 1.2-3 input pixels) — `run`'s usual input,
  where every other set's input is undersampled (FWHM under one input pixel).
* ``simulated_psf``, ``wellsampled_psf``, ``starfield_psf``: the same three, `run` told each field's PSF FWHM (`run --psf-fwhm`, what an
  HST header gives it: its output smoothed to the PSF, `imaging.psf`); the others are told nothing, as the protocol's
  inputs (SCI + ERR, no PHOTPLAM) tell `run` nothing: `run` measures their PSF on their stars where it finds 3 or
  more compact sources (the default since 2026-12-07; ``--psf-fwhm 0`` for none).

For each weights folder (``default``: the shipped ones), each ``--tolerances`` pair FLUX/DISPLAY (`run
--flux-tolerance` / `--display-tolerance`; ``default``: the network's), each ``--flux-lowpass`` width and each ``--psf-smooth`` share it prints run
minus the best classical baseline (dB) at k = 0.5 and 2, averaged over each set, the truth-noise ceiling minus the best
baseline (the room there is; `training.hst`), `run`'s aperture-flux error on FLUX
at both levels (the protocol's median over frames of each frame's median, then the median over the set's sources
pooled), at k = 2 its false detections, completeness (bicubic's at 5σ and at run's false-detection count, issue 15's
other source targets) and half-light-radius bias (bicubic's beside), and how much 4x4 block edges
show in the sky at both levels (`training.hst.sky_lattice`; the best baseline's beside), and the fine-scale error
(`training.hst.fine_error`: output minus truth in detail under 1.5 input pixels; above the best baseline's on a
well-sampled set, fine detail drawn that no source has).
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
from astropy.io import fits
from scipy.signal import fftconvolve

from astroenhance.config import EnhanceConfig
from astroenhance.imaging import psf
from astroenhance.pipeline import finish
from astroenhance.pipeline.finish import estimate_noise
from astroenhance.training.hst import evaluate_hst, list_truths
from astroenhance.training.telescope import moffat_psf, sersic


def elliptical(seed: int = 42) -> np.ndarray:
    """A 400² frame: an n = 4 elliptical (r_e 70 px) and a small disk, sky 10, white noise of sigma 1."""
    rng = np.random.default_rng(seed)
    n = 400
    img = 3e6 * sersic((n, n), 210.3, 195.7, 70, 4.0, 0.8, 0.6) + 4e5 * sersic((n, n), 90, 300, 12, 1.0, 0.5, 1.2)
    img = fftconvolve(img, moffat_psf(2.5, 3.0), mode="same") + 10.0
    return img + rng.normal(0, 1.0, img.shape)


def crowded(seed: int, sersic_n: float, r_e: float, flux: float, q: float, fwhm: float) -> np.ndarray:
    """A 360² frame: one large elliptical near the centre and six small galaxies, sky 5, white noise of sigma 1."""
    rng = np.random.default_rng(seed)
    n = 360
    img = flux * sersic((n, n), 170.4 + rng.uniform(-20, 20), 190.2, r_e, sersic_n, q, rng.uniform(0, 3))
    for _ in range(6):
        f = 10 ** rng.uniform(3, 4.5)
        img += f * sersic((n, n), *rng.uniform(20, 340, 2), 10 ** rng.uniform(0.3, 1.0), 1.0, rng.uniform(0.4, 1),
                          rng.uniform(0, 3))
    img = fftconvolve(img, moffat_psf(fwhm, 3.0), mode="same") + 5.0
    return img + rng.normal(0, 1.0, img.shape)


def undersampled(seed: int, disk: bool, fwhm: float = 1.3) -> np.ndarray:
    """A 300² frame whose PSF is undersampled (FWHM ~1.3 pixels, pixel-integrated): 3x finer rendering, binned.
    ``disk``: one bright disk galaxy (bulge, disk, knots) filling half the frame, else stars and small galaxies;
    sky 5, noise of sigma 1 on the sky and the sources' Poisson noise (gain 200).  ``fwhm``: the PSF's (pixels)."""
    rng = np.random.default_rng(seed)
    n, o = 300, 3
    fine = np.zeros((n * o, n * o))
    if disk:
        x0, y0 = (n * o / 2 + rng.uniform(-30, 30, 2))
        r_e, q, th = 60.0 * o, 0.55, rng.uniform(0, 3)
        fine += 4e5 * sersic(fine.shape, x0, y0, r_e * 0.25, 4.0, 0.8, th)
        fine += 2e6 * sersic(fine.shape, x0, y0, r_e, 1.0, q, th)
        for _ in range(40):  # knots along the disk
            kx, ky = x0 + rng.normal(0, r_e * 0.8), y0 + rng.normal(0, r_e * 0.8 * q)
            fine += 10 ** rng.uniform(2.5, 4) * sersic(fine.shape, kx, ky, rng.uniform(1, 3), 1.0, 1.0, 0)
    for _ in range(10 if disk else 25):
        fine += 10 ** rng.uniform(2.5, 4.2) * sersic(fine.shape, *rng.uniform(0, n * o, 2), 10 ** rng.uniform(0.7, 1.6),
                                                    rng.uniform(0.8, 3.0), rng.uniform(0.4, 1), rng.uniform(0, 3))
    stars = np.zeros_like(fine)
    for _ in range(15 if disk else 60):
        stars[rng.integers(0, n * o), rng.integers(0, n * o)] += 10 ** rng.uniform(2.0, 5.0)
    fine = fftconvolve(fine + stars, moffat_psf(fwhm * o * 0.8, 2.5, max(45, int(8 * fwhm * o) | 1)), mode="same")
    img = fine.reshape(n, o, n, o).sum(axis=(1, 3))
    return img + 5.0 + rng.normal(0, 1.0, img.shape) * np.sqrt(1 + img / 200)


def bright(seed: int, disk: bool) -> np.ndarray:
    """A 400² frame filled by one bright galaxy (``disk``: a bulge and a large disk with 60 knots; else an n = 4
    elliptical, r_e 90 px, with 60 globular clusters), 8 small background galaxies, a Moffat PSF of FWHM 2.2 px;
    sky 5, read noise of sigma 1 and the sources' Poisson noise (gain 1: it dominates wherever a source is above
    ~1, which is most of the frame)."""
    rng = np.random.default_rng(seed)
    n = 400
    x0, y0 = n / 2 + rng.uniform(-20, 20, 2)
    th = rng.uniform(0, 3)
    if disk:
        img = 5e5 * sersic((n, n), x0, y0, 15, 3.0, 0.8, th) + 4e6 * sersic((n, n), x0, y0, 80, 1.0, 0.5, th)
        for _ in range(60):  # knots along the disk
            r, a = abs(rng.normal(0, 70)), rng.uniform(0, 2 * np.pi)
            kx, ky = r * np.cos(a), 0.5 * r * np.sin(a)
            img += 10 ** rng.uniform(2.0, 3.5) * sersic((n, n), x0 + kx * np.cos(th) - ky * np.sin(th),
                                                         y0 + kx * np.sin(th) + ky * np.cos(th),
                                                         rng.uniform(1.0, 2.5), 1.0, 1.0, 0)
    else:
        img = 3e6 * sersic((n, n), x0, y0, 90, 4.0, 0.8, th)
    points = np.zeros((n, n))
    for _ in range(0 if disk else 60):  # globular clusters about the elliptical
        px, py = np.clip(rng.normal([x0, y0], 100), 0, n - 1).astype(int)
        points[py, px] += 10 ** rng.uniform(1.5, 3.5)
    for _ in range(8):
        img += 10 ** rng.uniform(2.5, 4) * sersic((n, n), *rng.uniform(0, n, 2), 10 ** rng.uniform(0.3, 1.0),
                                                  rng.uniform(0.8, 3.0), rng.uniform(0.4, 1), rng.uniform(0, 3))
    img = np.clip(fftconvolve(img + points, moffat_psf(2.2, 3.0), mode="same"), 0, None)
    return img + 5.0 + rng.normal(0, 1.0, img.shape) * np.sqrt(1 + img)


def galaxy_field(real: Path, seed: int, n: int = 400, count: int = 30) -> np.ndarray:
    """A 400² frame of real COSMOS galaxies (HST/ACS F814W at 0.03"): ``count`` stamps drawn at random from the paltas
    stamps 2-9 (0 and 1 are the ``cosmos`` set) and the 26 mag-limited btk ones, their light above 2 sigma of their
    own noise placed at random on white noise of the stamps' median rms: no stars, many compact galaxies' cores."""
    stamps = []
    for name, first in (("paltas_cosmos_real_galaxy_images_23.5_n1subset.fits", 2),
                        ("btk_cosmos_real_galaxy_images_26ext_example.fits.gz", 0)):
        with fits.open(real / name) as h:
            stamps += [np.asarray(hdu.data, np.float64) for hdu in h[first:] if hdu.data is not None]
    rng = np.random.default_rng(seed)
    img = rng.normal(0, np.median([estimate_noise(s) for s in stamps]), (n, n))
    for i in rng.permutation(len(stamps))[:count]:
        s = stamps[i] - np.median(np.concatenate([stamps[i][0], stamps[i][-1], stamps[i][:, 0], stamps[i][:, -1]]))
        h, w = s.shape
        if h < n and w < n:
            y, x = rng.integers(0, n - h), rng.integers(0, n - w)
            img[y:y + h, x:x + w] += np.where(s > 2 * estimate_noise(s), s, 0.0)
    return img


SHIPPED_LOWPASS = finish.FLUX_LOWPASS
SHIPPED_SMOOTH = psf.SMOOTH
SHIPPED_KEEP = psf.KEEP_FROM, psf.KEEP
UNDERSAMPLED = {"ir_field": lambda: undersampled(3, False), "ir_disk": lambda: undersampled(5, True)}
GALAXIES = {"ell": lambda: elliptical(42), "ell7": lambda: crowded(7, 3.0, 120, 2e7, 0.9, 3.0),
            "ell11": lambda: crowded(11, 5.0, 45, 8e5, 0.6, 2.2)}


BRIGHT = {"cd": lambda: bright(13, False), "disk": lambda: bright(17, True)}
#: the cosmos_fields set's frames (`galaxy_field`'s seeds)
COSMOS_FIELD_SEEDS = (1, 2, 3, 4)
STARFIELD: dict = {}  # the starfield sets' frames (filled by main: `STARFIELD_SEEDS`, or `--starfield-held-out`'s)
#: the starfield frames' names and seeds (the name seeds the noise drawn: `training.hst.noise_draw`)
STARFIELD_SEEDS = {"stars_a": 23, "stars_b": 29}
STARFIELD_HELD_OUT = {"stars_c": 31, "stars_d": 37}
#: the starfield frames' PSF FWHM in input pixels (the Moffat's 0.8 x 8 truth pixels, binned 4x): `starfield_psf` tells it
STARFIELD_FWHM = 1.6


SETS = ("slacs2303", "cosmos", "cosmos_fields", "galaxies", "undersampled", "bright", "starfield", "simulated", "wellsampled", "simulated_psf",
        "wellsampled_psf", "starfield_psf")
#: the sets of simulated fields (noise-free truths made by `evaluate_hst`, no files): their PSF's scale, and whether
#: `run` is told each one's PSF FWHM (`run --psf-fwhm`, as an HST header tells it)
SIMULATED = {"simulated": (1.0, False), "wellsampled": (4.0, False), "simulated_psf": (1.0, True),
             "wellsampled_psf": (4.0, True)}


SYNTHETIC = {"galaxies": GALAXIES, "undersampled": UNDERSAMPLED, "bright": BRIGHT, "starfield": STARFIELD,
             "starfield_psf": STARFIELD}


def _room(summary: dict) -> str:
    """The truth-noise ceiling minus the best baseline, or "none" (noise-free truths)."""
    room = summary["ceiling_minus_best"]
    return "none" if room is None else f"{room:+.2f}"


def write_sets(data: Path, work: Path, names: list[str]) -> dict[str, Path]:
    """The frames of the sets ``names``, each set a folder under ``work``."""
    sets = {name: work / name for name in names}
    for d in sets.values():
        d.mkdir(parents=True, exist_ok=True)
    real = data / "fits" / "hst_real"
    if "slacs2303" in sets:
        (sets["slacs2303"] / "slacs2303.fits").write_bytes((real / "slacs2303p1422_050mas_image.fits").read_bytes())
    if "cosmos" in sets:
        with fits.open(real / "paltas_cosmos_real_galaxy_images_23.5_n1subset.fits") as h:
            for i in (0, 1):
                fits.PrimaryHDU(h[i].data.astype(np.float32)).writeto(sets["cosmos"] / f"paltas{i}.fits", overwrite=True)
    if "cosmos_fields" in sets:
        for seed in COSMOS_FIELD_SEEDS:
            fits.PrimaryHDU(galaxy_field(real, seed).astype(np.float32)).writeto(
                sets["cosmos_fields"] / f"cosmos_field{seed}.fits", overwrite=True)
    for name in SYNTHETIC.keys() & sets.keys():
        for frame, make in SYNTHETIC[name].items():
            fits.PrimaryHDU(make().astype(np.float32)).writeto(sets[name] / f"{frame}.fits", overwrite=True)
    return sets


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="the shared data folder (holds fits/hst_real)")
    ap.add_argument("--weights", default="default", help="comma-separated weights folders; default = shipped")
    ap.add_argument("--tolerances", default="default",
                    help="comma-separated FLUX/DISPLAY tolerance pairs in input sigmas, e.g. 2/2,2/3; default = the network's")
    ap.add_argument("--sets", default=",".join(SETS), help=f"comma-separated sets to score (of {', '.join(SETS)})")
    ap.add_argument("--flux-lowpass", default="default",
                    help="comma-separated widths (input pixels) of the local mean FLUX puts back of what it lets go "
                         "(`finish.FLUX_LOWPASS`; FLUX only, the display is untouched); default = the shipped width")
    ap.add_argument("--draws", type=int, default=1,
                    help="noise draws per frame and level, averaged (`evaluate --task hst --draws`; false detections "
                         "per draw): one draw's set means move by a few hundredths of a dB from draw to draw")
    ap.add_argument("--psf-smooth", default="default",
                    help="comma-separated shares of the PSF's sigma the display is smoothed by where run knows the PSF "
                         "(`imaging.psf.SMOOTH`: the *_psf sets, HST frames); default = the shipped share")
    ap.add_argument("--psf-keep", default="default",
                    help="comma-separated FROM:TO noise-space levels over which the smoothing fades out, keeping the "
                         "network's own output whole above TO (`imaging.psf.KEEP_FROM`, `KEEP`; 0: smoothed "
                         "everywhere); default = the shipped levels")
    ap.add_argument("--starfield-held-out", action="store_true",
                    help="the starfield sets' held-out pair of frames (seeds 31, 37) instead of the validation pair")
    ap.add_argument("--simulated-from", type=int, default=100,
                    help="the simulated sets' first field (100 on: validation; 0 on: the report's, held out)")
    ap.add_argument("--psf-fwhm", default=None,
                    help="run --psf-fwhm for the sets told nothing (e.g. 0, stars; default: none given: run's default)")
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    STARFIELD.update({name: lambda seed=seed: undersampled(seed, False, 8.0) for name, seed in
                      (STARFIELD_HELD_OUT if args.starfield_held_out else STARFIELD_SEEDS).items()})
    untold = None if args.psf_fwhm is None else args.psf_fwhm if args.psf_fwhm == "stars" else float(args.psf_fwhm)
    names = args.sets.split(",")
    if unknown := set(names) - set(SETS):
        ap.error(f"unknown sets {', '.join(sorted(unknown))} (choose from {', '.join(SETS)})")
    scratch = None if args.workdir else tempfile.TemporaryDirectory(prefix="ae-hstval-", ignore_cleanup_errors=True)
    sets = write_sets(args.data, args.workdir or Path(scratch.name), names)  # (a temporary folder is removed at the end)
    print(f"{'weights':<24}{'tol F/D':<9}{'lowpass':<9}{'smooth':<10}{'set':<13}{'k=0.5 run-best':>15}{'k=2 run-best':>13}{'ceiling-best':>14}"
          f"{'apflux k=0.5/2 (bicubic)':>34}{'pooled k=0.5/2 (bicubic)':>34}{'false det k=2 (bicubic)':>25}"
          f"{'complete k=2 (bicubic; matched)':>33}"
          f"{'r_half bias k=2 (bicubic)':>28}{'sky lattice k=0.5/2 (best)':>30}{'fine err x1000 k=0.5/2 (best)':>32}")
    for w, tol, width, smooth, keep in itertools.product(args.weights.split(","), args.tolerances.split(","),
                                                         args.flux_lowpass.split(","), args.psf_smooth.split(","),
                                                         args.psf_keep.split(",")):
        finish.FLUX_LOWPASS = SHIPPED_LOWPASS if width == "default" else float(width)
        psf.SMOOTH = SHIPPED_SMOOTH if smooth == "default" else float(smooth)
        psf.KEEP_FROM, psf.KEEP = (SHIPPED_KEEP if keep == "default" else
                                   (0.0, 0.0) if keep == "0" else tuple(float(v) for v in keep.split(":")))
        smooth = smooth if keep == "default" else f"{smooth[:3]}/{keep}"
        flux, display = (None, None) if tol == "default" else (float(v) for v in tol.split("/"))
        cfg = EnhanceConfig(device="cpu", weights=None if w == "default" else w, flux_tolerance=flux, psf_fwhm=untold,
                            display_tolerance=display)
        for name in names:
            folder = sets[name]
            if name in SIMULATED:  # fields --simulated-from on (the report, `evaluate --simulated N`: 0 to N - 1)
                psf_scale, told = SIMULATED[name]
                s = evaluate_hst([], cfg, noise_frames=0, simulated=8, simulated_from=args.simulated_from,
                                 draws=args.draws,
                                 psf_scale=psf_scale, tell_psf=told)["simulated_summary"]
            else:  # (starfield_psf: run told the frames' PSF, as an HST header tells it)
                told = replace(cfg, psf_fwhm=STARFIELD_FWHM) if name == "starfield_psf" else cfg
                s = evaluate_hst(list_truths(folder), told, noise_frames=0, draws=args.draws)["summary"]
            lo, hi = s["k=0.5"], s["k=2"]
            pl, ph = lo["aperture_flux_vs_bicubic"], hi["aperture_flux_vs_bicubic"]
            print(f"{Path(w).name[:23]:<24}{tol:<9}{width:<9}{smooth:<10}{name:<13}{lo['run_minus_best']:+15.3f}"
                  f"{hi['run_minus_best']:+13.3f}{_room(lo):>7}/{_room(hi):<6}{lo['run_aperture_flux_err']:>12.3f} / {hi['run_aperture_flux_err']:.3f} "
                  f"({lo['bicubic_aperture_flux_err']:.3f} / {hi['bicubic_aperture_flux_err']:.3f})"
                  f"{pl['run_median']:>12.3f} / {ph['run_median']:.3f} ({pl['other_median']:.3f} / {ph['other_median']:.3f})"
                  f"{hi['run_false_detections']:>12g} ({hi['bicubic_false_detections']:g})"
                  f"{hi['run_completeness']:>15.2f} ({hi['bicubic_completeness']:.2f}; {hi['bicubic_completeness_matched']:.2f})"
                  f"{hi['run_half_light_bias']:>+14.3f} "
                  f"({hi['bicubic_half_light_bias']:+.3f}){lo['run_sky_lattice']:>12.2f} / {hi['run_sky_lattice']:.2f} "
                  f"({lo['best_baseline_sky_lattice']:.2f} / {hi['best_baseline_sky_lattice']:.2f})"
                  f"{1000 * lo['run_fine_error']:>13.2f} / {1000 * hi['run_fine_error']:.2f} "
                  f"({1000 * lo['best_baseline_fine_error']:.2f} / {1000 * hi['best_baseline_fine_error']:.2f})", flush=True)


if __name__ == "__main__":
    main()
