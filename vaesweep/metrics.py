"""Likelihood-independent quality metrics, and the final evaluation of a trained model."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from skimage.metrics import structural_similarity
from sklearn.neighbors import KNeighborsClassifier
from torch import Tensor

from vaesweep.config import TrainConfig
from vaesweep.data import Splits
from vaesweep.model import VAE
from vaesweep.train import EVAL_BATCH, autocast, resolve_precision, validate

KNN_NEIGHBOURS = 5
SSIM_IMAGES, SSIM_SEED = 1000, 42


def pixel_mse(x: Tensor, x_hat: Tensor) -> float:
    """Mean squared error per pixel, averaged over images."""
    return float((x.float() - x_hat.float()).square().mean())


def mean_ssim(x: Tensor, x_hat: Tensor) -> float:
    """Mean SSIM (scikit-image, 7x7 window, data range 1) over image pairs."""
    a = x.reshape(len(x), *x.shape[-2:]).float().cpu().numpy()
    b = x_hat.reshape(len(x_hat), *x_hat.shape[-2:]).float().cpu().numpy()
    return float(
        np.mean([structural_similarity(p, q, data_range=1.0) for p, q in zip(a, b, strict=True)])
    )


def knn_accuracy(
    reference_z: Tensor, reference_y: Tensor, z: Tensor, y: Tensor, k: int = KNN_NEIGHBOURS
) -> float:
    """Accuracy of a k-NN classifier fitted on reference latent means, scored on `z`."""
    classifier = KNeighborsClassifier(n_neighbors=k).fit(reference_z.numpy(), reference_y.numpy())
    return float(classifier.score(z.numpy(), y.numpy()))


@torch.no_grad()
def encode_means(model: VAE, x: Tensor, device: torch.device, precision: str = "fp32") -> Tensor:
    model.eval()
    parts = []
    for i in range(0, len(x), EVAL_BATCH):
        with autocast(precision, device):
            parts.append(model.encode(x[i : i + EVAL_BATCH].to(device))[0].float())
    return torch.cat(parts).cpu()


@torch.no_grad()
def reconstruct(model: VAE, x: Tensor, device: torch.device) -> Tensor:
    """Deterministic (z = mu) reconstructions in [0, 1]."""
    model.eval()
    parts = [
        model.reconstruct(x[i : i + EVAL_BATCH].to(device)) for i in range(0, len(x), EVAL_BATCH)
    ]
    return torch.cat(parts).float().cpu()


def ssim_subset(n_images: int, size: int = SSIM_IMAGES) -> Tensor:
    """The fixed images SSIM is computed on: the same for every trial and every run."""
    generator = torch.Generator().manual_seed(SSIM_SEED)
    return torch.randperm(n_images, generator=generator)[: min(size, n_images)].sort().values


class Evaluation(NamedTuple):
    metrics: dict[str, float]
    test_means: Tensor  # latent means of the test set, kept for the report's scatter plots


def evaluate(model: VAE, splits: Splits, config: TrainConfig, device: torch.device) -> Evaluation:
    """Final metrics on validation and test, one pass over each: beta=1 loss (the negative
    ELBO) with its recon and KL terms, per-pixel MSE of z = mu reconstructions, 5-NN accuracy
    of latent means (fitted on the training split's), and SSIM of z = mu reconstructions on a
    fixed subset of 1,000 images (as the notebook does; scikit-image is the costliest part)."""
    precision = resolve_precision(config.precision, device)
    reference = encode_means(model, splits.train_x, device, precision)
    metrics: dict[str, float] = {}
    means = {}
    for part, x, y in (("val", splits.val_x, splits.val_y), ("test", splits.test_x, splits.test_y)):
        stats, means[part] = validate(model, x.to(device), config, 1.0, device)
        subset = x[ssim_subset(len(x))]
        metrics |= {
            f"{part}_loss": stats["loss"],
            f"{part}_recon": stats["recon"],
            f"{part}_kl": stats["kl"],
            f"{part}_mse": stats["mse"],
            f"{part}_ssim": mean_ssim(subset, reconstruct(model, subset, device)),
            f"{part}_knn_accuracy": knn_accuracy(reference, splits.train_y, means[part], y),
        }
    return Evaluation(metrics, means["test"])
