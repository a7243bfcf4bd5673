"""The networks' Linear layer in oneDNN: the same values and gradients as PyTorch's default
within fp32 rounding, and only where it applies (fp32, 2-D, CPU, outside autocast)."""

from __future__ import annotations

import pytest
import torch

from vaesweep.training import linear
from vaesweep.training.device import Compute
from vaesweep.training.losses import vae_loss
from vaesweep.training.model import build_model
from vaesweep.training.train import make_optimizer

pytestmark = pytest.mark.skipif(not linear.onednn_available(), reason="no oneDNN in this build")


def _pass(layer: linear.Linear, x: torch.Tensor, grad: torch.Tensor, kernel: str):
    x = x.clone().requires_grad_()
    layer.zero_grad()
    with linear.kernel(kernel):
        out = layer(x)
    out.backward(grad)
    return out.detach(), x.grad, layer.weight.grad.clone(), layer.bias.grad.clone()


@pytest.mark.parametrize(("rows", "inputs", "outputs"), [(128, 784, 512), (7, 2, 256), (1, 3, 1)])
def test_values_and_gradients_match_pytorchs_within_fp32_rounding(rows, inputs, outputs):
    torch.manual_seed(0)
    layer = linear.Linear(inputs, outputs)
    x, grad = torch.randn(rows, inputs), torch.randn(rows, outputs)
    for ours, theirs in zip(
        _pass(layer, x, grad, "onednn"), _pass(layer, x, grad, "aten"), strict=True
    ):
        assert torch.allclose(ours, theirs, rtol=1e-5, atol=1e-5 * theirs.abs().max().item())


def test_it_replaces_pytorchs_product_only_in_its_context_and_in_fp32(monkeypatch):
    calls = []
    product = linear.product
    monkeypatch.setattr(linear, "product", lambda *a: calls.append(1) or product(*a))
    layer, x = linear.Linear(4, 3), torch.randn(2, 4)
    layer(x)
    with linear.kernel("aten"):
        layer(x)
    with linear.kernel("onednn"), torch.autocast("cpu", dtype=torch.bfloat16):
        layer(x)  # autocast's own bf16 product
    with linear.kernel("onednn"):
        layer(x.double().float().unsqueeze(0))  # 3-D: PyTorch's
        assert calls == []
        layer(x)
    assert calls == [1]


def test_training_steps_match_pytorchs_within_fp32_rounding():
    """Ten Adam steps of the mlp from the same start: the losses agree to fp32 rounding."""
    x = torch.rand(64, 1, 28, 28)
    losses = {}
    for kernel in linear.KERNELS:
        model = build_model("mlp", 2, seed=0)
        optimizer = make_optimizer(model, lr=1e-3)
        compute = Compute(torch.device("cpu"), "fp32", linear=kernel)
        losses[kernel] = []
        for _ in range(10):
            with compute.autocast():
                logits, mu, logvar = model(x, eps=torch.zeros(64, 2))
            loss = vae_loss(logits, x, mu, logvar, "bce", beta=1.0).total
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses[kernel].append(loss.item())
    assert losses["onednn"] == pytest.approx(losses["aten"], rel=1e-5)
    assert losses["aten"][-1] < losses["aten"][0]  # it trained
