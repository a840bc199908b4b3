"""Per-stage speed of `astroenhance run` on one device, beside RRDBNet x4 on the same device in the same run (issue 19).

    python benchmarks/bench_gpu.py [--device cuda] [--size 4096] [--precisions fp32,bf16,fp16] [--batch 0]
    python benchmarks/bench_gpu.py --device cpu --size 1024 --precisions fp32 --stub-networks --count-ops --skip rrdb,agreement,file

The frame is the real ACS/HRC frame j8bt06nyq_flt.fits mirrored up to ``SIZE`` x ``SIZE`` (as `bench_memory.py`).
For each precision it prints, for ``enhance_array`` (colour + 4x, no file) and for ``run --format fits``
(`Enhancer.enhance_file` into a temporary folder), the seconds spent per stage (`Enhancer.time_stages`: read,
colorize, sr, blend, finish, flux, write; "setup" is the rest: the display mapping's fit, the provenance pass, headers),
the total and the output megapixels per second.  Timing synchronises the device between stages, so the untimed
total (last column) is what a user gets; on a GPU ``enhance_array``'s pieces are copied to the host by a thread, so
its "write" is only their hand-over (``--no-copy-thread`` books the copies there).  Then: the network alone on a batch of tiles (its own limit), RRDBNet x4
(23 blocks, 64 features) on a 256x256 input in the same precision, and the agreement of this device's output with
CPU fp32 on a 256x256 crop (max |difference| of the display RGB; of FLUX relative to its largest value).
Last, the writers' host-side rates (`bench_writers.py`'s table): on a GPU machine they, not the device, may bound `run`.

Works on the CPU too (``--device cpu --size 1024 --precisions fp32``): the same code, on the cores.
"""

from __future__ import annotations

import astroenhance  # noqa: F401  (first: sets GOMP_SPINCOUNT before torch loads OpenMP, as `run` does)
import argparse
import cProfile
import pstats
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from bench_memory import make_frame
from bench_speed import RRDBNet
from bench_writers import print_table
from bench_writers import rows as writer_rates


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device) -> float:
    sync(device)
    t = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t


#: operations after which the host has the device's result (a GPU's queue drains): data-dependent shapes, scalars
WAITS = {"aten.nonzero.default", "aten._local_scalar_dense.default", "aten.is_nonzero.default", "aten.equal.default"}


def count_ops(fn) -> tuple[Counter, Counter]:
    """The tensor operations ``fn()`` dispatches (by name) and, among them, the waits for the device (`WAITS`)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Count(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.ops: Counter = Counter()

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.ops[str(func)] += 1
            return func(*args, **(kwargs or {}))

    with Count() as mode:
        fn()
    return mode.ops, Counter({k: v for k, v in mode.ops.items() if k in WAITS})


class StubSR(torch.nn.Module):
    """A near-free stand-in for the SR network (`--stub-networks`): bicubic x``scale``."""

    def __init__(self, scale: int) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False)


class StubColorizer(torch.nn.Module):
    """A near-free stand-in for the colorizer (`--stub-networks`): zero chroma, the real whole-frame context."""

    def __init__(self, real: torch.nn.Module) -> None:
        super().__init__()
        self.real, self.thumb_size = real, real.thumb_size

    def global_features(self, thumb: torch.Tensor) -> torch.Tensor:
        return self.real.global_features(thumb)

    def forward(self, lum: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        return lum.new_zeros((lum.shape[0], 2, *lum.shape[-2:]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--size", type=int, default=4096, help="frame side in input pixels")
    ap.add_argument("--precisions", default="fp32,bf16,fp16", help="comma-separated; fp16 is skipped on CPU")
    ap.add_argument("--batch", type=int, default=0, help="tiles per network call (0: the engine's default)")
    ap.add_argument("--tile", type=int, default=0, help="tile side (0: the default)")
    ap.add_argument("--channels-last", action="store_true", help="the networks' weights channels-last (NHWC) on the device")
    ap.add_argument("--skip", default="", help="comma-separated parts to leave out: file (run --format fits), rrdb, "
                    "agreement")
    ap.add_argument("--profile", type=int, default=0, metavar="N", help="also run each mode once under cProfile and "
                    "print its N functions of most own time (host time; a wait for the device shows in the call "
                    "that waits, e.g. Tensor.cpu)")
    ap.add_argument("--finish-rows", type=int, default=0, help="input rows finished per step (engine.FINISH_ROWS; "
                    "0: as shipped), to measure what the step size costs on this device")
    ap.add_argument("--stub-networks", action="store_true", help="replace both networks by near-free stand-ins "
                    "(bicubic x4; zero chroma): what is left is everything around the networks, measurable on a CPU")
    ap.add_argument("--count-ops", action="store_true", help="also count the tensor operations each mode dispatches "
                    "and the points where the host waits for the device (nonzero, item/bool): on a GPU each operation "
                    "is a kernel launch from the host, the same count on any device")
    ap.add_argument("--no-copy-thread", action="store_true", help="enhance_array copies each finished piece to the host "
                    "in the engine's thread (engine.COPY_THREAD off), to measure what the copying thread buys on a GPU")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--psf-fwhm", type=float, default=None, help="run --psf-fwhm (input pixels; 0: no smoothing); "
                    "default: the frame's header's (the ACS/HRC frame: 2.2 for run, none for enhance_array)")
    ap.add_argument("--workdir", default=None, help="where the frame and the FITS outputs go (default: a temporary folder)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from astroenhance.config import EnhanceConfig
    from astroenhance.io.readers import read_frame
    from astroenhance.pipeline import Enhancer, engine

    if args.finish_rows:
        engine.FINISH_ROWS = args.finish_rows
    if args.no_copy_thread:
        engine.COPY_THREAD = False

    device = torch.device(args.device)
    scratch = None if args.workdir else tempfile.TemporaryDirectory(prefix="ae-gpu-", ignore_cleanup_errors=True)
    work = Path(args.workdir or scratch.name)  # (a temporary one is removed at the end: 316 MB a run at 1024²)
    work.mkdir(parents=True, exist_ok=True)
    path = work / f"frame_{args.size}.fits"
    make_frame(args.size, path)
    frame, wcs, _ = read_frame(path)
    out_mp = frame.size * 16 / 1e6
    extra = ({"batch": args.batch} | ({"tile": args.tile} if args.tile else {})
             | ({"psf_fwhm": args.psf_fwhm} if args.psf_fwhm is not None else {}))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"device {args.device} ({name}), torch {torch.__version__}; input {args.size}x{args.size} -> "
          f"{out_mp:.0f} output MP; batch {args.batch or 'default'}; {engine.FINISH_ROWS} rows per finishing step"
          f"{', channels-last' if args.channels_last else ''}{', pieces copied in the engine thread' if args.no_copy_thread else ''}"
          f"{', networks stubbed' if args.stub_networks else ''}")
    precisions = [p for p in args.precisions.split(",") if not (p == "fp16" and device.type == "cpu")]
    head = ["read", "colorize", "sr", "blend", "finish", "flux", "write", "setup"]
    print(f"{'mode':<28}" + "".join(f"{h:>9}" for h in head) + f"{'timed s':>9}{'MP/s':>8}{'untimed s':>10}{'MP/s':>8}")
    skip = set(filter(None, args.skip.split(",")))
    for prec in precisions:
        enh = Enhancer(EnhanceConfig(device=args.device, precision=prec, formats=("fits",), **extra))
        if args.stub_networks:
            enh.sr, enh.colorizer = StubSR(enh.scale), StubColorizer(enh.colorizer)
        if args.channels_last:
            for net in (enh.sr, enh.colorizer):
                net.to(memory_format=torch.channels_last)
        enh.enhance_array(frame[:128, :128], wcs)  # warm-up (kernels, allocator)
        for mode in ("enhance_array",) + (() if "file" in skip else ("run --format fits",)):
            def go(e=enh, m=mode, dest=work / f"out_{prec}"):
                if m == "enhance_array":
                    e.enhance_array(frame, wcs)
                else:
                    e.enhance_file(path, dest)
            t_plain = timed(go, device)
            stages = enh.time_stages()
            t = timed(go, device)
            enh.stages = None
            sec = dict(stages.seconds)
            sec["setup"] = max(0.0, t - sum(sec.values()))
            print(f"{mode + ' ' + prec:<28}" + "".join(f"{sec[h]:9.2f}" for h in head)
                  + f"{t:9.2f}{out_mp / t:8.1f}{t_plain:10.2f}{out_mp / t_plain:8.1f}")
            if args.count_ops:
                ops, waits = count_ops(go)
                print(f"  {mode}: {sum(ops.values())} tensor operations ({sum(ops.values()) / out_mp:.0f} per output MP), "
                      f"{sum(waits.values())} waits for the device ({dict(waits)}); most: "
                      + ", ".join(f"{k} {v}" for k, v in ops.most_common(6)))
            if args.profile:
                prof = cProfile.Profile()
                prof.runcall(lambda: timed(go, device))
                pstats.Stats(prof).sort_stats("tottime").print_stats(args.profile)
        # the SR network alone, on a batch of tiles: the limit the rest of the pipeline is measured against
        tile = enh.config.tile
        x = torch.rand((enh.accel.batch, 1, tile, tile), device=device)
        t_net = min(timed(lambda e=enh, x=x: e.accel.run_tensor(e.sr, x), device) for _ in range(3))
        print(f"  batch used: {enh.accel.batch} tiles per call")
        print(f"{'  SR network alone ' + prec:<28} {enh.accel.batch} tiles of {tile}^2: {t_net:.3f} s, "
              f"{x.numel() * 16 / 1e6 / t_net:.1f} output MP/s")
    # the writers run on the host (the writer thread, PNG encoding after the frame): their rates bound `run`'s
    print_table(writer_rates(args.size * 4, work, 4096))
    rrdb = RRDBNet().eval().to(device)
    for prec in [] if "rrdb" in skip else precisions:
        xin = torch.rand((1, 3, 256, 256), device=device)
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(prec)
        with torch.inference_mode(), torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            rrdb(xin[..., :32, :32])
            t_r = min(timed(lambda x=xin: rrdb(x), device) for _ in range(2))
        print(f"RRDBNet x4 {prec}: 256^2 input, {t_r:.3f} s, {1.048576 / t_r:.1f} output MP/s")
    # agreement with CPU fp32 on a crop
    if "agreement" in skip:
        return
    crop = frame[:256, :256]
    ref = Enhancer(EnhanceConfig(device="cpu")).enhance_array(crop, wcs)
    for prec in precisions:
        got = Enhancer(EnhanceConfig(device=args.device, precision=prec, **extra)).enhance_array(crop, wcs)
        ok = np.isfinite(ref.rgb) & np.isfinite(got.rgb)
        d_rgb = float(np.abs(ref.rgb - got.rgb)[ok].max())
        d_flux = float(np.nanmax(np.abs(ref.flux - got.flux)) / np.nanmax(np.abs(ref.flux)))
        print(f"{args.device} {prec} vs cpu fp32 (256^2 crop): max |RGB diff| {d_rgb:.2e}, max |FLUX diff| / max FLUX "
              f"{d_flux:.2e}, NaN pattern {'same' if np.array_equal(np.isnan(ref.rgb), np.isnan(got.rgb)) else 'DIFFERS'}")


if __name__ == "__main__":
    main()
