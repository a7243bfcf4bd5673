"""Where and in what precision torch computes: a `Compute`, decided once per run
(`precision.decide`) from the `--device` option and the study's `precision` setting, then passed
along to training, validation and evaluation."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from vaesweep.errors import VaesweepError, shown
from vaesweep.model import VAE


@dataclass(frozen=True)
class Compute:
    """The run's decision: its device, and the precision of training's forward passes."""

    device: torch.device
    precision: str  # "fp32" or "bf16" (bf16 autocast)
    why: str = ""  # how 'auto' was decided, for the run to say

    def autocast(self):
        return torch.autocast(
            self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"
        )

    @property
    def for_evaluation(self) -> Compute:
        """Evaluation is fp32 whatever training used, so the same weights give the same metrics
        on every machine."""
        return dataclasses.replace(self, precision="fp32", why="evaluation is always fp32")


def resolve_device(name: str) -> torch.device:
    """'auto' picks CUDA when present; asking for CUDA without it is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise VaesweepError("--device cuda: no CUDA device is available (use --device cpu)")
    if name not in ("cpu", "cuda"):
        raise VaesweepError(f"--device must be auto, cpu or cuda; got {shown(name)}")
    return torch.device(name)


def native_bf16(device: torch.device) -> bool:
    """Whether this device computes bf16 natively (AVX-512 BF16 / AMX on CPU, Ampere+ on CUDA)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def memory_format(model: VAE) -> torch.memory_format:
    return torch.channels_last if model.channels_last else torch.contiguous_format
