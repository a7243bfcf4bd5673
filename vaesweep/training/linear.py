"""The networks' `Linear` layer, whose fp32 products on a CPU can go to oneDNN instead of MKL.

PyTorch sends a CPU's fp32 matrix products to MKL, which on AMD processors keeps its AVX2 code:
104 GFLOP/s a thread on the development EPYC, while oneDNN's inner product, which PyTorch ships
for its compiler (`torch.ops.mkldnn._linear_pointwise`), reaches 206-233 GFLOP/s on the mlp's own
products there (BENCHMARKS.md). Which library is faster depends on the processor, so a run
measures both (`precision.decide`) and trains in the faster one (`Compute.linear`). The two agree
within fp32 rounding; evaluation always uses PyTorch's default.

The choice is a context (`kernel`), not a property of a model: weights, names and stored models
are the same whichever trained them.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import torch
from torch import Tensor, nn

KERNELS = ("aten", "onednn")  # PyTorch's default (MKL on a CPU), or oneDNN's inner product
_ONEDNN: ContextVar[bool] = ContextVar("vaesweep_onednn_linear", default=False)


@functools.cache
def onednn_available() -> bool:
    """Whether this PyTorch build has oneDNN's inner product and it computes a small product
    as PyTorch's default does (a build may lack it, or lack it for this processor)."""
    if not torch.backends.mkldnn.is_available():
        return False
    x, weight, bias = torch.randn(3, 5), torch.randn(4, 5), torch.randn(4)
    try:
        ours = product(x, weight, bias)
    except (AttributeError, RuntimeError, NotImplementedError):
        return False
    return torch.allclose(ours, nn.functional.linear(x, weight, bias), rtol=1e-4, atol=1e-5)


def kernels_for(device: torch.device, precision: str) -> list[str]:
    """The kernels a run may choose between: oneDNN is a candidate for fp32 on a CPU only
    (autocast and CUDA have their own)."""
    if precision == "fp32" and device.type == "cpu" and onednn_available():
        return list(KERNELS)
    return ["aten"]


def _inner_product():
    return torch.ops.mkldnn._linear_pointwise


@contextmanager
def kernel(name: str) -> Iterator[None]:
    """Within it, fp32 `Linear` layers on a CPU use `name`'s library."""
    token = _ONEDNN.set(name == "onednn")
    try:
        yield
    finally:
        _ONEDNN.reset(token)


class Linear(nn.Linear):
    """`nn.Linear`, through oneDNN inside `kernel("onednn")` for 2-D fp32 CPU inputs outside
    autocast (which has its own bf16 kernels)."""

    def forward(self, input: Tensor) -> Tensor:
        if (
            _ONEDNN.get()
            and input.dim() == 2
            and input.dtype == torch.float32
            and input.device.type == "cpu"
            and not torch.is_autocast_enabled("cpu")
        ):
            return _OneDnnLinear.apply(input, self.weight, self.bias)
        return super().forward(input)


class _OneDnnLinear(torch.autograd.Function):
    """y = x Wᵀ + b, its gradients as inner products too: dx = g W and dW = gᵀ x (transposed
    views, which oneDNN reads in place)."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return product(x, weight, bias)

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, weight = ctx.saved_tensors
        needs_x, needs_weight, needs_bias = ctx.needs_input_grad
        grad_x = product(grad, weight.t(), None) if needs_x else None
        grad_weight = product(grad.t(), x.t(), None) if needs_weight else None
        grad_bias = grad.sum(0) if ctx.has_bias and needs_bias else None
        return grad_x, grad_weight, grad_bias


def product(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """x weightᵀ + bias in oneDNN's fp32 inner product."""
    return _inner_product()(x, weight, bias, "none", [], "")
