"""VAE loss terms: summed over a sample's pixels (or latent dims), then averaged over the batch.

Kingma & Welling (2014), "Auto-Encoding Variational Bayes": minimise the negative ELBO
    -E_q[log p(x|z)] + KL(q(z|x) || N(0, I)).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor


def _per_sample_sum(values: Tensor) -> Tensor:
    return values.flatten(1).sum(dim=1)


def _per_sample_recon(logits: Tensor, x: Tensor, likelihood: str) -> Tensor:
    """The reconstruction term of each sample: the summed squared error of sigmoid(logits), or
    the Bernoulli negative log-likelihood from logits (numerically stable)."""
    if likelihood == "mse":
        return _per_sample_sum((torch.sigmoid(logits) - x).square())
    if likelihood == "bce":
        return _per_sample_sum(bernoulli_nll(logits, x))
    raise ValueError(f"unknown likelihood {likelihood!r}")


def bernoulli_nll(logits: Tensor, x: Tensor) -> Tensor:
    """-log p(x | logits) per pixel, as `F.binary_cross_entropy_with_logits` computes it:
    max(l, 0) - x l + log(1 + exp(-|l|)), in fp32. With log where it has log1p: PyTorch's CPU
    log1p is not vectorised, 1.0 ms for a batch's 100,352 pixels against 0.2 ms for this whole
    formula, and the two agree to fp32 rounding (BENCHMARKS.md, "fp32 training"). A GPU keeps
    PyTorch's own, one fused kernel."""
    if logits.device.type != "cpu":
        return F.binary_cross_entropy_with_logits(logits, x, reduction="none")
    logits = logits.float()
    return logits.clamp(min=0) - x * logits + torch.log(1 + torch.exp(-logits.abs()))


def reconstruction_loss(logits: Tensor, x: Tensor, likelihood: str) -> Tensor:
    """Reconstruction term from the decoder's logits, batch mean.

    mse: sum of squared errors of the Gaussian mean sigmoid(logits) (fixed-variance Gaussian,
         up to scale and constant, as in the notebook);
    bce: Bernoulli negative log-likelihood, computed from logits for numerical stability.
    """
    return _per_sample_recon(logits, x, likelihood).mean()


# The summed squared error is, up to this constant per pixel, -log N(x; mean, sigma^2 = 1/2):
# log N = -(x - mean)^2 / (2 sigma^2) - log(2 pi sigma^2) / 2 = -(x - mean)^2 - log(pi) / 2.
GAUSSIAN_LOG_NORMALISER = -0.5 * math.log(math.pi)


def log_likelihood(logits: Tensor, x: Tensor, likelihood: str) -> Tensor:
    """log p(x|z) per sample with its full normalising constant, in nats: Bernoulli from logits
    (bce), or the Gaussian with variance 1/2 that the summed squared error implies (mse)."""
    constant = x[0].numel() * GAUSSIAN_LOG_NORMALISER if likelihood == "mse" else 0.0
    return constant - _per_sample_recon(logits, x, likelihood)


def kl_divergence(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, diag(exp(logvar))) || N(0, I)) in closed form:
    0.5 * sum_i (mu_i^2 + sigma_i^2 - log sigma_i^2 - 1), summed over latent dims, batch mean."""
    per_sample = 0.5 * (mu.square() + logvar.exp() - logvar - 1.0).sum(dim=1)
    return per_sample.mean()


class VAELoss(NamedTuple):
    total: Tensor  # recon + beta * kl: what the optimiser minimises
    recon: Tensor
    kl: Tensor


def vae_loss(
    logits: Tensor, x: Tensor, mu: Tensor, logvar: Tensor, likelihood: str, beta: float
) -> VAELoss:
    """Total loss with the KL weighted by the warm-up's beta (beta=1 gives the negative ELBO)."""
    recon = reconstruction_loss(logits.float(), x, likelihood)
    kl = kl_divergence(mu.float(), logvar.float())
    return VAELoss(recon + beta * kl, recon, kl)
