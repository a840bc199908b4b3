"""Speed and peak memory of `run`'s memory settings, interleaved runs: none ("plain"), `run`'s default
(`runner.bound_memory()`: oneDNN kernel cache capped; "run"), and `--low-memory` ("low-memory").

    python benchmarks/bench_low_memory.py [--size 1024] [--repeats 3]

Each run is a fresh process that enhances the same frame (the ACS/HRC frame of bench_memory.py) in memory
(`Enhancer.process`, no file writing), so the two modes differ only in the allocator setting.  Prints a table
of output MP/s and peak RSS per run and the ratio of the medians.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench_memory import SAFE_PATH, make_frame  # a sibling script: its folder is sys.path[0] when run as a script

CODE = """
import resource, sys, time
from astroenhance.runner import bound_memory
if sys.argv[2] != "plain":
    bound_memory(low_memory=sys.argv[2] == "low-memory")
from astroenhance.config import EnhanceConfig
from astroenhance.io.readers import open_frames
from astroenhance.pipeline import Enhancer
enh = Enhancer(EnhanceConfig(device="cpu"))
with open_frames(sys.argv[1]) as frames:
    src = frames[0]
    t = time.perf_counter()
    enh.process(src, enh.config.for_input(True), lambda *a: None)
    dt = time.perf_counter() - t
print("RESULT", 16 * src.shape[0] * src.shape[1] / dt / 1e6, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    scratch = tempfile.TemporaryDirectory(prefix="ae-lowmem-", ignore_cleanup_errors=True)  # (removed at the end)
    frame = Path(scratch.name) / f"frame_{args.size}.fits"
    make_frame(args.size, frame)
    rows: dict[str, list[tuple[float, float]]] = {"plain": [], "run": [], "low-memory": []}
    for _ in range(args.repeats):
        for mode in rows:
            res = subprocess.run([sys.executable, "-c", CODE, str(frame), mode], capture_output=True, text=True,
                                 env=SAFE_PATH)
            line = next((ln for ln in res.stdout.splitlines() if ln.startswith("RESULT")), None)
            if line is None:
                sys.exit(res.stderr[-2000:])
            rows[mode].append((float(line.split()[1]), float(line.split()[2])))
    print(f"{'mode':<12} {'out MP/s (each run)':<28} {'peak RSS MB':>12}")
    for mode, r in rows.items():
        print(f"{mode:<12} {' '.join(f'{m:.3f}' for m, _ in r):<28} {max(x for _, x in r):12.0f}")
    plain = statistics.median(m for m, _ in rows["plain"])
    for mode in ("run", "low-memory"):
        print(f"{mode} speed / plain speed (medians): {statistics.median(m for m, _ in rows[mode]) / plain:.2f}")


if __name__ == "__main__":
    main()
