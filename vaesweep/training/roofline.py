"""How close training comes to this machine's limit: the network's FLOPs per training sample,
counted by PyTorch's own counter, against the best rate measured here for the same precision and
thread count. A slow run far below that rate is the code's to fix; one near it is
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
CONV_BATCH = 32


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


def peak(device: torch.device, precision: str, seconds: float) -> tuple[float, str]:
    """(GFLOP/s, which kernel): this machine's best rate in `precision` (fp32 or bf16) at the
    current thread count, over `seconds` in all: the better of square matrix products and a
    convolution. Both are measured because PyTorch's CPU builds run them in different libraries
    (MKL and oneDNN), whose rates differ by up to 2x on one machine (BENCHMARKS.md)."""
    products = _matmul_peak(device, precision, seconds / 2)
    convolution = _conv_peak(device, precision, seconds / 2)
    if convolution > products:
        return convolution, "convolution"
    return products, "matrix product"


def _matmul_peak(device: torch.device, precision: str, seconds: float) -> float:
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    best = 0.0
    for size in PEAK_SIZES:
        a, b, product = (torch.rand(size, size, device=device, dtype=dtype) for _ in range(3))

        def multiply(a: torch.Tensor = a, b: torch.Tensor = b, out: torch.Tensor = product) -> None:
            torch.mm(a, b, out=out)

        rate = steps_per_second(multiply, device, seconds / len(PEAK_SIZES))
        best = max(best, rate * 2 * size**3 / 1e9)
    return best


def _conv_peak(device: torch.device, precision: str, seconds: float) -> float:
    """A 5 x 5 convolution of 64 to 128 channels on a batch of 28 x 28 maps: the conv network's
    heaviest layer, whose arithmetic dwarfs its memory traffic."""
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    x = torch.rand(CONV_BATCH, 64, 28, 28, device=device, dtype=dtype)
    weight = torch.rand(128, 64, 5, 5, device=device, dtype=dtype)

    def convolve() -> None:
        torch.nn.functional.conv2d(x, weight, padding=2)

    flops = 2 * CONV_BATCH * 128 * 64 * 25 * 28 * 28
    return steps_per_second(convolve, device, seconds) * flops / 1e9
