"""Writing a training run's checkpoint and log so that a full disk is one line, never a traceback or a broken file.

A checkpoint is written under a temporary name and renamed into place: a failed write (the disk full halfway: torch
says only "unexpected pos 163392 vs 163344") leaves the checkpoint before it as it was and no temporary behind.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import IO

import torch

from ..errors import OutputError, short_reason
from ..io.writers import temporary_path
from ..models.weights import checkpoint_digest_path, sha256_file

#: free space under which a failed write is put down to a full disk (torch's zip writer gives no errno)
LITTLE_ROOM = 16 << 20


def _why(path: Path, exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    try:
        if shutil.disk_usage(path.parent).free < LITTLE_ROOM:
            return "no space left on the device"
    except OSError:
        pass
    return short_reason(exc)


def save_checkpoint(state: dict, path: Path) -> Path:
    """``state`` saved at ``path`` (`torch.save`) atomically, its sha256 beside it (``ckpt.pt.sha256``, the
    ``sha256sum`` format: `models.weights.read_checkpoint` checks it on every load); an `OutputError` naming it
    and saying what is kept where the write fails."""
    tmp = temporary_path(path)
    digest_path = checkpoint_digest_path(path)
    tmp_digest = temporary_path(digest_path)
    try:
        torch.save(state, tmp)
        tmp_digest.write_text(f"{sha256_file(tmp)}  {path.name}\n", encoding="ascii")
        os.replace(tmp, path)
        os.replace(tmp_digest, digest_path)  # (only a crash between the two renames leaves them disagreeing)
    except BaseException as exc:  # (a second Ctrl-C or SIGTERM while it is written too: no temporary left)
        tmp.unlink(missing_ok=True)
        tmp_digest.unlink(missing_ok=True)
        if not isinstance(exc, (OSError, RuntimeError)):
            raise
        kept = ("the checkpoint written before is kept: free space, then continue with --resume" if path.exists()
                else "no checkpoint was kept: free space and start again")
        raise OutputError(f"{path}: writing the checkpoint at step {state.get('step', '?')} failed "
                          f"({_why(path, exc)}); {kept}") from None
    return path


def flush_log(fh: IO[str], path: Path) -> None:
    """The training log ``fh`` (at ``path``) flushed; an `OutputError` naming it where that fails."""
    try:
        fh.flush()
    except OSError as exc:
        raise OutputError(f"{path}: writing the training log failed ({_why(path, exc)}); the checkpoint before "
                          "is kept: free space, then continue with --resume") from None
