"""Faithfulness to the reference notebook, proven against TensorFlow/Keras's own numbers.

The fixtures were exported once by tests/fixtures/make_keras_fixtures.py in a scratch environment
with TensorFlow; these tests need no TensorFlow.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from vaesweep.training.metrics import ssim_per_image
from vaesweep.training.model import build_model
from vaesweep.training.train import KERAS_ADAM_EPSILON, make_optimizer

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def test_ssim_matches_tensorflow():
    saved = np.load(FIXTURES / "tf_ssim.npz")
    for x, y, expected in zip(saved["x"], saved["y"], saved["ssim"], strict=True):
        a = torch.from_numpy(x / 255.0).float().view(1, 1, 28, 28)
        b = torch.from_numpy(y / 255.0).float().view(1, 1, 28, 28)
        assert ssim_per_image(a, b).mean() == pytest.approx(float(expected), abs=1e-4)


def _conv(weight: np.ndarray) -> torch.Tensor:
    """Keras (kh, kw, in, out) -> Conv2d (out, in, kh, kw); for Conv2DTranspose Keras stores
    (kh, kw, out, in) and ConvTranspose2d wants (in, out, kh, kw): the same permutation."""
    return torch.from_numpy(weight).permute(3, 2, 0, 1).contiguous()


def transplant(saved) -> nn.Module:
    """The Keras weights in vaesweep's seed model; Keras flattens (h, w, c), PyTorch (c, h, w)."""
    model = build_model("conv", 2).eval()
    encoder_convs = [m for m in model.encoder if isinstance(m, nn.Conv2d)]
    names = ["enc_conv1", "enc_conv2", "enc_conv3", "enc_conv4"]
    for module, name in zip(encoder_convs, names, strict=True):
        module.weight.data = _conv(saved[f"{name}/kernel"])
        module.bias.data = torch.from_numpy(saved[f"{name}/bias"])
    # enc_dense rows are indexed (h, w, c) in Keras: reorder them to (c, h, w).
    kernel = saved["enc_dense/kernel"].reshape(14, 14, 64, 32).transpose(2, 0, 1, 3)
    model.encoder[-2].weight.data = torch.from_numpy(kernel.reshape(-1, 32).T.copy())
    model.encoder[-2].bias.data = torch.from_numpy(saved["enc_dense/bias"])
    for module, name in ((model.to_mu, "z_mean"), (model.to_logvar, "z_log_var")):
        module.weight.data = torch.from_numpy(saved[f"{name}/kernel"].T.copy())
        module.bias.data = torch.from_numpy(saved[f"{name}/bias"])
    # dec_dense columns feed Reshape((14, 14, 64)): reorder them to (64, 14, 14).
    kernel = saved["dec_dense/kernel"].reshape(2, 14, 14, 64).transpose(0, 3, 1, 2)
    bias = saved["dec_dense/bias"].reshape(14, 14, 64).transpose(2, 0, 1)
    model.decoder[0].weight.data = torch.from_numpy(kernel.reshape(2, -1).T.copy())
    model.decoder[0].bias.data = torch.from_numpy(bias.reshape(-1).copy())
    transposed = [m for m in model.decoder if isinstance(m, nn.ConvTranspose2d)]
    names = ["dec_conv1", "dec_conv2", "dec_conv3", "dec_conv4", "dec_output"]
    for module, name in zip(transposed, names, strict=True):
        module.weight.data = _conv(saved[f"{name}/kernel"])
        module.bias.data = torch.from_numpy(saved[f"{name}/bias"])
    return model


def test_keras_weights_give_keras_outputs_in_the_seed_model():
    saved = np.load(FIXTURES / "keras_seed.npz")
    model = transplant(saved)
    images = torch.from_numpy(saved["images"]).permute(0, 3, 1, 2)  # NHWC -> NCHW
    with torch.no_grad():
        mu, logvar = model.encode(images)
        decoded = torch.sigmoid(model.decode(torch.from_numpy(saved["codes"])))
    np.testing.assert_allclose(mu.numpy(), saved["z_mean"], atol=1e-4)
    np.testing.assert_allclose(logvar.numpy(), saved["z_log_var"], atol=1e-4)
    np.testing.assert_allclose(decoded.permute(0, 2, 3, 1).numpy(), saved["decoded"], atol=1e-4)


def test_seed_model_is_initialised_as_keras_does_and_counts_the_same_parameters():
    saved = np.load(FIXTURES / "keras_seed.npz")
    keras_parameters = sum(
        saved[key].size for key in saved.files if key.endswith(("/kernel", "/bias"))
    )
    model = build_model("conv", 2)
    assert sum(p.numel() for p in model.parameters()) == keras_parameters
    for module in model.modules():
        if isinstance(module, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
            assert not module.bias.any()
            fan_in = module.weight[0].numel()
            fan_out = module.weight.shape[0] * module.weight[0, 0].numel()
            # The bound as the fp32 weights hold it: a draw at the very edge rounds to it.
            bound = float(np.float32(np.sqrt(6 / (fan_in + fan_out))))
            largest = float(module.weight.detach().abs().max())
            assert 0.9 * bound < largest <= bound  # uniform over the whole Glorot range


def test_adam_uses_keras_epsilon():
    optimizer = make_optimizer(build_model("mlp", 2), 1e-3)
    assert optimizer.param_groups[0]["eps"] == KERAS_ADAM_EPSILON == 1e-7
