"""Where and in what precision torch computes: decided once per run or trial from the
settings, then passed along."""

from __future__ import annotations

import torch

from vaesweep.errors import VaesweepError
from vaesweep.model import VAE


def resolve_device(name: str) -> torch.device:
    """'auto' picks CUDA when present; asking for CUDA without it is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise VaesweepError("--device cuda: no CUDA device is available (use --device cpu)")
    if name not in ("cpu", "cuda"):
        raise VaesweepError(f"--device must be auto, cpu or cuda; got {name!r}")
    return torch.device(name)


def native_bf16(device: torch.device) -> bool:
    """Whether this device computes bf16 natively (AVX-512 BF16 / AMX on CPU, Ampere+ on CUDA)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def resolve_precision(precision: str, device: torch.device) -> str:
    """'auto' takes bf16 autocast where native (`vaesweep bench --check-precision` shows it
    reaches fp32's validation ELBO), else fp32."""
    if precision == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    return precision


def memory_format(model: VAE) -> torch.memory_format:
    return torch.channels_last if model.channels_last else torch.contiguous_format


def autocast(precision: str, device: torch.device):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
