"""One job (one input file) as a self-contained task, so a loop, a process pool or a Dask cluster can run it.

Each worker process keeps one `Enhancer` per configuration (networks loaded once per process); a task holds
no other state.  A task never raises for a bad input: it returns a `Record` with the reason.
"""

from __future__ import annotations

import ctypes
import os
import sys
import time
import traceback
from dataclasses import dataclass, field

from .batch import Job, Record, cleanup_stale_temporaries, output_is_complete
from .config import EnhanceConfig
from .errors import AstroEnhanceError, DiskFullError

_ENHANCERS: dict[EnhanceConfig, object] = {}


@dataclass
class JobResult:
    record: Record
    messages: list[tuple[str, str]] = field(default_factory=list)  # (style, text)
    disk_full: bool = False


def enhancer_for(config: EnhanceConfig):
    """The worker process's `Enhancer` for ``config`` (created on first use)."""
    from .pipeline import Enhancer

    if config not in _ENHANCERS:
        bound_memory(os.environ.get("ASTROENHANCE_LOW_MEMORY") == "1")
        _ENHANCERS[config] = Enhancer(config)
    return _ENHANCERS[config]


ONEDNN_CACHE = "16"  # compiled convolution kernels oneDNN keeps (its default, 1024, grows with a frame's shapes)


def bound_memory(low_memory: bool = False) -> None:
    """Settings of every `run` process that keep its peak memory from growing with the frame.

    oneDNN (PyTorch's CPU convolutions) caches a compiled kernel, with its buffers, for every input shape it
    meets; a large frame brings more shapes (edge tiles, colorizer passes, strips), so the cache is capped at
    16 kernels (same speed on 2 cores; an explicit ``ONEDNN_PRIMITIVE_CACHE_CAPACITY`` wins).  Takes effect
    if called before the first convolution.  ``low_memory`` also serves every buffer of 1 MiB or more by
    mmap, returned to the system when freed, instead of glibc's heap (flatter still, but slower: every
    large buffer is faulted in afresh).  Numbers in the README (``benchmarks/bench_memory.py``)."""
    os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", ONEDNN_CACHE)
    if low_memory:
        bounded_malloc()


def bounded_malloc() -> None:
    """Serve every buffer of 1 MiB or more by mmap (returned to the system when freed) instead of glibc's
    growing heap.  No-op where glibc is absent."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6").mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD = 1 MiB, fixed from now on
        except (OSError, AttributeError):
            pass


def set_threads(threads: int) -> None:
    """Limit torch's threads in this process (workers x threads must not exceed the cores)."""
    if threads > 0:
        import torch

        torch.set_num_threads(threads)
        os.environ["OMP_NUM_THREADS"] = str(threads)


def run_job(config: EnhanceConfig, job: Job, skip_existing: bool = False, debug: bool = False,
            threads: int = 0, verbose: bool = True, progress=None) -> JobResult:
    """Enhance ``job.path`` into ``job.outdir``; never raises for a bad input."""
    set_threads(threads)
    path = job.path
    start = time.perf_counter()
    messages: list[tuple[str, str]] = []
    try:
        for stale in cleanup_stale_temporaries(job.outdir):
            messages.append(("", f"note: removed {stale} left by an interrupted run"))
        enhancer = enhancer_for(config)
        if skip_existing:
            from .models.weights import sha256_file

            planned = enhancer.planned_outputs(path, job.outdir)
            sha = sha256_file(path)
            if planned and all(output_is_complete(p, shape, sha) for p, shape in planned):
                if verbose:
                    messages.append(("", f"skip {path}: outputs complete"))
                return JobResult(Record(str(path), "skipped", [str(p) for p, _ in planned]), messages)
        results = enhancer.enhance_file(path, job.outdir, progress=progress)
    except DiskFullError as exc:
        messages.append(("red", f"error: {exc}"))
        return JobResult(Record(str(path), "failed", seconds=time.perf_counter() - start, error=str(exc)), messages, True)
    except AstroEnhanceError as exc:
        messages.append(("red", f"error: {exc}"))
        return JobResult(Record(str(path), "failed", seconds=time.perf_counter() - start, error=str(exc)), messages)
    except Exception as exc:  # a bug or an unforeseen input: report it, keep going
        messages.append(("red", f"error: {path}: unexpected {type(exc).__name__}: {exc}"))
        if debug:
            messages.append(("", traceback.format_exc()))
        return JobResult(Record(str(path), "failed", seconds=time.perf_counter() - start,
                                error=f"{type(exc).__name__}: {exc}"), messages)
    outputs = [str(o) for r in results for o in r.outputs]
    for r in results:
        for note in r.notes:
            messages.append(("yellow", f"note: {r.source}: {note}"))
        if verbose:
            messages.append(("", f"done {r.source} {r.shape_in[1]}x{r.shape_in[0]} -> {r.shape_out[1]}x{r.shape_out[0]}: "
                             + ", ".join(str(o) for o in r.outputs)))
    return JobResult(Record(str(path), "done", outputs, time.perf_counter() - start), messages)


def run_job_in_path(args: tuple) -> JobResult:
    """`run_job` with one tuple argument (for executors' map)."""
    return run_job(*args)
