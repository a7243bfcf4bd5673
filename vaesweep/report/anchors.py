"""Reference numbers a reader can hold vaesweep's results against, each with its protocol and
source: published results, and a floor computed here from the pixels alone."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from vaesweep.spec.config import DEFAULTS


@dataclass(frozen=True)
class Anchor:
    name: str
    metric: str  # the vaesweep metric it is comparable with
    value: float
    protocol: str
    source: str
    requires: tuple[tuple[str, Any], ...] = ()  # settings a study must share to be set beside it

    def applies_to(self, settings: dict[str, Any]) -> bool:
        # Every anchor was measured on the whole test set: never beside a subset of it.
        required = (*self.requires, ("eval_images", 0))
        return all(settings.get(k, DEFAULTS[k]) == v for k, v in required)


UMAP_SOURCE = (
    "Sainburg, McInnes & Gentner 2021, Parametric UMAP embeddings (timsainb/ParametricUMAP_paper)"
)
PUBLISHED = (
    Anchor(
        "Parametric UMAP paper: 2-D convolutional VAE",
        "test_knn_accuracy",
        0.716,
        "Fashion-MNIST, 2-D latent, 5-NN classifier on the embeddings",
        UMAP_SOURCE,
        requires=(("latent_dim", 2),),
    ),
    Anchor(
        "Parametric UMAP paper: 2-D convolutional VAE",
        "test_mse",
        0.0253,
        "Fashion-MNIST, 2-D latent, per-pixel MSE of reconstructions",
        UMAP_SOURCE,
        requires=(("latent_dim", 2),),
    ),
    Anchor(
        "Exemplar VAE paper: VAE with a Gaussian prior",
        "test_nll",
        228.70,
        "dynamically binarized Fashion-MNIST, 40-D latent, 5,000 importance samples, all 10,000 "
        "test images",
        "Norouzi, Fleet & Norouzi 2020, Exemplar VAE (sajadn/Exemplar-VAE)",
        # A Bernoulli likelihood of grey images is no density; a subset is not the test set.
        requires=(("binarize", True), ("nll_test_images", 0)),
    ),
)


def pca_floor(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray):
    """5-NN accuracy on a 2-D PCA of the pixels, fitted and scored as vaesweep scores latents
    (fitted on training images, scored on test images): what any 2-D code should beat."""
    from sklearn.decomposition import PCA
    from sklearn.neighbors import KNeighborsClassifier

    from vaesweep.spec.metric_names import KNN_NEIGHBOURS

    pca = PCA(n_components=2, random_state=0).fit(train_x.reshape(len(train_x), -1))
    fit = pca.transform(train_x.reshape(len(train_x), -1))
    scored = pca.transform(test_x.reshape(len(test_x), -1))
    accuracy = (
        KNeighborsClassifier(n_neighbors=KNN_NEIGHBOURS).fit(fit, train_y).score(scored, test_y)
    )
    return Anchor(
        "2-D PCA of the pixels (computed here)",
        "test_knn_accuracy",
        float(accuracy),
        "the same 5-NN protocol as vaesweep's primary: fitted on the 60,000 training images' "
        "codes, scored on the 10,000 test images'",
        "vaesweep report, scikit-learn PCA",
    )
