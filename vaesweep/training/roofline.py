"""How close training comes to this machine's limit: the network's FLOPs per training sample,
counted by PyTorch's own counter, against the best rate measured here for the same precision and
thread count. A slow run far below that rate is the code's to fix; one near it is
the machine's."""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from vaesweep.training import linear
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
    current thread count, over `seconds` in all: the best of square matrix products, oneDNN's
    inner product where training may use it (`linear`), and a convolution. All are measured
    because PyTorch's CPU builds run them in different libraries (MKL and oneDNN), whose rates
    differ by up to 2x on one machine (BENCHMARKS.md)."""
    kernels = _kernels(device, precision)
    rates = {name: rate(device, precision, seconds / len(kernels)) for name, rate in kernels}
    best = max(rates, key=rates.__getitem__)
    return rates[best], best


def _kernels(device: torch.device, precision: str):
    products = [("matrix product", _matmul_peak)]
    if "onednn" in linear.kernels_for(device, precision):
        products.append(("oneDNN inner product", _inner_product_peak))
    return [*products, ("convolution", _conv_peak)]


def _matmul_peak(device: torch.device, precision: str, seconds: float) -> float:
    return _square_peak(device, precision, seconds, torch.mm)


def _inner_product_peak(device: torch.device, precision: str, seconds: float) -> float:
    def product(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        return linear.product(a, b.t(), None)

    return _square_peak(device, precision, seconds, product)


def _square_peak(device: torch.device, precision: str, seconds: float, multiply) -> float:
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    best = 0.0
    for size in PEAK_SIZES:
        a, b, product = (torch.rand(size, size, device=device, dtype=dtype) for _ in range(3))

        def step(a: torch.Tensor = a, b: torch.Tensor = b, out: torch.Tensor = product) -> None:
            multiply(a, b, out=out)

        rate = steps_per_second(step, device, seconds / len(PEAK_SIZES))
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
