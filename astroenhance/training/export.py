"""Turn a training checkpoint into shipped weights: safetensors + a manifest entry with its metrics."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ..config import SR_MODES
from ..errors import SettingsError
from ..models.registry import ARCHITECTURES
from ..models.weights import WeightsInfo, export_weights, load_checkpoint_model, sha256_file

LICENCE = ("Weights: CC BY 4.0, trained by astroenhance on ESA/Hubble & NASA images (CC BY 4.0 / public domain); "
           "see the training data's SOURCES.csv for credits.")
LICENCE_HST = ("Weights: CC BY 4.0, trained by astroenhance on public HST archive frames (MAST; credits in the training "
               "data's SOURCES.csv) and synthetic fields.")


def export_checkpoint(ckpt: str | Path, weights_dir: str | Path, weights_id: str, mode: str | None = None,
                      metrics: dict[str, Any] | None = None, notes: str = "") -> WeightsInfo:
    """Export ``ckpt`` (a ``ckpt.pt`` written by `astroenhance train`) as ``<weights_id>.safetensors``."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", weights_id):
        raise SettingsError(f"--id {weights_id!r}: a name of letters, digits, '.', '_' and '-' (it names the file "
                            f"{weights_id}.safetensors in the weights folder)")
    try:  # (the manifest records it: which checkpoint these weights are; the load checks the file against it)
        digest = sha256_file(ckpt)
    except OSError:
        digest = None  # (no such file, a folder: the load says so)
    model, ck = load_checkpoint_model(ckpt, digest)
    cfg = ck["config"]
    spec = ARCHITECTURES[ck["arch"]]
    modes = SR_MODES if spec.task == "sr" else ("default",)
    if mode is not None and mode not in modes:
        raise SettingsError(f"--mode {mode!r}: an SR network's mode is one of {', '.join(modes)} (what `run "
                            "--sr-model` chooses by)" if spec.task == "sr" else
                            f"--mode {mode!r}: a colorizer's mode is 'default'")
    if "truths" in cfg:  # a telescope-model run (`train sr-hst`): a noise-space network for real frames
        from ..pipeline.space import BETA

        entry = {
            "id": weights_id, "task": "sr", "mode": mode or "hst", "architecture": ck["arch"],
            "file": f"{weights_id}.safetensors", "input_space": "noise-asinh", "beta": BETA,
            "hyperparameters": dict(spec.kwargs, **{k: cfg[k] for k in ("batch", "crop", "lr", "seed", "init", "init_sha256", "stage",
                                                                 "content_weight", "adv_weight", "pixel_weight",
                                                                 "d_lr") if k in cfg}),
            "iterations": int(ck["step"]),
            "training_data": {"real_frames": cfg["truths"], "synthetic_share": cfg["synthetic"],
                              "big_galaxy_share": cfg.get("big_galaxies", 0.0),
                              "sharp_psf_share": cfg.get("sharp_psfs", 0.0),
                              "wide_psf_share": cfg.get("wide_psfs", 0.0),
                              "smooth_background_share": cfg.get("backgrounds", 0.0),
                              **({"psf_models": cfg["psfs"], "psf_model_share": cfg["psf_share"]}
                                 if cfg.get("psf_share", 0.0) > 0 else {}),
                              **({"press_images": cfg["press"], "press_share": cfg["press_share"]}
                                 if cfg.get("press_share", 0.0) > 0 else {})},
            "degradation": {"binning": "4x4 block means", "noise": "Gaussian, k x the truth's pixel rms",
                            "k": [cfg["k_min"], cfg["k_max"]], "k_draw": "log-uniform",
                            "correlated_share": cfg.get("correlated", 0.0), "loss": cfg.get("loss", "l1"),
                            **({"real_loss": cfg["real_loss"]} if cfg.get("real_loss") else {}),
                            "block_edge_weight": cfg.get("edge_weight", 0.0),
                            "source_weight": cfg.get("source_weight", 0.0),
                            "pair_sigma": cfg.get("pair_sigma", "measured")},
            "validation_data": cfg.get("val", []),
            "feature_network": (f"{cfg['feature_net']} (perceptual loss on the synthetic truths, through "
                                "training.telescope.for_features)" if cfg.get("stage") == "gan" else
                                "none (L1 in the noise-normalised space)"),
            "metrics": metrics or {}, "licence": LICENCE_HST, "notes": notes, "checkpoint_sha256": digest,
        }
        return export_weights(model, weights_dir, entry)
    entry = {
        "id": weights_id,
        "task": spec.task,
        "mode": mode or ("psnr" if spec.task == "sr" and cfg.get("stage", "pretrain") == "pretrain" else
                         "gan" if spec.task == "sr" else "default"),
        "architecture": ck["arch"],
        "file": f"{weights_id}.safetensors",
        "hyperparameters": dict(spec.kwargs, **{k: cfg[k] for k in ("batch", "crop", "lr", "lr_min_factor", "warmup", "seed",
                                                                 "saturation_weight", "stage", "precision",
                                                                 "content_weight", "adv_weight", "pixel_weight",
                                                                 "d_lr", "init", "init_sha256", "init_from", "trained_on") if k in cfg}),
        "iterations": int(ck["step"]),
        "training_data": cfg["data"],
        "validation_data": cfg.get("val_data", ""),
        "feature_network": _feature_network(spec.task, spec.kwargs, cfg),
        "metrics": metrics or {},
        "licence": LICENCE,
        "notes": notes,
        "checkpoint_sha256": digest,
    }
    return export_weights(model, weights_dir, entry)


def _feature_network(task: str, kwargs: dict[str, Any], cfg: dict[str, Any]) -> str:
    """Which pretrained network, if any, shaped these weights (the manifest says it)."""
    if task == "sr":
        if cfg.get("stage") == "gan":
            return f"content loss on {cfg.get('feature_net', 'mobilenet_v2')} features"
        return "none (L1 pixel loss)"
    if kwargs.get("global_branch", "conv") != "conv":
        return f"global branch started from {cfg.get('feature_net', 'mobilenet_v2')}"
    return "none (trained from scratch)"
