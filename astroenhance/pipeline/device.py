"""Where the networks run: the torch device and precision a run asked for, checked, and batched inference on it."""

from __future__ import annotations

import contextlib

import numpy as np
import torch

from ..errors import DeviceError


def resolve_device(device: str, precision: str) -> torch.device:
    """The torch device for ``device`` (``auto``, ``cpu``, ``cuda``, ``cuda:N``), checked with ``precision``."""
    if precision not in ("fp32", "bf16", "fp16"):
        raise DeviceError(f"unknown precision {precision!r}; choose fp32, bf16 or fp16")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise DeviceError("--device cuda was asked for, but no CUDA GPU is available to torch here "
                          "(use --device cpu or --device auto)")
    if device not in ("cpu",) and not device.startswith("cuda"):
        raise DeviceError(f"unknown device {device!r}; choose auto, cpu or cuda")
    if device.startswith("cuda:"):
        index = device.removeprefix("cuda:")
        if not index.isdigit() or int(index) >= torch.cuda.device_count():
            raise DeviceError(f"--device {device}: this machine's GPUs are cuda:0 to "
                              f"cuda:{torch.cuda.device_count() - 1}")
    if device == "cpu" and precision == "fp16":
        raise DeviceError("fp16 is not supported on CPU (slow and known to crash in peers); use bf16 or fp32")
    return torch.device(device)


def slow_cpu_bf16(device: torch.device, precision: str) -> str:
    """A warning (or "") for bf16 on a CPU without native bf16 (AVX512-BF16 or AMX): oneDNN then emulates it:
    `benchmarks/bench_speed.py` on an AVX2-only CPU, a 224² tile through `run`: 6-8x slower than fp32."""
    if device.type != "cpu" or precision != "bf16":
        return ""
    probes = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    if None in probes or any(probe() for probe in probes):  # native, or a torch too old to say: no warning
        return ""
    return ("--precision bf16 on this CPU (no AVX512-BF16 or AMX) is emulated and several times slower "
            "than fp32; use fp32 here")


class Accelerator:
    """One device and precision: moves networks there once and runs them on batches (numpy or tensors) there."""

    MAX_AUTO_BATCH = 64

    def __init__(self, device: str, precision: str, batch: int = 0) -> None:
        self.device = resolve_device(device, precision)
        self.precision = precision
        self.auto = batch == 0 and self.device.type == "cuda"  # `fit_batch` may choose
        self.batch = batch or (8 if self.device.type == "cuda" else 1)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed tile shapes: the fastest kernels, found once

    def fit_batch(self, model: torch.nn.Module, shape: tuple[int, int]) -> int:
        """With ``--batch 0`` on a GPU: as many tiles of ``shape`` per call as half the GPU's free memory holds,
        measured on one tile through ``model`` (1 to `MAX_AUTO_BATCH`); elsewhere the batch as set."""
        if not self.auto:
            return self.batch
        dev = self.device
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        before = torch.cuda.memory_allocated(dev)
        self.run_tensor(model, torch.zeros((1, 1, *shape), device=dev))
        torch.cuda.synchronize(dev)
        per_tile = max(1, torch.cuda.max_memory_allocated(dev) - before)
        free = torch.cuda.mem_get_info(dev)[0]
        self.batch = int(max(1, min(self.MAX_AUTO_BATCH, 0.5 * free // per_tile)))
        return self.batch

    def prepare(self, model: torch.nn.Module) -> torch.nn.Module:
        """``model`` on this device, frozen (channels-last on CPU: faster oneDNN convolutions)."""
        model = model.to(self.device)
        if self.device.type == "cpu":
            model = model.to(memory_format=torch.channels_last)
        for p in model.parameters():
            p.requires_grad_(False)
        return model

    def autocast(self):
        if self.precision == "fp32":
            return torch.autocast(self.device.type, enabled=False)
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    def _full_fp32(self):
        """fp32 on a GPU as fp32: cuDNN would otherwise run float32 convolutions in TF32 (10-bit mantissa, torch's
        default), 1e-4 off the CPU on a lent H200 (benchmarks/bench_gpu.py); bf16/fp16 are the fast modes."""
        if self.device.type != "cuda" or self.precision != "fp32":
            return contextlib.nullcontext()
        c = torch.backends.cudnn
        return c.flags(enabled=c.enabled, benchmark=c.benchmark, deterministic=c.deterministic, allow_tf32=False)

    def tensor(self, x) -> torch.Tensor:
        """``x`` (numpy or a tensor) on this device."""
        t = x if isinstance(x, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(x))
        return t.to(self.device, non_blocking=True)

    def run_tensor(self, model: torch.nn.Module, x, context: torch.Tensor | None = None) -> torch.Tensor:
        """Run ``model`` on ``x`` ``(N, C, h, w)`` (numpy or a tensor) in batches; a float32 tensor on this device."""
        outs = []
        with torch.inference_mode(), self.autocast(), self._full_fp32():
            for i in range(0, x.shape[0], self.batch):
                t = self.tensor(x[i:i + self.batch])
                if self.device.type == "cpu":
                    t = t.contiguous(memory_format=torch.channels_last)
                y = model(t) if context is None else model(t, context=context.expand(t.shape[0], -1))
                outs.append(y.float().contiguous())
        return outs[0] if len(outs) == 1 else torch.cat(outs, dim=0)

    def run(self, model: torch.nn.Module, x, context: torch.Tensor | None = None) -> np.ndarray:
        """`run_tensor`, as float32 numpy."""
        return self.run_tensor(model, x, context).cpu().numpy()
