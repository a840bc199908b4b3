"""Shipped weights: safetensors files described by ``manifest.json``, checked by sha256 on every load.

Nothing is unpickled: tensors come from safetensors (or, for a training checkpoint, from
``torch.load(..., weights_only=True)``).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from .. import interrupts
from ..errors import OutputError, WeightsError, short_reason, why_unreadable
from .fold import fold_batchnorm
from .registry import ARCHITECTURES, build_model
from .srresnet import SRResNet, fuse_subpixel_tail

MANIFEST = "manifest.json"


@dataclass(frozen=True)
class WeightsInfo:
    """One manifest entry: which network, which file, its hash and how it was made."""

    id: str
    task: str  # "sr" or "colorize"
    mode: str  # sr: "psnr", "psnr-large" or "gan"; colorize: "default"
    architecture: str
    file: str
    sha256: str
    extra: dict[str, Any] = field(default_factory=dict)


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


#: beside a training checkpoint, its sha256 in ``sha256sum`` format (``<hex>  ckpt.pt``): `checkpoint_digest_path`
DIGEST_SUFFIX = ".sha256"


def checkpoint_digest_path(path: str | Path) -> Path:
    """Where `training.checkpoints.save_checkpoint` writes ``path``'s sha256 (``ckpt.pt.sha256``)."""
    path = Path(path)
    return path.with_name(path.name + DIGEST_SUFFIX)


def read_checkpoint(path: str | Path, map_location="cpu", digest: str | None = None) -> Any:
    """A training checkpoint's contents (tensors only: ``weights_only=True``), after checking the file against the
    sha256 written beside it (`checkpoint_digest_path`; ``digest``: the file's, where the caller has it); a
    `WeightsError` naming the file if they differ.  A checkpoint with no such file beside it (written before there
    were any) is read unchecked: there is nothing to check it against.  Torch's own errors pass through (each
    caller says what the file was meant to be)."""
    digest_path = checkpoint_digest_path(path)
    if digest_path.is_file():
        try:
            expected = digest_path.read_text(encoding="ascii").split()[0].lower()
        except (OSError, UnicodeDecodeError, IndexError):
            raise WeightsError(f"{digest_path}: not a sha256 line astroenhance can read") from None
        digest = digest or sha256_file(path)
        if digest != expected:
            raise WeightsError(f"{path}: sha256 {digest[:16]}... differs from the {expected[:16]}... training wrote "
                               f"in {digest_path.name}: the file changed after it was written (copied in part, "
                               f"another run's?); refusing it (delete {digest_path.name} to read it unchecked)")
    return interrupts.load_tensors(path, map_location)


def weights_dir(given: str | Path | None = None) -> Path:
    """The weights folder a run uses: the one ``given`` (``--weights``, `EnhanceConfig.weights`), else
    `default_weights_dir`."""
    return Path(given) if given else default_weights_dir()


def default_weights_dir() -> Path:
    """``$ASTROENHANCE_WEIGHTS``, else the weights installed with the package (``astroenhance/_weights`` of a
    wheel or ``pip install .``), else the source tree's top-level ``weights/`` (an editable install)."""
    env = os.environ.get("ASTROENHANCE_WEIGHTS")
    if env:
        return Path(env)
    installed = Path(__file__).resolve().parents[1] / "_weights"
    if (installed / MANIFEST).exists():
        return installed
    return Path(__file__).resolve().parents[2] / "weights"


def read_manifest(directory: str | Path) -> list[WeightsInfo]:
    path = Path(directory) / MANIFEST
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        env = os.environ.get("ASTROENHANCE_WEIGHTS")
        named = (f" (ASTROENHANCE_WEIGHTS={env} names it: unset it to use the shipped weights)"
                 if env and Path(env) == Path(directory) else " (give --weights DIR or set ASTROENHANCE_WEIGHTS)")
        missing = not Path(directory).is_dir()
        raise WeightsError(f"{directory if missing else path}: {'no such folder' if missing else 'no weights manifest'}"
                           f"{named}") from None
    except (OSError, ValueError) as exc:
        raise WeightsError(f"{path}: unreadable manifest ({exc})") from None
    known = {"id", "task", "mode", "architecture", "file", "sha256"}
    entries = raw.get("weights", []) if isinstance(raw, dict) else None
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise WeightsError(f"{path}: not a weights manifest (expected {{\"weights\": [{{...}}, ...]}})")
    out = []
    for entry in entries:
        if not known <= set(entry):
            raise WeightsError(f"{path}: entry {entry.get('id', '?')} lacks {sorted(known - set(entry))}")
        if bad := sorted(k for k in known if not isinstance(entry[k], str)):
            raise WeightsError(f"{path}: entry {entry['id']!r}: {', '.join(bad)} must be text")
        name = Path(entry["file"])
        if name.is_absolute() or ".." in name.parts:  # the manifest names files of its own folder, nothing else
            raise WeightsError(f"{path}: entry {entry['id']!r}: file {entry['file']!r} is not inside the weights "
                               "folder")
        out.append(WeightsInfo(**{k: entry[k] for k in known}, extra={k: v for k, v in entry.items() if k not in known}))
    return out


def in_use(entries: list[WeightsInfo]) -> dict[tuple[str, str], WeightsInfo]:
    """Which entry of a manifest `run` uses for each (task, mode): the last one listed — an export adds its entry at
    the end, so the newest export of a mode answers for it; earlier ones stay listed (`weights list`: unused)."""
    return {(e.task, e.mode): e for e in entries}


def find_weights(directory: str | Path, task: str, mode: str) -> WeightsInfo:
    entries = read_manifest(directory)
    if (found := in_use(entries).get((task, mode))) is not None:
        return found
    have = ", ".join(f"{e.task}/{e.mode}" for e in entries) or "none"
    hint = "; --sr-model chooses another" if task == "sr" else "; --no-colorize leaves grey frames grey"
    shipped = default_weights_dir()
    if Path(directory).resolve() != shipped.resolve() and (shipped / MANIFEST).exists():
        # (a folder of one's own retrained network: the others are the shipped ones, which it does not hold)
        hint += (f"; or export your weights (`weights export --weights-dir`) into a copy of {shipped}, which holds "
                 "every network")
    raise WeightsError(f"{Path(directory) / MANIFEST}: no {task} weights for mode {mode!r} (available: {have}){hint}")


def load_network(directory: str | Path, info: WeightsInfo, fold: bool = True) -> nn.Module:
    """Build ``info.architecture``, load its tensors after checking the sha256, and return it in eval mode."""
    path = Path(directory) / info.file
    if not path.exists():
        raise WeightsError(f"{path}: weights file missing")
    digest = sha256_file(path)
    if digest != info.sha256:
        raise WeightsError(f"{path}: sha256 {digest[:16]}... does not match the manifest's {info.sha256[:16]}...; "
                           "refusing to load modified or corrupt weights")
    if info.architecture not in ARCHITECTURES:
        raise WeightsError(f"{path}: unknown architecture {info.architecture!r}")
    model = build_model(info.architecture)
    try:
        with interrupts.deferred():  # (a Ctrl-C or SIGTERM inside safetensors came out as "tensors do not fit")
            model.load_state_dict(load_file(str(path)))
    except Exception as exc:
        raise WeightsError(f"{path}: tensors do not fit {info.architecture} ({str(exc).splitlines()[0]})") from None
    model.eval()
    if fold:
        model = fold_batchnorm(model)
        if isinstance(model, SRResNet):
            fuse_subpixel_tail(model)
    # a colorizer's calibrated colour strength and distribution temperature (`ResidualEncoderColorizer`)
    for key, attr in (("chroma_scale", "chroma_scale"), ("chroma_temperature", "temperature")):
        if key in info.extra:
            try:
                setattr(model, attr, float(info.extra[key]))
            except (TypeError, ValueError):
                raise WeightsError(f"{path}: the manifest's {key} {info.extra[key]!r} is not a number") from None
    return model


def export_weights(model: nn.Module, directory: str | Path, info: dict[str, Any]) -> WeightsInfo:
    """Save ``model`` as safetensors in ``directory`` and add or replace its entry in the manifest."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / info["file"]
    manifest_path = directory / MANIFEST
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {"format": 1, "weights": []}
    # both written under temporary names and renamed into place, the manifest last, with Ctrl-C and SIGTERM held
    # between the two renames: an interrupted export leaves the folder as it was or as it should be, never a
    # manifest whose checksum names another file (models/ stays below io/, so not `io.writers.temporary_path`)
    tmp_weights, tmp_manifest = (p.with_name(f".{p.name}.tmp-{os.getpid()}") for p in (path, manifest_path))
    replaced = False
    try:
        state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
        save_file(state, str(tmp_weights), metadata={"architecture": info["architecture"], "id": info["id"]})
        from .. import __version__
        from ..config import utc_now

        entry = dict(info, sha256=sha256_file(tmp_weights),
                     exported={"tool": f"astroenhance {__version__}", "utc": utc_now()})
        manifest["weights"] = [e for e in manifest["weights"] if e["id"] != info["id"]] + [entry]
        tmp_manifest.write_text(json.dumps(manifest, indent=2) + "\n")
        with interrupts.deferred():
            os.replace(tmp_weights, path)
            replaced = True
            os.replace(tmp_manifest, manifest_path)
    except (OSError, SafetensorError) as exc:  # (a full disk: safetensors says it in its own words)
        kept = ("the new weights file is in place but the manifest could not be: its sha256 no longer matches, "
                "export again" if replaced else "the folder's weights and manifest are as they were")
        raise OutputError(f"{path}: writing the weights failed ({short_reason(exc)}); {kept}") from None
    finally:
        for tmp in (tmp_weights, tmp_manifest):
            tmp.unlink(missing_ok=True)
    return read_manifest(directory)[[e["id"] for e in manifest["weights"]].index(info["id"])]


def load_checkpoint_model(path: str | Path, digest: str | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """The model and full checkpoint dict of a training checkpoint (tensors only: ``weights_only=True``; its sha256
    checked, `read_checkpoint`: ``digest`` the file's, where the caller has it)."""
    try:
        ckpt = read_checkpoint(path, digest=digest)
    except WeightsError:
        raise
    except FileNotFoundError:
        raise WeightsError(f"{path}: no such checkpoint (`astroenhance train -o FOLDER` writes FOLDER/ckpt.pt)") from None
    except OSError as exc:  # (unreadable: permissions, a folder named so)
        raise WeightsError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    except Exception as exc:  # noqa: BLE001 - pickled objects, junk, a truncated file: one answer
        raise WeightsError(f"{path}: not a trusted astroenhance checkpoint (safe loading refused it: "
                           f"{why_unreadable(exc)}); export only checkpoints written by `astroenhance train`") from None
    if not isinstance(ckpt, dict) or not {"arch", "model"} <= set(ckpt):
        raise WeightsError(f"{path}: not an astroenhance checkpoint (no 'arch' and 'model' entries)")
    if ckpt["arch"] not in ARCHITECTURES:
        raise WeightsError(f"{path}: unknown architecture {ckpt['arch']!r}")
    model = build_model(ckpt["arch"])
    try:
        model.load_state_dict(ckpt["model"])
    except Exception as exc:  # noqa: BLE001
        raise WeightsError(f"{path}: tensors do not fit {ckpt['arch']} ({str(exc).splitlines()[0]})") from None
    return model.eval(), ckpt
