"""The IWAE estimate of -log p(x) against an exact one, and the metrics built on the latents."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from vaesweep.training.losses import log_likelihood, reconstruction_loss
from vaesweep.training.metrics import active_units, iwae_nll_per_image, knn_accuracy_notebook
from vaesweep.training.model import VAE


def tiny_vae() -> VAE:
    """A 1-D latent over 2x2 images: small enough to integrate p(x) = ∫ p(x|z) p(z) dz."""
    torch.manual_seed(3)
    encoder = nn.Sequential(nn.Flatten(), nn.Linear(4, 8), nn.Tanh())
    decoder = nn.Sequential(nn.Linear(1, 6), nn.Tanh(), nn.Linear(6, 4), nn.Unflatten(1, (1, 2, 2)))
    return VAE(encoder, 8, decoder, latent_dim=1).eval()


@torch.no_grad()
def exact_nll(model: VAE, x: torch.Tensor, likelihood: str) -> float:
    """-log p(x) by numerical integration over z on a fine grid (the mean over images)."""
    z = torch.linspace(-12, 12, 24_001, dtype=torch.float64)
    logits = model.decode(z.float().unsqueeze(1)).double()
    log_prior = -0.5 * (z.square() + math.log(2 * math.pi))
    dz = float(z[1] - z[0])
    total = 0.0
    for image in x.double():
        log_px_z = log_likelihood(logits, image.expand_as(logits), likelihood)
        total -= float(torch.logsumexp(log_px_z + log_prior, dim=0) + math.log(dz))
    return total / len(x)


@pytest.mark.parametrize("likelihood", ["bce", "mse"])
def test_iwae_converges_to_the_exact_likelihood_and_never_beats_it(likelihood):
    model = tiny_vae()
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(6, 1, 2, 2, generator=generator)
    if likelihood == "bce":
        x = torch.bernoulli(x, generator=generator)
    exact = exact_nll(model, x, likelihood)

    def iwae_nll(*args) -> float:  # the mean over the images, as a trial records it
        return float(iwae_nll_per_image(*args).mean())

    many = iwae_nll(model, x, likelihood, 20_000, torch.Generator().manual_seed(1))
    one = iwae_nll(model, x, likelihood, 1, torch.Generator().manual_seed(1))
    assert many == pytest.approx(exact, abs=0.02)
    # One sample is the ELBO: on average never better (lower) than the bound with many.
    elbos = [iwae_nll(model, x, likelihood, 1, torch.Generator().manual_seed(s)) for s in range(50)]
    assert sum(elbos) / len(elbos) > many > exact - 0.02
    assert one > exact - 0.5


def test_gaussian_log_likelihood_is_the_summed_squared_error_plus_its_constant():
    logits, x = torch.randn(3, 1, 28, 28), torch.rand(3, 1, 28, 28)
    recon = reconstruction_loss(logits, x, "mse")
    log_px = log_likelihood(logits, x, "mse")
    assert float(-log_px.mean()) == pytest.approx(float(recon) + 392 * math.log(math.pi))
    # and it is a normalised density: N(x; m, 1/2) in one dimension.
    m, value = torch.tensor([[0.3]]), torch.tensor([[0.9]])
    density = math.exp(-((0.9 - 0.3) ** 2)) / math.sqrt(math.pi)
    assert float(log_likelihood(torch.logit(m), value, "mse")) == pytest.approx(math.log(density))


def test_active_units_count_dimensions_whose_mean_varies():
    generator = torch.Generator().manual_seed(0)
    means = torch.randn(1000, 3, generator=generator) * torch.tensor([1.0, 0.05, 0.2])
    assert active_units(means) == 2  # variances about 1, 0.0025 and 0.04


def test_notebook_knn_splits_the_given_latents_70_30():
    labels = torch.arange(10).repeat_interleave(30)
    separated = torch.stack([labels * 10.0, torch.zeros(300)], dim=1)
    assert knn_accuracy_notebook(separated, labels) == 1.0
    noise = torch.randn(300, 2, generator=torch.Generator().manual_seed(0))
    assert knn_accuracy_notebook(noise, labels) < 0.3
