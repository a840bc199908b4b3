"""How commands stop when interrupted at a random moment: Ctrl-C (SIGINT to the process group, as a terminal sends
it) or SIGTERM (a batch system's time limit), alternately, at a time drawn from a window after the start.

    python benchmarks/bench_interrupts.py [--tries 6] [--window 1.5,6] [--seed 0] [--commands run,jobs2,mosaic,hst]

For each command a table row: the exit statuses seen (130 Ctrl-C, 143 SIGTERM, 0 finished first; -2/-15 where the
signal came before Python had set its handlers, or after the work was done), how many tries left a temporary
(``*astroenhance-tmp*``) under the output folder or a scratch folder in $TMPDIR, and how many printed a traceback.
Compare two versions by running this in a worktree of each (the window and seed the same).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "abell_2744_group_of_galaxies_f105w.fits.gz"


def commands(frames: Path, out: Path) -> dict[str, list[str]]:
    cli = [sys.executable, "-m", "astroenhance.cli"]
    return {"run": [*cli, "run", str(frames), "--format", "fits,png", "-o", str(out)],
            "jobs2": [*cli, "run", str(frames), "--format", "fits", "--jobs", "2", "-o", str(out)],
            "mosaic": [*cli, "mosaic", str(frames), "--enhance", "-o", str(out)],
            "hst": [*cli, "evaluate", "--task", "hst", "--simulated", "2", "--draws", "1", "--json",
                    str(out / "hst.json")]}


def one_try(cmd: list[str], out: Path, tmp: Path, sig: int, delay: float) -> tuple[int, bool, bool]:
    """Exit status, whether anything temporary was left, whether a traceback was printed."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
                            env=dict(os.environ, TMPDIR=str(tmp)),
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # (as a terminal's)
    time.sleep(delay)
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass
    said, _ = proc.communicate(timeout=600)
    left = any("astroenhance-tmp" in p.name for p in out.rglob("*")) or any(tmp.glob("astroenhance-hst-*"))
    return proc.returncode, left, "Traceback" in said


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tries", type=int, default=6)
    ap.add_argument("--window", default="1.5,6", help="seconds after the start: lo,hi")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--commands", default="run,jobs2,mosaic,hst")
    args = ap.parse_args()
    lo, hi = (float(v) for v in args.window.split(","))
    rng = random.Random(args.seed)
    print(f"{'command':8s} {'tries':>5s}  {'exit statuses':32s} {'leftovers':>9s} {'tracebacks':>10s}")
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        frames = work / "frames"
        frames.mkdir()
        for i in range(4):
            shutil.copy(EXAMPLE, frames / f"f{i}.fits.gz")
        for name in args.commands.split(","):
            tmp = work / f"tmp-{name}"
            tmp.mkdir()
            codes, left, tracebacks = Counter(), 0, 0
            for t in range(args.tries):
                sig = signal.SIGINT if t % 2 else signal.SIGTERM
                code, leftover, tb = one_try(commands(frames, work / "out")[name], work / "out", tmp, sig,
                                             rng.uniform(lo, hi))
                codes[code] += 1
                left += leftover
                tracebacks += tb
                shutil.rmtree(tmp)
                tmp.mkdir()
            said = ", ".join(f"{c}: {n}" for c, n in sorted(codes.items()))
            print(f"{name:8s} {args.tries:5d}  {said:32s} {left:9d} {tracebacks:10d}", flush=True)


if __name__ == "__main__":
    main()
