"""Every final metric a trial records (`metrics.evaluate` computes them): its label in tables,
figures and answers, which way is better, and what a study may do with it. One home for the
names, read by the study files' checks, the trials table, the answer and the figures (stdlib
only, so the report's page imports it freely)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Direction = Literal["minimize", "maximize"]

SPLITS = ("val", "test")
KNN_NEIGHBOURS = 5  # the k-NN metrics' k: also the fewest training images a run may keep


@dataclass(frozen=True)
class Metric:
    label: str
    better: Direction
    selectable: bool = True  # a study may select on its validation value
    per_epoch: str | None = None  # its counterpart in the training history (what a pruner sees)
    likelihood_scaled: bool = False  # on the likelihood's own scale: MSE and BCE trials differ
    compared: bool = True  # False: a property of an estimate (its standard error), not a result
    span: float | None = None  # the width of the values it can take (None: unbounded)


# Computed for both splits, as f"{split}_{name}", in the tables' order.
METRICS = {
    "loss": Metric("loss (β=1 −ELBO)", "minimize", per_epoch="elbo", likelihood_scaled=True),
    "recon": Metric("reconstruction", "minimize", per_epoch="recon", likelihood_scaled=True),
    "kl": Metric("KL", "minimize", per_epoch="kl"),
    "nll": Metric("−log p(x) (nats)", "minimize", likelihood_scaled=True),
    "nll_se": Metric("SE of −log p(x)", "minimize", selectable=False, compared=False),
    "mse": Metric("per-pixel MSE", "minimize", per_epoch="mse", span=1.0),  # pixels in [0, 1]
    "ssim": Metric("SSIM", "maximize", span=2.0),  # in [-1, 1]
    "ssim_se": Metric("SE of SSIM", "minimize", selectable=False, compared=False),
    "knn_accuracy": Metric(f"{KNN_NEIGHBOURS}-NN accuracy", "maximize", span=1.0),
    "active_units": Metric("active units", "maximize", selectable=False),
}
# Computed for the test split alone.
TEST_ONLY = {
    "knn_notebook": Metric(
        f"{KNN_NEIGHBOURS}-NN (notebook protocol)", "maximize", selectable=False, span=1.0
    )
}

# Final metrics a study may select on, and their directions. Test metrics are never selectable.
OBJECTIVE_DIRECTIONS = {f"val_{n}": m.better for n, m in METRICS.items() if m.selectable}
# Each objective's per-epoch value in the training history (lower is better, independent of the
# warm-up's beta). A pruner compares these, so a pruned trial's stored value (Optuna keeps its
# last reported one) is on its objective's scale. SSIM, 5-NN and NLL are not computed per epoch.
PER_EPOCH = {f"val_{n}": f"val_{m.per_epoch}" for n, m in METRICS.items() if m.per_epoch}
# Values on the likelihood's own scale: MSE and BCE trials cannot be compared on them.
LIKELIHOOD_SCALED = {f"val_{n}" for n, m in METRICS.items() if m.likelihood_scaled}
# The trials table's metric columns, and those whose configurations effects.csv compares.
TABLE_COLUMNS = (
    *(f"{split}_{name}" for split in SPLITS for name in METRICS),
    *(f"test_{name}" for name in TEST_ONLY),
)
COMPARED_COLUMNS = tuple(
    c for c in TABLE_COLUMNS if (METRICS | TEST_ONLY)[c.partition("_")[2]].compared
)


def label(column: str) -> str:
    """'val_knn_accuracy' -> 'val 5-NN accuracy'; unknown names are shown as they are."""
    split, _, name = column.partition("_")
    metric = METRICS.get(name) or TEST_ONLY.get(name)
    return f"{split} {metric.label}" if split in SPLITS and metric else column


def span(column: str) -> float | None:
    """The width of the values a column can take (1 for an accuracy); None when unbounded."""
    split, _, name = column.partition("_")
    metric = METRICS.get(name) or TEST_ONLY.get(name)
    return metric.span if split in SPLITS and metric else None


def better(column: str) -> Direction:
    """Which way is better for a table column ('minimize' for names it does not know)."""
    split, _, name = column.partition("_")
    metric = METRICS.get(name) or TEST_ONLY.get(name)
    return metric.better if split in SPLITS and metric else "minimize"
