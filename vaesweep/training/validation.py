"""One pass over held-out images: the losses at a given beta, the beta = 1 ELBO, the per-pixel
MSE of z = mu reconstructions, the latent means and the KL per dimension. The trainer runs it every
epoch; the final evaluation runs it in fp32."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from vaesweep.interrupts import stop_if_requested
from vaesweep.spec.config import TrainConfig
from vaesweep.training.device import Compute
from vaesweep.training.losses import vae_loss
from vaesweep.training.model import VAE, images_per_pass

# The validation ELBO uses the same noise every epoch, so epochs differ by the model alone.
VALIDATION_NOISE_SEED = 1234


class Validation(NamedTuple):
    stats: dict[str, float]
    means: Tensor  # latent means of every image, in order (float32, on the CPU)
    kl_per_dim: Tensor  # KL to the prior of each latent dimension, averaged over the images
    reconstructions: Tensor | None = None  # z = mu, in [0, 1], on the CPU: when asked for


@torch.no_grad()
def validate(
    model: VAE,
    x_all: Tensor,
    config: TrainConfig,
    beta: float,
    compute: Compute,
    keep_reconstructions: bool = False,
) -> Validation:
    """One pass: loss at this epoch's beta, the beta=1 ELBO, per-pixel MSE with z = mu, the
    latent means and the KL per dimension (and the z = mu reconstructions, which the final
    evaluation's SSIM reuses). The noise is seeded, so epochs differ by the model alone."""
    model.eval()
    # A CPU generator: the same noise on every device, so the same weights give the same values.
    generator = torch.Generator().manual_seed(VALIDATION_NOISE_SEED)
    sums = torch.zeros(3, device=compute.device)
    kl_dims = torch.zeros(model.latent_dim, device=compute.device, dtype=torch.float64)
    means, reconstructions = [], []
    step = images_per_pass(model, x_all)
    for start in range(0, len(x_all), step):
        stop_if_requested()  # a safe point: Ctrl-C need not wait for the whole pass
        x = x_all[start : start + step]
        with compute.autocast():
            mu, logvar = model.encode(x)
            z = model.reparameterize(mu, logvar, generator)
            logits = model.decode(z)
            recon_mu = torch.sigmoid(model.decode(mu).float())
        loss = vae_loss(logits, x, mu, logvar, config.likelihood, beta)
        squared_error = (recon_mu - x).square().mean()
        sums += torch.stack([loss.recon, loss.kl, squared_error]) * len(x)
        mu, logvar = mu.float(), logvar.float()
        kl_dims += (0.5 * (mu.square() + logvar.exp() - logvar - 1.0)).sum(0).double()
        means.append(mu.cpu())
        if keep_reconstructions:
            reconstructions.append(recon_mu.cpu())
    recon, kl, mse = (sums / len(x_all)).tolist()
    stats = {
        "loss": recon + beta * kl,
        "recon": recon,
        "kl": kl,
        "beta_kl": beta * kl,
        "elbo": recon + kl,
        "mse": mse,
    }
    kept = torch.cat(reconstructions) if keep_reconstructions else None
    return Validation(stats, torch.cat(means), (kl_dims / len(x_all)).float().cpu(), kept)
