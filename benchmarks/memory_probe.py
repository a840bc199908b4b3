"""One astroenhance command in a fresh process, its wall time and its peak memory, for the memory benchmarks.

`measure(args, patches, env)` runs ``astroenhance ARGS`` in-process in a new Python, after ``patches`` (source run
first: a baseline's monkeypatches, which may set ``extra``, a dict printed with the result), sampling VmRSS and
RssAnon (what the kernel cannot drop: memory-mapped scratch excluded) every 20 ms in a thread.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

SAMPLER = r"""
import json, os, sys, threading, time
peak = {"rss": 0.0, "anon": 0.0}
def sample():
    while True:
        with open("/proc/self/status") as f:
            got = {l.split(":")[0]: int(l.split()[1]) / 1e3 for l in f if l.startswith(("VmRSS:", "RssAnon:"))}
        peak["rss"], peak["anon"] = max(peak["rss"], got["VmRSS"]), max(peak["anon"], got["RssAnon"])
        time.sleep(0.02)
threading.Thread(target=sample, daemon=True).start()
extra = {}
"""

RUN = r"""
from astroenhance.cli import app
sys.argv = ["astroenhance", *json.loads(os.environ["ARGS"])]
start = time.perf_counter()
try:
    app()
except SystemExit as exc:
    code = exc.code
print(json.dumps({"seconds": time.perf_counter() - start, "code": code, **{k: v() for k, v in extra.items()}, **peak}))
"""


def measure(args: list[str], patches: str = "", env: dict[str, str] | None = None) -> dict:
    """``{"seconds", "code", "rss", "anon", ...extra}`` of ``astroenhance ARGS``; a failed command stops the bench."""
    done = subprocess.run([sys.executable, "-c", SAMPLER + patches + RUN],
                          env={**os.environ, **(env or {}), "ARGS": json.dumps(args)},
                          capture_output=True, text=True, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if result["code"] not in (0, None):
        raise SystemExit(f"astroenhance {' '.join(args)} exited {result['code']}:\n{done.stderr[-2000:]}")
    return result
