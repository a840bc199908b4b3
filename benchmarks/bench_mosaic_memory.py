"""Wall time and memory of `mosaic` (and `run`) on a dither of one frame, whole and cut out, in one run.

    python benchmarks/bench_mosaic_memory.py [FRAME] [--piece 700] [--shift 300,200] [--cutout-size 10arcsec]
        [--far PIXELS] [--only TEXT]

FRAME (SCI/ERR/DQ; default the ACS/HRC crop in tests/data — the whole 1024² frame:
../shared/data/fits/hst/j8bt06nyq_flt.fits) is cut into two overlapping pieces of PIECE² pixels, the second SHIFT
pixels on (a dither), written as frames of their own; each row below is one command in a fresh process, its peak
RSS, its peak anonymous memory (RssAnon: what the kernel cannot drop, memory-mapped scratch excluded) and its wall
time.  The baseline rows co-add the whole grid at once (`compose.COADD_STRIP_PIXELS` set above the grid's size), as
`mosaic` did before it worked in strips, hold run's outputs in memory (`compose.enhanced_planes` without its
scratch file), co-add a colour mosaic's planes one at a time (the sky mapped once per plane), stacked in memory,
keep the grid in float64, values and footprints, and keep each enhanced frame's luminance plane (a second baseline
keeps only that); the others are `mosaic` as shipped (mean, median), then with
`--cutout` about the pieces' common
centre, `run` of one piece whole and cut out, a colour mosaic of run's outputs of both pieces, `--enhance` of one
frame of an ACS/WFC chip's size (the frame tiled to 4096x2048; baseline: its luminance plane kept), and a science
mosaic of the first piece and the second placed 4 pieces away (a wide grid, mostly empty: its FITS written from
float32 copies in memory in the baseline, as before, from the scratch files it was co-added in as shipped).
"scratch MB" is the size of the memory-mapped scratch files the command made.  The mosaics of the baselines and as
shipped are checked equal, pixel for pixel.
"""

from __future__ import annotations

import argparse
import tempfile
import warnings
from pathlib import Path

import memory_probe
import numpy as np
from astropy.io import fits
from astropy.wcs import WCS

REPO = Path(__file__).resolve().parents[1]

#: a baseline's patches, by the flags in its environment (`memory_probe.measure`); the scratch files' size counted
PATCHES = r"""
import numpy as np
from astroenhance import compose
scratch_bytes, allocate = [0], compose.scratch_array
def counted(path, dtype, shape):  # every scratch file's size (they stay until the mosaic is written)
    scratch_bytes[0] += np.dtype(dtype).itemsize * int(np.prod(shape))
    return allocate(path, dtype, shape)
compose.scratch_array = counted
extra["scratch"] = lambda: scratch_bytes[0] / 1e6
if os.environ.get("WHOLE_GRID"):
    compose.COADD_STRIP_PIXELS = 1 << 62
if os.environ.get("FLOAT64_GRID"):  # the grid kept in float64, values and footprints, as before
    wide = compose.coadd
    def coadd(frames, wcs, shape, combine="mean", match_background=True, scratch=None, *more, **kw):
        return wide(frames, wcs, shape, combine, match_background, scratch)
    compose.coadd = coadd
if os.environ.get("PER_PLANE"):  # a colour mosaic's R, G, B co-added one at a time, stacked in memory, as before
    together = compose.coadd
    def coadd(frames, wcs, shape, combine="mean", match_background=True, scratch=None, *more, **kw):
        if frames[0][0].ndim == 2:
            return together(frames, wcs, shape, combine, match_background, scratch, *more, **kw)
        each = [together([(f[c], w) for f, w in frames], wcs, shape, combine, match_background,
                         None if scratch is None else scratch.with_name(f"{scratch.name}{c}"))
                for c in range(frames[0][0].shape[0])]
        return np.stack([e[0] for e in each]), np.stack([e[1] for e in each]), each[0][2]
    compose.coadd = coadd
if os.environ.get("KEEP_LUMINANCE"):  # each enhanced frame's luminance plane kept, as before
    from astroenhance.pipeline import Enhancer
    enhance_array = Enhancer.enhance_array
    Enhancer.enhance_array = lambda self, *a, luminance=True, **k: enhance_array(self, *a, luminance=True, **k)
if os.environ.get("IN_MEMORY"):  # run's outputs, and the science mosaic's float32 planes, in memory, as before
    whole, float32 = compose.enhanced_planes, compose._big_endian_float32
    compose.enhanced_planes = lambda out, into=None: whole(out)
    compose._big_endian_float32 = lambda a, into=None: float32(a)
"""


def pieces(frame: Path, size: int, shift: tuple[int, int], folder: Path) -> list[Path]:
    """Two overlapping ``size``² pieces of ``frame`` (SCI, ERR, DQ), the second ``shift`` pixels on."""
    out = []
    with fits.open(frame) as h:
        for k, (x0, y0) in enumerate([(0, 0), shift]):
            hdus = fits.HDUList([fits.PrimaryHDU(header=h[0].header)])
            for ext in ("SCI", "ERR", "DQ"):
                hdr = h[ext].header.copy()
                if "CRPIX1" in hdr:
                    hdr["CRPIX1"], hdr["CRPIX2"] = hdr["CRPIX1"] - x0, hdr["CRPIX2"] - y0
                hdus.append(fits.ImageHDU(h[ext].data[y0:y0 + size, x0:x0 + size], hdr, name=ext))
            out.append(folder / f"piece{k}_flt.fits")
            hdus.writeto(out[-1], overwrite=True)
    return out


#: a baseline: the whole grid at once, planes in memory, one by one, the grid in float64
BEFORE = ("WHOLE_GRID", "IN_MEMORY", "PER_PLANE", "FLOAT64_GRID", "KEEP_LUMINANCE")


def measure(args: list[str], before: tuple[str, ...] = ()) -> dict:
    return memory_probe.measure(args, PATCHES, {flag: "1" for flag in before})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("frame", nargs="?", default=str(REPO / "tests/data/fits/j8bt06nyq_flt_crop.fits"))
    ap.add_argument("--piece", type=int, default=160)
    ap.add_argument("--shift", default="60,40")
    ap.add_argument("--cutout-size", default="2arcsec")
    ap.add_argument("--far", type=int, help="pixels the far piece lies away, along x and y (default 4 pieces)")
    ap.add_argument("--only", help="run only the rows whose name holds this text (e.g. 'far apart'; several: "
                                   "'A|B')")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        p0, p1 = pieces(Path(args.frame), args.piece, tuple(int(v) for v in args.shift.split(",")), tmp)
        with fits.open(p1) as h:  # the pieces' common centre: the middle of the second piece's first half
            ra, dec = WCS(h["SCI"].header).all_pix2world([[args.piece / 4, args.piece / 4]], 0)[0]
        cut = ["--cutout", f"{ra} {dec}", "--cutout-size", args.cutout_size]
        outs = [str(tmp / "f" / f"{p.stem}.enhanced.fits") for p in (p0, p1)]
        far = tmp / "far_flt.fits"  # the second piece placed 4 pieces away on the sky: a wide, mostly empty grid
        with fits.open(p1) as h:
            for ext in ("SCI", "ERR", "DQ"):
                h[ext].header["CRPIX1"] -= args.far or 4 * args.piece
                h[ext].header["CRPIX2"] -= args.far or 4 * args.piece
            h.writeto(far)
        chip = tmp / "chip_flt.fits"  # an ACS/WFC chip's size, 4096x2048: the frame tiled (2x4), as one frame
        with fits.open(args.frame) as h:
            fits.HDUList([fits.PrimaryHDU(header=h[0].header)] + [
                fits.ImageHDU(np.tile(h[ext].data, (2, 4))[:2048, :4096], h[ext].header, name=ext)
                for ext in ("SCI", "ERR", "DQ")]).writeto(chip)
        on_its_grid = ["--enhance", "--grid", "first", "--format", "fits"]  # (a 134 Mpx grid, not a rotated 251)
        rows = [
            ("mosaic --enhance, whole grid at once (baseline)", ["mosaic", str(p0), str(p1), "-o", str(tmp / "a"),
                                                                 "--enhance"], BEFORE),
            ("mosaic --enhance, luminance kept (baseline)", ["mosaic", str(p0), str(p1), "-o", str(tmp / "b0"),
                                                             "--enhance"], ("KEEP_LUMINANCE",)),
            ("mosaic --enhance, in strips", ["mosaic", str(p0), str(p1), "-o", str(tmp / "b"), "--enhance"], ()),
            ("mosaic --enhance --cutout", ["mosaic", str(p0), str(p1), "-o", str(tmp / "c"), "--enhance", *cut],
             ()),
            ("mosaic, whole grid at once (baseline)", ["mosaic", str(p0), str(p1), "-o", str(tmp / "d")], BEFORE),
            ("mosaic, in strips", ["mosaic", str(p0), str(p1), "-o", str(tmp / "e")], ()),
            ("mosaic --combine median, whole grid (baseline)", ["mosaic", str(p0), str(p1), "-o", str(tmp / "h"),
                                                                "--combine", "median"], BEFORE),
            ("mosaic --combine median, in strips", ["mosaic", str(p0), str(p1), "-o", str(tmp / "i"), "--combine",
                                                    "median"], ()),
            ("run one piece (baseline)", ["run", str(p1), "-o", str(tmp / "f"), "-q"], ()),
            ("run one piece --cutout", ["run", str(p1), "-o", str(tmp / "g"), "-q", *cut], ()),
            ("run the other piece (for the next rows)", ["run", str(p0), "-o", str(tmp / "f"), "-q"], ()),
            ("mosaic of run's outputs, in memory (baseline)", ["mosaic", *outs, "-o", str(tmp / "j")], BEFORE),
            ("mosaic of run's outputs, in files and strips", ["mosaic", *outs, "-o", str(tmp / "k")], ()),
            ("mosaic of run's outputs --cutout", ["mosaic", *outs, "-o", str(tmp / "l"), *cut], ()),
            ("--enhance of a 4096x2048 chip, luminance kept (baseline)", ["mosaic", str(chip), "-o",
                                                                          str(tmp / "w0"), *on_its_grid],
             ("KEEP_LUMINANCE",)),
            ("--enhance of a 4096x2048 chip", ["mosaic", str(chip), "-o", str(tmp / "w"), *on_its_grid], ()),
            ("science mosaic far apart, in memory (baseline)", ["mosaic", str(p0), str(far), "-o", str(tmp / "m"),
                                                                "--format", "fits"], ("IN_MEMORY",
                                                                                      "FLOAT64_GRID")),
            ("science mosaic far apart, scratch files", ["mosaic", str(p0), str(far), "-o", str(tmp / "n"),
                                                         "--format", "fits"], ()),
        ]
        print(f"two {args.piece}² pieces of {Path(args.frame).name}, the second {args.shift} pixels on; cut-out "
              f"{args.cutout_size} about RA {ra:.6f} Dec {dec:.6f}")
        print(f"{'command':<50}{'seconds':>9}{'peak RSS MB':>13}{'RssAnon MB':>12}{'scratch MB':>12}"
              f"{'x baseline (s, RSS)':>22}")
        base = None
        for name, command, before in rows:
            if args.only and not any(text in name for text in args.only.split("|")):
                continue
            r = measure(command, before)
            base = r if "baseline" in name else base
            ratio = f"{r['seconds'] / base['seconds']:.2f}, {r['rss'] / base['rss']:.2f}"
            print(f"{name:<50}{r['seconds']:>9.1f}{r['rss']:>13.0f}{r['anon']:>12.0f}{r['scratch']:>12.0f}{ratio:>22}")
        for a, b in (("a", "b"), ("b0", "b"), ("d", "e"), ("h", "i"), ("j", "k"), ("w0", "w"), ("m", "n")):
            if not (tmp / a).exists() or not (tmp / b).exists():
                continue  # (rows left out by --only)
            with fits.open(tmp / a / "mosaic.mosaic.fits") as x, fits.open(tmp / b / "mosaic.mosaic.fits") as y:
                same = all(np.array_equal(u.data, v.data, equal_nan=True) for u, v in zip(x, y) if u.data is not None)
            print(f"mosaic {a} == mosaic {b} (baseline vs as shipped), every pixel: {same}")


if __name__ == "__main__":
    main()
