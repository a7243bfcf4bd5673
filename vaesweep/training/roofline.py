"""How close training comes to this machine's limit: the network's FLOPs per training sample,
counted by PyTorch's own counter, against the matrix-product rate measured here for the same
precision and thread count. A slow run far below that rate is the code's to fix; one near it is
the machine's."""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from vaesweep.training.device import steps_per_second
from vaesweep.training.losses import vae_loss
from vaesweep.training.model import IMAGE_SHAPE, build_model

# Square products of these sizes: the best of them is the peak. One size is not enough: a
# thread's rate peaks at small sizes, several threads' only at large ones.
PEAK_SIZES = (512, 1024, 2048)


def flops_per_sample(arch: str, batch_size: int = 128, latent_dim: int = 2) -> float:
    """Floating-point operations of one training sample: forward, loss and backward (the
    matrix products and convolutions, which PyTorch's counter counts; Adam's elementwise update
    is not counted, nor is it bound by them)."""
    model = build_model(arch, latent_dim)
    x = torch.rand(batch_size, *IMAGE_SHAPE)
    with FlopCounterMode(display=False) as counter:
        logits, mu, logvar = model(x)
        vae_loss(logits, x, mu, logvar, "bce", beta=1.0).total.backward()
    return counter.get_total_flops() / batch_size


def matmul_peak(device: torch.device, precision: str, seconds: float) -> float:
    """GFLOP/s of this machine's best square matrix product in `precision` (fp32 or bf16) at
    the current thread count, measured over `seconds` in all."""
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    best = 0.0
    for size in PEAK_SIZES:
        a, b, product = (torch.rand(size, size, device=device, dtype=dtype) for _ in range(3))

        def multiply(a: torch.Tensor = a, b: torch.Tensor = b, out: torch.Tensor = product) -> None:
            torch.mm(a, b, out=out)

        rate = steps_per_second(multiply, device, seconds / len(PEAK_SIZES))
        best = max(best, rate * 2 * size**3 / 1e9)
    return best
