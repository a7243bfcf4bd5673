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
from vaesweep.train import EVAL_BATCH, validate

KNN_NEIGHBOURS = 5


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
def encode_means(model: VAE, x: Tensor, device: torch.device) -> Tensor:
    model.eval()
    parts = [
        model.encode(x[i : i + EVAL_BATCH].to(device))[0] for i in range(0, len(x), EVAL_BATCH)
    ]
    return torch.cat(parts).float().cpu()


@torch.no_grad()
def reconstruct(model: VAE, x: Tensor, device: torch.device) -> Tensor:
    """Deterministic (z = mu) reconstructions in [0, 1]."""
    model.eval()
    parts = [
        model.reconstruct(x[i : i + EVAL_BATCH].to(device)) for i in range(0, len(x), EVAL_BATCH)
    ]
    return torch.cat(parts).float().cpu()


class Evaluation(NamedTuple):
    metrics: dict[str, float]
    test_means: Tensor  # latent means of the test set, kept for the report's scatter plots


def evaluate(model: VAE, splits: Splits, config: TrainConfig, device: torch.device) -> Evaluation:
    """Final metrics on validation and test: beta=1 loss (the negative ELBO), its recon and KL
    terms, per-pixel MSE and SSIM of z = mu reconstructions, and 5-NN accuracy of latent means
    with the classifier fitted on the training split's latent means."""
    reference_z = encode_means(model, splits.train_x, device)
    metrics: dict[str, float] = {}
    means = {}
    for part, x, y in (("val", splits.val_x, splits.val_y), ("test", splits.test_x, splits.test_y)):
        elbo = validate(model, x.to(device), config, beta=1.0, device=device)
        x_hat = reconstruct(model, x, device)
        means[part] = encode_means(model, x, device)
        metrics |= {
            f"{part}_loss": elbo["loss"],
            f"{part}_recon": elbo["recon"],
            f"{part}_kl": elbo["kl"],
            f"{part}_mse": pixel_mse(x, x_hat),
            f"{part}_ssim": mean_ssim(x, x_hat),
            f"{part}_knn_accuracy": knn_accuracy(reference_z, splits.train_y, means[part], y),
        }
    return Evaluation(metrics, means["test"])
