"""How many host threads numpy work outside the networks may take (the sky-noise map, the cosmic-ray search, PNG
encoding): the cores this process may use (a batch job's affinity), at most `LIMIT`, or the share a ``--jobs``
worker was given."""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

LIMIT = 8
SHARE = 0  # a worker's share of the cores (`runner.set_threads`); 0: none given

T = TypeVar("T")


def host_threads() -> int:
    """Threads for this process's numpy work: `SHARE` where set, else its usable cores, at most `LIMIT`."""
    if SHARE:
        return SHARE
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(LIMIT, cores or 1))


def in_order(jobs: Iterable[tuple[Callable[..., T], tuple]], threads: int = 0) -> Iterator[T]:
    """The results of ``fn(*args)`` for each ``(fn, args)`` of ``jobs``, in order, computed by ``threads`` threads
    (0: `host_threads`) with at most twice that many waiting (the jobs' inputs are made as they are drawn, so memory
    stays bounded); numpy and zlib work outside the GIL.  One thread: no pool at all."""
    threads = threads or host_threads()
    if threads == 1:
        for fn, args in jobs:
            yield fn(*args)
        return
    with ThreadPoolExecutor(threads) as pool:
        running: deque = deque()
        for fn, args in jobs:
            running.append(pool.submit(fn, *args))
            if len(running) >= 2 * threads:
                yield running.popleft().result()
        while running:
            yield running.popleft().result()
