"""Quality metrics, and the final evaluation of a trained model, always in fp32.

Definitions follow the literature and the reference notebook:
- SSIM as `tf.image.ssim(max_val=1.0)` computes it: 11x11 Gaussian window, sigma 1.5, population
  covariance (scikit-image with those options; tests/fixtures holds TensorFlow's own values);
- 5-NN accuracy of latent means fitted on the training split's (vaesweep's primary), and the
  notebook's protocol (70/30 stratified split of the test latents, random_state 42);
- active units (Burda et al., 2015): dimensions whose posterior mean varies over the data by more
  than 0.01; per-dimension KL to the prior, averaged over the data;
- negative log-likelihood in nats by importance sampling (IWAE bound, Burda et al., 2015).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch
from skimage.metrics import structural_similarity
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier
from torch import Tensor

from vaesweep.interrupts import stop_if_requested
from vaesweep.spec.config import TrainConfig
from vaesweep.spec.metric_names import KNN_NEIGHBOURS
from vaesweep.training.data import Splits, fixed_subset
from vaesweep.training.device import Compute
from vaesweep.training.losses import log_likelihood
from vaesweep.training.model import VAE, images_per_pass
from vaesweep.training.validation import validate

# SSIM and the likelihood cost the most, so by default they are estimated on a fixed random
# subset of each split (`ssim_images`, `nll_val_images`, `nll_test_images`; 0: the whole split),
# the same images for every trial, with the standard error of that estimate of the whole split's
# value. The likelihood over all 10,000 test images with 1,000 importance samples takes about
# 4.8 minutes on one thread here (the density study's, as the literature measures it).
SSIM_SEED, NLL_SEED = 42, 7
ACTIVE_UNIT_THRESHOLD = 0.01
NOISE_DECODES = 20_000  # the likelihood's noise is drawn for this many decodes at a time


def ssim_per_image(x: Tensor, x_hat: Tensor) -> np.ndarray:
    """SSIM of each image pair, as tf.image.ssim(max_val=1.0) defines it."""
    a = x.reshape(len(x), *x.shape[-2:]).float().cpu().numpy()
    b = x_hat.reshape(len(x_hat), *x_hat.shape[-2:]).float().cpu().numpy()
    options = {"data_range": 1.0, "gaussian_weights": True, "sigma": 1.5}
    return np.array(
        [
            structural_similarity(p, q, use_sample_covariance=False, **options)
            for p, q in zip(a, b, strict=True)
        ]
    )


def subset_estimate(values: np.ndarray, population: int) -> tuple[float, float]:
    """The mean of per-image values on a random subset, and its standard error as an estimate
    of the whole split's mean (finite-population corrected: 0 on the whole split)."""
    n = len(values)
    if n < 2:
        return float(np.mean(values)), float("nan")
    correction = max(0.0, 1 - n / population)
    return float(np.mean(values)), float(np.std(values, ddof=1) * math.sqrt(correction / n))


def knn_accuracy(
    reference_z: Tensor, reference_y: Tensor, z: Tensor, y: Tensor, k: int = KNN_NEIGHBOURS
) -> float:
    """Accuracy of a k-NN classifier fitted on reference latent means, scored on `z`."""
    classifier = KNeighborsClassifier(n_neighbors=k).fit(reference_z.numpy(), reference_y.numpy())
    return float(classifier.score(z.numpy(), y.numpy()))


def knn_accuracy_notebook(z: Tensor, y: Tensor, k: int = KNN_NEIGHBOURS) -> float:
    """The notebook's protocol: fit on 70% of these latents, score on the other 30%."""
    z_fit, z_score, y_fit, y_score = train_test_split(
        z.numpy(), y.numpy(), test_size=0.3, random_state=42, stratify=y.numpy()
    )
    return float(KNeighborsClassifier(n_neighbors=k).fit(z_fit, y_fit).score(z_score, y_score))


def active_units(means: Tensor) -> int:
    """Latent dimensions whose posterior mean varies over the data by more than 0.01."""
    return int((means.double().var(dim=0, unbiased=False) > ACTIVE_UNIT_THRESHOLD).sum())


@torch.no_grad()
def iwae_nll_per_image(
    model: VAE, x: Tensor, likelihood: str, samples: int, generator: torch.Generator
) -> np.ndarray:
    """-log p(x) in nats of each image, estimated with `samples` importance samples from q(z|x):
    log p(x) >= log mean_k p(x|z_k) p(z_k) / q(z_k|x), which tightens as `samples` grows and
    equals the ELBO at one sample."""
    model.eval()
    # The noise is drawn for NOISE_DECODES decodes at a time (the same noise whatever the
    # network), and decoded in pieces that fit a pass (`images_per_pass`).
    per_batch = max(1, NOISE_DECODES // samples)
    per_pass = images_per_pass(model, x)
    parts = []
    for start in range(0, len(x), per_batch):
        stop_if_requested()  # a safe point: the estimate takes seconds
        images = x[start : start + per_batch].float()
        mu, logvar = (t.float() for t in model.encode(images))
        std = torch.exp(0.5 * logvar)
        # Drawn by a CPU generator whatever the device: every device estimates with the same noise.
        eps = torch.randn((samples, *mu.shape), generator=generator, dtype=mu.dtype).to(mu.device)
        z = (mu + std * eps).flatten(0, 1)  # (samples x images, latent), sample-major
        flat = images.expand(samples, *images.shape).flatten(0, 1)
        log_px_z = torch.cat(
            [
                log_likelihood(
                    model.decode(z[i : i + per_pass]).float(), flat[i : i + per_pass], likelihood
                )
                for i in range(0, len(z), per_pass)
            ]
        ).view(samples, len(images))
        z = z.view(samples, len(images), -1)
        log_pz = -0.5 * (z.square() + math.log(2 * math.pi)).sum(-1)
        log_qz = -0.5 * (eps.square() + logvar + math.log(2 * math.pi)).sum(-1)
        log_w = log_px_z + log_pz - log_qz
        parts.append(-(torch.logsumexp(log_w, dim=0) - math.log(samples)).double().cpu())
    return torch.cat(parts).numpy()


@torch.no_grad()
def encode_means(model: VAE, x: Tensor, device: torch.device) -> Tensor:
    model.eval()
    step = images_per_pass(model, x[:1].to(device))
    parts = [model.encode(x[i : i + step].to(device))[0].float() for i in range(0, len(x), step)]
    return torch.cat(parts).cpu()


@torch.no_grad()
def reconstruct(model: VAE, x: Tensor, device: torch.device) -> Tensor:
    """Deterministic (z = mu) reconstructions in [0, 1]."""
    model.eval()
    step = images_per_pass(model, x[:1].to(device))
    parts = [model.reconstruct(x[i : i + step].to(device)) for i in range(0, len(x), step)]
    return torch.cat(parts).float().cpu()


class Evaluation(NamedTuple):
    metrics: dict[str, float | list[float]]  # lists: per latent dimension
    test_means: Tensor  # latent means of the test set, kept for the report's scatter plots


def evaluation_steps(config: TrainConfig) -> list[str]:
    """The final evaluation's steps, in order, as its progress names them."""
    per_split = ["ELBO and MSE", "SSIM"] + (["-log p(x)"] if config.iwae_samples else [])
    return ["k-NN reference codes"] + [f"{s} {step}" for s in ("val", "test") for step in per_split]


def evaluate(
    model: VAE,
    splits: Splits,
    config: TrainConfig,
    compute: Compute,
    on_step: Callable[[str, int, int], None] = lambda step, done, total: None,
) -> Evaluation:
    """Final metrics on validation and test, in fp32 whatever the training precision, so the same
    weights give the same metrics on every machine: beta=1 loss (the negative ELBO) with its
    recon and KL terms, per-pixel MSE of z = mu reconstructions, 5-NN accuracy of latent means
    (fitted on the training split's; and, for test, the notebook's protocol), active units and
    per-dimension KL, SSIM of z = mu reconstructions on a fixed 1,000 images (as the notebook
    does), and the IWAE negative log-likelihood on a fixed 500 (both cost the most; NaN where
    `iwae_samples` is 0). `on_step(step, done, total)` hears each step as it starts."""
    compute = compute.for_evaluation
    device = compute.device
    steps = iter(enumerate(evaluation_steps(config)))
    total = len(evaluation_steps(config))

    def step() -> None:
        stop_if_requested()  # between steps: each takes a second or more
        done, name = next(steps)
        on_step(name, done, total)

    step()
    reference = encode_means(model, splits.train_x, device)
    metrics: dict[str, float | list[float]] = {}
    means = {}
    for part, x, y in (("val", splits.val_x, splits.val_y), ("test", splits.test_x, splits.test_y)):
        whole = splits.whole.get(part, len(x))  # what a subset's standard error is of
        step()
        check = validate(model, x.to(device), config, 1.0, compute, keep_reconstructions=True)
        stats, means[part] = check.stats, check.means
        step()
        chosen = fixed_subset(len(x), config.ssim_images or len(x), SSIM_SEED)
        assert check.reconstructions is not None  # kept_reconstructions asked for them
        ssim, ssim_se = subset_estimate(
            ssim_per_image(x[chosen], check.reconstructions[chosen]), whole
        )
        nll, nll_se = math.nan, math.nan
        if config.iwae_samples:
            step()
            nll_size = config.nll_val_images if part == "val" else config.nll_test_images
            nll_images = x[fixed_subset(len(x), nll_size or len(x), NLL_SEED)].to(device)
            generator = torch.Generator().manual_seed(NLL_SEED)
            nll, nll_se = subset_estimate(
                iwae_nll_per_image(
                    model, nll_images, config.likelihood, config.iwae_samples, generator
                ),
                whole,
            )
        metrics |= {
            f"{part}_loss": stats["loss"],
            f"{part}_recon": stats["recon"],
            f"{part}_kl": stats["kl"],
            f"{part}_mse": stats["mse"],
            f"{part}_ssim": ssim,
            f"{part}_ssim_se": ssim_se,
            f"{part}_knn_accuracy": knn_accuracy(reference, splits.train_y, means[part], y),
            f"{part}_nll": nll,
            f"{part}_nll_se": nll_se,
            f"{part}_active_units": active_units(means[part]),
            f"{part}_kl_per_dim": check.kl_per_dim.tolist(),
        }
    metrics["test_knn_notebook"] = knn_accuracy_notebook(means["test"], splits.test_y)
    return Evaluation(metrics, means["test"])
