"""How fast the CLI answers before any work: `--help`, `run --help` and a usage error, as whole process starts.

    python benchmarks/bench_startup.py [--repeats 7]

Prints the median wall time of each, beside two baselines measured in the same run: a bare Python start and one
that imports Typer and Rich (what any Typer CLI pays).  The target (issue 17) is < 0.5 s for the three commands;
the ratio to the Typer+Rich baseline is the figure to compare between machines.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

CASES = {
    "python -c pass (baseline)": [sys.executable, "-c", "pass"],
    "import typer, rich (baseline)": [sys.executable, "-c", "import typer, rich.console, rich.progress"],
    "astroenhance --help": [sys.executable, "-m", "astroenhance", "--help"],
    "astroenhance run --help": [sys.executable, "-m", "astroenhance", "run", "--help"],
    "usage error (run --format gif)": [sys.executable, "-m", "astroenhance", "run", "x.fits", "-o", "o", "--format", "gif"],
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    times: dict[str, list[float]] = {k: [] for k in CASES}
    for _ in range(args.repeats):  # interleaved, so a busy moment hits every case alike
        for name, cmd in CASES.items():
            t0 = time.perf_counter()
            subprocess.run(cmd, capture_output=True)
            times[name].append(time.perf_counter() - t0)
    base = statistics.median(times["import typer, rich (baseline)"])
    print(f"{'command':<34}{'median s':>10}{'x typer+rich':>14}")
    for name, t in times.items():
        med = statistics.median(t)
        print(f"{name:<34}{med:>10.3f}{med / base:>14.2f}")


if __name__ == "__main__":
    main()
