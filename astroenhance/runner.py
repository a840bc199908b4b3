"""The batch executor: one job (one input file) as a self-contained task, run in this process, a local process
pool (`--jobs N`) or on a Dask cluster (`--scheduler`) — `run_batch` yields each job's result as it finishes.

Each worker process keeps one `Enhancer` per configuration (networks loaded once per process); a task holds
no other state.  A task never raises for a bad input: it returns a `Record` with the reason.  Messages carry a
level ("info", "note", "error", "detail"), never a presentation: the CLI decides how they look.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .batch import Job, Record, check_claims
from .config import EnhanceConfig
from .errors import AstroEnhanceError, DiskFullError, NoImageError, NoiseMapError, SettingsError
from .io.writers import cleanup_stale_temporaries, output_is_complete, recorded_settings

_ENHANCERS: dict[EnhanceConfig, object] = {}  # this process's enhancers, by configuration
_WORKER_DEVICE: str | None = None  # a pool worker's own GPU (`worker_device`), in place of the run's "cuda"/"auto"


@dataclass
class JobResult:
    record: Record
    messages: list[tuple[str, str]] = field(default_factory=list)  # (level, text)
    disk_full: bool = False


@dataclass(frozen=True)
class Task:
    """Everything a worker needs for one job (picklable: it crosses process and machine boundaries)."""

    config: EnhanceConfig
    job: Job
    skip_existing: bool = False
    debug: bool = False
    threads: int = 0
    verbose: bool = True
    low_memory: bool = False


def naming(path: Path, exc: BaseException) -> str:
    """``exc``'s message as one line naming the file ``path`` (most errors name it already; a setting that does not
    fit this one file, e.g. ``--interval range`` for a FITS frame, did not)."""
    msg = str(exc)
    return msg if msg.startswith(str(path)) else f"{path}: {msg}"


def share_enhancer(enhancer) -> None:
    """Let this process's jobs reuse ``enhancer`` (its networks already loaded) for its configuration."""
    _ENHANCERS[enhancer.asked] = enhancer


def worker_device(device: str, index: int, n_gpus: int) -> str | None:
    """The GPU pool worker ``index`` runs on when the run asked for ``device`` and the machine shows ``n_gpus``:
    ``cuda:<index mod n_gpus>`` (workers spread over the GPUs, one each while there are enough), None where the run
    asked for the CPU or a numbered GPU, or there are no GPUs (then the run's device stands)."""
    if device not in ("cuda", "auto") or n_gpus < 1:
        return None
    return f"cuda:{index % n_gpus}"


def _init_worker(parent_pid: int, counter, device: str, n_gpus: int) -> None:
    """A pool worker's start: die with the parent, and take the next GPU (`worker_device`)."""
    global _WORKER_DEVICE
    die_with_parent(parent_pid)
    # Ctrl-C in a terminal reaches every process of the group: the parent alone decides (it stops the batch and
    # sends SIGTERM to the workers still enhancing, which unwinds them as an interrupt: temporaries removed)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _interrupt)
    if hasattr(signal, "pthread_sigmask"):  # (blocked until now: `signals_held_for_workers`)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    with counter.get_lock():
        index = counter.value
        counter.value += 1
    _WORKER_DEVICE = worker_device(device, index, n_gpus)


@contextlib.contextmanager
def signals_held_for_workers() -> Iterator[None]:
    """Within: SIGINT and SIGTERM blocked in this thread, so that the worker processes it starts begin with them
    blocked (a child inherits the mask) until `_init_worker` has set their handlers. A Ctrl-C while a worker was
    still starting (importing torch) killed it, and the pool, broken with futures already cancelled, printed a
    traceback of its own (InvalidStateError). A signal that comes meanwhile reaches this process as the block ends."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


_STOPPING = False  # a worker told to stop (SIGTERM from its parent): it starts no queued frame
_IN_JOB = False  # a worker enhancing a frame (only then may the stop interrupt it, not while it passes results)


def _interrupt(signum, frame) -> None:
    global _STOPPING
    _STOPPING = True
    if _IN_JOB:
        raise KeyboardInterrupt


def _stop_workers(pool, futures) -> None:
    """Cancel the queued frames and interrupt the workers still enhancing one (SIGTERM: `_interrupt`), so that
    the pool's shutdown does not wait for them."""
    for f in futures:
        f.cancel()
    for proc in list((getattr(pool, "_processes", None) or {}).values()):  # the executor's own record of them
        if proc.is_alive():
            try:
                os.kill(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass


def enhancer_for(config: EnhanceConfig, low_memory: bool = False):
    """The worker process's `Enhancer` for ``config`` (created on first use; on the worker's own GPU, if it has one)."""
    from dataclasses import replace

    from .pipeline import Enhancer

    if _WORKER_DEVICE is not None and config.device in ("cuda", "auto") and config not in _ENHANCERS:
        _ENHANCERS[config] = enhancer_for(replace(config, device=_WORKER_DEVICE), low_memory)
    if config not in _ENHANCERS:
        bound_memory(low_memory)
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


def die_with_parent(parent_pid: int) -> None:
    """In a worker process: be killed when the parent dies (Linux parent-death signal), so that a killed `run`
    leaves no workers finishing queued frames for nobody; elsewhere, or if the parent is already gone, exit."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent_pid:  # the parent died before the signal was armed
        os._exit(1)


def _gpu_count(device: str) -> int:
    """The GPUs this machine shows to torch, where the run may use them (``device`` cuda or auto); else 0."""
    if device not in ("cuda", "auto"):
        return 0
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def set_threads(threads: int) -> None:
    """Limit torch's threads and those of the numpy work in reading and writing (`cores`) in this process
    (workers x threads must not exceed the cores)."""
    if threads > 0:
        import torch

        from . import cores

        torch.set_num_threads(threads)
        os.environ["OMP_NUM_THREADS"] = str(threads)
        cores.SHARE = threads


#: `existing_outputs`: every output complete; complete but made with other settings or networks (or by a version
#: that recorded none); anything else (missing, cut short, from other input bytes or maps)
COMPLETE, OTHER_SETTINGS, NOT_COMPLETE = "complete", "other settings", ""


def existing_outputs(enhancer, job: Job, planned: list[tuple[Path, tuple[int, int]]]) -> str:
    """What `run --skip-existing` finds of the outputs it plans for ``job`` (``planned``: `Enhancer.planned_outputs`):
    `COMPLETE` where each exists with the right shape, made from these input bytes and these map files (`map_files`:
    the noise or weight map and the data-quality file) with ``enhancer``'s settings and networks
    (`Enhancer.expected_settings`); `OTHER_SETTINGS` where all that holds but the settings; else `NOT_COMPLETE`.
    The input is read (hashed) only where every output exists."""
    from .models.weights import sha256_file

    if not planned or not all(p.is_file() for p, _ in planned):
        return NOT_COMPLETE
    sha = sha256_file(job.path)
    noise_sha, dq_sha = (sha256_file(f) if f else "" for f in map_files(job, enhancer.config))
    if not all(output_is_complete(p, shape, sha, noise_sha, dq_sha) for p, shape in planned):
        return NOT_COMPLETE
    settings = enhancer.expected_settings(job.path)
    return COMPLETE if all(recorded_settings(p) == settings for p, _ in planned) else OTHER_SETTINGS


def interrupted_records(enhancer, jobs: list[Job], since: float) -> list[Record]:
    """The report's records for ``jobs`` that an interrupted run left without a result: "done" where every output
    the job plans is complete and was written after ``since`` (time.time() when the run began: the frame finished as
    the interrupt came), else "skipped", not finished."""
    records = []
    for job in jobs:
        try:
            planned = enhancer.planned_outputs(job.path, job.outdir)
            # (written during this run, before the input is hashed: a thousand frames not started cost no reading)
            made = (all(p.exists() and p.stat().st_mtime >= since for p, _ in planned)
                    and existing_outputs(enhancer, job, planned) == COMPLETE)
        except (AstroEnhanceError, OSError):
            made = False
        records.append(Record(str(job.path), "done", [str(p) for p, _ in planned]) if made else
                       Record(str(job.path), "skipped", error="not finished: the run was interrupted"))
    return records


def map_files(job: Job, config: EnhanceConfig) -> tuple[str | None, str | None]:
    """The files a job's frame takes its noise and its DQ from: the rms or weight map (its companion, else --noise /
    --weight) and the data-quality file (its companion, else --dq); None where there is none."""
    noise = job.noise or job.weight or config.noise or config.weight
    dq = job.dq or config.dq
    return (str(noise) if noise else None), (str(dq) if dq else None)


def run_job(task: Task, progress=None) -> JobResult:
    """Enhance ``task.job.path`` into ``task.job.outdir``; never raises for a bad input.  Library warnings (astropy's
    notes on odd headers) stay quiet, in a worker process as in the main one: what matters reaches the messages."""
    global _IN_JOB
    _IN_JOB = True
    try:
        if _STOPPING:  # queued before the run was interrupted
            raise KeyboardInterrupt
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return _run_job(task, progress)
    finally:
        _IN_JOB = False


def _run_job(task: Task, progress=None) -> JobResult:
    config, job, skip_existing, debug, verbose = task.config, task.job, task.skip_existing, task.debug, task.verbose
    set_threads(task.threads)
    path = job.path
    start = time.perf_counter()
    messages: list[tuple[str, str]] = []
    remade = ""
    try:
        for stale in cleanup_stale_temporaries(job.outdir):
            if verbose:
                messages.append(("note", f"removed {stale} left by an interrupted run"))
        enhancer = enhancer_for(config, task.low_memory)
        if skip_existing:
            found = existing_outputs(enhancer, job, planned := enhancer.planned_outputs(path, job.outdir))
            if found == COMPLETE:
                if verbose:
                    messages.append(("info", f"skip {path}: outputs complete"))
                return JobResult(Record(str(path), "skipped", [str(p) for p, _ in planned]), messages)
            if found == OTHER_SETTINGS:  # (said also with -q, and in the report: why a finished frame is made again)
                remade = f"{path}: its outputs were made with other settings or weights (AE_SETSH): made again"
                messages.append(("note", remade))
        results, unused = None, ""
        if job.noise is not None or job.weight is not None:  # the map beside it (`batch.pair_companions`)
            companion = job.noise or job.weight
            try:
                results = enhancer.enhance_file(path, job.outdir, progress=progress, noise=job.noise, weight=job.weight,
                                                dq=job.dq)
                for r in results:
                    r.notes.append(f"noise from {companion.name} beside it (--no-companions: the file's own)")
            except NoiseMapError as exc:  # an unusable map: say why and go on with the frame's own noise
                unused = f"{path}: {companion.name} beside it not used as its noise: {exc}"
                if verbose:  # with -q in the report only, as the frame's other notes
                    messages.append(("note", unused))
        if results is None:
            results = enhancer.enhance_file(path, job.outdir, progress=progress, dq=job.dq)
    except DiskFullError as exc:
        messages.append(("error", why := naming(path, exc)))
        return JobResult(Record(str(path), "failed", seconds=time.perf_counter() - start, error=why), messages, True)
    except AstroEnhanceError as exc:
        if isinstance(exc, NoImageError) and job.in_folder:  # a catalogue or table beside a folder's frames
            why = exc.skip_reason(path)  # (named on the command line: an error)
            if verbose:
                messages.append(("note", f"skipped {path}: {why}"))
            return JobResult(Record(str(path), "skipped", seconds=time.perf_counter() - start, error=why), messages)
        messages.append(("error", why := naming(path, exc)))
        return JobResult(Record(str(path), "failed", seconds=time.perf_counter() - start, error=why), messages)
    except Exception as exc:  # a bug or an unforeseen input: report it, keep going
        messages.append(("error", f"{path}: unexpected {type(exc).__name__}: {exc}"))
        if debug:
            messages.append(("detail", traceback.format_exc()))
        return JobResult(Record(str(path), "failed", seconds=time.perf_counter() - start,
                                error=f"{type(exc).__name__}: {exc}"), messages)
    outputs = [str(o) for r in results for o in r.outputs]
    for r in results:
        for note in r.notes if verbose else ():
            messages.append(("note", f"{r.source}: {note}"))
        if verbose:
            messages.append(("info", f"done {r.source} {r.shape_in[1]}x{r.shape_in[0]} -> {r.shape_out[1]}x{r.shape_out[0]}: "
                             + ", ".join(str(o) for o in r.outputs)))
    notes = [n for n in (remade, unused) if n] + [f"{r.source}: {note}" for r in results for note in r.notes]
    return JobResult(Record(str(path), "done", outputs, time.perf_counter() - start, notes=notes), messages)


def run_batch(enhancer, jobs: list[Job], *, n_jobs: int = 1, scheduler: str | None = None,
              skip_existing: bool = False, debug: bool = False, verbose: bool = True, low_memory: bool = False,
              tile_progress: Callable[[int, int], None] | None = None) -> Iterator[JobResult]:
    """Enhance ``jobs`` with ``enhancer``'s settings; yield one `JobResult` per input, in the order they finish.

    Inputs whose outputs another input of this run would write are failed first (`batch.check_claims`).  On a
    full output disk the batch stops: the remaining inputs are yielded as failed, "not started".  Work runs in
    this process (``n_jobs`` 1, reusing ``enhancer``), in ``n_jobs`` spawned processes, or on the Dask cluster
    at ``scheduler`` (one task per frame; the workers must see the same paths)."""
    claimed: dict = {}
    pending = []
    inputs = {j.path.resolve() for j in jobs}
    for job in jobs:
        try:
            check_claims(enhancer, job.path, job.outdir, claimed, inputs)
            pending.append(job)
        except AstroEnhanceError as exc:
            yield JobResult(Record(str(job.path), "failed", error=(why := naming(job.path, exc))), [("error", why)])
    share_enhancer(enhancer)
    parallel = n_jobs > 1 or scheduler
    threads = max(1, (os.cpu_count() or 1) // max(1, n_jobs)) if parallel else 0
    # (the settings as given: resolved for the FITS network, a picture in a worker lost its own network's noise gate)
    tasks = [Task(enhancer.asked, job, skip_existing, debug, threads, verbose, low_memory) for job in pending]
    finished = set()
    for result in _execute(tasks, n_jobs, scheduler, tile_progress):
        finished.add(result.record.input)
        yield result
        if result.disk_full:
            why = "not started: the output disk is full"
            for job in pending:
                if str(job.path) not in finished:
                    yield JobResult(Record(str(job.path), "failed", error=why))
            return


def _execute(tasks: list[Task], n_jobs: int, scheduler: str | None, tile_progress=None) -> Iterator[JobResult]:
    """Yield each task's `JobResult` as it finishes: in this process, a process pool, or a Dask cluster; stop
    handing out work after a full disk."""
    if scheduler:
        try:
            from dask.distributed import Client, as_completed
        except ImportError:
            raise SettingsError("--scheduler needs dask.distributed: pip install 'dask[distributed]'") from None
        try:
            client = Client(scheduler, timeout=30)
        except Exception as exc:
            raise SettingsError(f"--scheduler {scheduler}: cannot connect ({exc})") from None
        futures: list = []
        try:
            futures = [client.submit(run_job, t, pure=False) for t in tasks]
            for fut in as_completed(futures):
                result = fut.result()
                yield result
                if result.disk_full:
                    client.cancel(futures)
                    return
        except BaseException:  # Ctrl-C, or the caller stopped reading: the cluster drops what it has not started
            client.cancel(futures)
            raise
        finally:
            client.close()
    elif n_jobs > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor
        from concurrent.futures import as_completed as done
        from concurrent.futures.process import BrokenProcessPool

        context = multiprocessing.get_context("spawn")
        device = tasks[0].config.device if tasks else "cpu"
        with ProcessPoolExecutor(max_workers=n_jobs, mp_context=context, initializer=_init_worker,
                                 initargs=(os.getpid(), context.Value("i", 0), device, _gpu_count(device))) as pool:
            futures: dict = {}
            given: set = set()
            try:
                with signals_held_for_workers():  # (the workers start here, with the parent's signal mask)
                    for t in tasks:
                        futures[pool.submit(run_job, t)] = t
                for fut in done(futures):
                    try:
                        result = fut.result()
                    except BrokenProcessPool:  # a worker was killed (out of memory, a signal): say so for each frame
                        why = "a worker process died (killed, or out of memory); rerun with --skip-existing"
                        for f, t in futures.items():
                            if f in given:
                                continue
                            if f.done() and not f.cancelled() and f.exception() is None:
                                yield f.result()
                            else:
                                yield JobResult(Record(str(t.job.path), "failed", error=why),
                                                [("error", f"{t.job.path}: {why}")])
                        return
                    given.add(fut)
                    yield result
                    if result.disk_full:
                        for f in futures:
                            f.cancel()
                        return
            except BaseException:  # Ctrl-C, or the caller stopped reading: no queued frame may start
                _stop_workers(pool, futures)  # (frames that finished meanwhile: `interrupted_records`)
                raise
    else:
        for t in tasks:
            result = run_job(t, progress=tile_progress)
            yield result
            if result.disk_full:
                return
