"""Ctrl-C and SIGTERM held back while code that cannot be interrupted cleanly runs.

Python raises KeyboardInterrupt (or the exception of a handler such as `sigterm_as_interrupt`'s) wherever the
interpreter happens to be when the signal is handled, and that includes Python code that a C extension calls back:
safetensors, building tensors from a file, turned a KeyboardInterrupt raised there into "could not determine the
shape of object type 'torch.storage.UntypedStorage'", which the weights loader reported as a corrupt weights file
(exit 1, not 130 or 143). Within `deferred`, the signal is recorded and handed to its handler on leaving.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[list[int]]:
    """Within: SIGTERM (a batch system's time limit: SLURM sends it, then SIGKILL) raises KeyboardInterrupt, as
    Ctrl-C does, so that a batch stops the same way; yields a list that holds the signal once it came.  Off the
    main thread (where handlers cannot be set) SIGTERM is left as it is."""
    came: list[int] = []

    def on_sigterm(signum, frame) -> None:
        came.append(signum)
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, on_sigterm)
    except ValueError:
        previous = None
    try:
        yield came
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def deferred() -> Iterator[list[int]]:
    """Within: SIGINT and SIGTERM are recorded (the list yielded), not acted on; on leaving, the first that came goes
    to the handler that was in place (Ctrl-C's KeyboardInterrupt, `sigterm_as_interrupt`'s; the default action ends
    the process; one that was ignored stays ignored, and the next that came acts), so that it interrupts Python code
    after the block, not a C extension inside it.  Off the main thread, where handlers cannot be set, and for a
    signal whose handler was not set from Python, nothing is deferred."""
    came: list[int] = []
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in SIGNALS:
            handler = signal.getsignal(sig)
            if handler is not None:  # (None: set outside Python, which could not be put back)
                previous[sig] = signal.signal(sig, lambda signum, frame: came.append(signum))
    try:
        yield came
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        # the first that acts: one ignored before (a background job's Ctrl-C) leaves a later SIGTERM its say
        for sig in came:
            handler = previous[sig]
            if callable(handler):
                handler(sig, None)
                break
            if handler == signal.SIG_DFL:
                signal.raise_signal(sig)
                break


def load_tensors(source, map_location="cpu"):
    """``torch.load(source, weights_only=True)`` — tensors and plain containers only, never arbitrary pickled
    objects — with Ctrl-C and SIGTERM held (`deferred`) and torch's warnings about a refused pickle kept quiet: the
    one way this package reads a torch file (checkpoints, ``--init``, ``--resume``, feature networks).  Errors
    are torch's own; each caller says what the file was meant to be."""
    import warnings

    import torch

    with warnings.catch_warnings(), deferred():
        warnings.simplefilter("ignore", UserWarning)
        return torch.load(source, map_location=map_location, weights_only=True)
