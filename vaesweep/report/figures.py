"""The report's figures: pure functions from tables, histories and models to matplotlib figures.

Conventions: a latent grid has z2 = +3 at the top (as on a plot's y axis); latents wider than 2-D
are shown through their first two principal components (scatter) or the two most spread-out
dimensions with the others at 0, the prior mean (manifold grid).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import seaborn as sns
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from sklearn.decomposition import PCA
from torchvision.utils import make_grid

from vaesweep.answer.effects import configuration
from vaesweep.spec.metric_names import label as metric_label
from vaesweep.training.data import CLASS_NAMES
from vaesweep.training.model import VAE

GRID_SIZE, GRID_LIMIT = 15, 3.0
HISTORY_PANELS = (
    ("loss", "total loss (recon + β·KL)"),
    ("recon", "reconstruction"),
    ("kl", "KL (unscaled)"),
    ("beta_kl", "β·KL"),
)


def _figure(rows: int = 1, cols: int = 1, figsize=None, **subplots):
    """A figure outside pyplot's registry (nothing to close, no display backend needed)."""
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(rows, cols, **subplots)


def _panels(n: int, most: int = 3) -> tuple[int, int]:
    """Rows and columns for n panels, at most `most` to a row (a long strip is unreadable)."""
    cols = max(1, min(most, n))
    return -(-n // cols), cols


def _hide_unused(axes: np.ndarray, used: int) -> None:
    for ax in list(axes.flat)[used:]:
        ax.set_visible(False)


def _whole_numbers(ax, values: pd.Series) -> None:
    """A count (active units) gets whole-number ticks, and a constant one an axis around it
    rather than matplotlib's 1.900 to 2.100."""
    values = pd.to_numeric(values, errors="coerce").dropna()
    # Whole numbers above 1: a count, not an accuracy that happens to be exactly 0 or 1.
    if values.empty or values.max() <= 1 or not np.all(np.mod(values, 1) == 0):
        return
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    if values.min() == values.max():
        ax.set_ylim(values.min() - 1, values.max() + 1)


def _tile(images: torch.Tensor, nrow: int) -> np.ndarray:
    """Images (N, 1, 28, 28) in [0, 1] as one grayscale picture, row by row."""
    return make_grid(images, nrow=nrow, padding=0)[0].numpy()


def effects_plot(
    trials: pd.DataFrame,
    effects: pd.DataFrame,
    params: Sequence[str],
    metrics: Sequence[str],
    phase: str,
) -> Figure:
    """The answer's evidence: each configuration's replicates (comparable trials only) as dots,
    their mean and 95% interval (from the study's effects table) as a bar, one panel per metric.
    No line through discrete values."""
    from vaesweep.answer.effects import configuration

    # A metric this study did not measure (NaN throughout: -log p(x) with iwae_samples = 0)
    # gets no panel rather than an empty one.
    metrics = [m for m in metrics if m in trials and trials[m].notna().any()]
    labelled = trials.assign(configuration=configuration(trials, params))
    table = effects[effects["metric"].isin(metrics)]
    order = list(dict.fromkeys(table["value"]))
    rows, cols = _panels(len(metrics))
    width = max(4.2, 0.55 * len(order) + 1.8)
    fig, axes = _figure(rows, cols, figsize=(width * cols, 3.6 * rows), squeeze=False)
    for ax, metric in zip(axes.flat, metrics, strict=False):
        sns.stripplot(
            data=labelled,
            x="configuration",
            y=metric,
            order=order,
            ax=ax,
            color="0.45",
            size=4,
            jitter=0.15,
            alpha=0.8,
        )
        rows_of = table[table["metric"] == metric].set_index("value").reindex(order)
        positions = np.arange(len(order))
        half = (rows_of["ci_high"] - rows_of["ci_low"]).to_numpy() / 2
        ax.errorbar(
            positions + 0.25,
            rows_of["mean"],
            yerr=half,
            fmt="o",
            color="C3",
            capsize=4,
            ms=5,
            label="mean ± 95% CI",
        )
        ax.set(xlabel=", ".join(params), ylabel=metric_label(metric), title=metric_label(metric))
        ax.tick_params(axis="x", labelrotation=30 if len(params) > 1 else 0)
        ax.grid(axis="y", alpha=0.3)
        _whole_numbers(ax, labelled[metric])
    _hide_unused(axes, len(metrics))
    axes.flat[0].legend(fontsize=8)
    n = table.groupby("value")["n"].max()
    counts = f"{n.min()}" if n.min() == n.max() else f"{n.min()}–{n.max()}"
    fig.suptitle(
        f"completed {phase} trials only: dots are replicates (n = {counts} per "
        "configuration), red the mean with its 95% t-interval",
        fontsize=10,
    )
    fig.tight_layout()
    return fig


def paired_differences(answers: Sequence, params: Sequence[str]) -> Figure | None:
    """The answer's evidence, one panel per objective: each configuration's mean minus the best
    mean of the others (the leader's: its lead), a grey point per seed block (blocked designs),
    MCB's 95% simultaneous interval in red (reaching above 0 on the better side: it may be the
    best), the closed test's verdict under each, zero dashed, and the equivalence margin shaded
    where the study sets one."""
    shown = [a for a in answers if a.comparison is not None]
    if not shown:
        return None
    name = params[0] if len(params) == 1 else "configuration"
    # A configuration of several parameters is a long label: one parameter a line.
    wrap = (lambda text: text) if len(params) == 1 else (lambda text: text.replace(", ", "\n"))
    height = 3.8 if len(params) == 1 else 3.8 + 0.45 * len(params)
    fig, axes = _figure(1, len(shown), figsize=(6.0 * len(shown), height), squeeze=False)
    for ax, found_answer in zip(axes[0], shown, strict=True):
        found = found_answer.comparison
        entries = found.entries
        positions = np.arange(len(entries))
        if found.blocked:
            for x, d in zip(positions, entries, strict=True):
                ys = list(d.per_block.values())
                ax.scatter(np.full(len(ys), x - 0.1), ys, color="0.55", s=9, alpha=0.7, zorder=2)
        diffs = np.array([d.diff for d in entries])
        below = [d.diff - d.low for d in entries]
        above = [d.high - d.diff for d in entries]
        ax.errorbar(
            positions + 0.12,
            diffs,
            yerr=[below, above],
            fmt="s",
            color="C3",
            capsize=5,
            ms=5,
            lw=1.8,
            label="mean, MCB 95% simultaneous interval",
            zorder=3,
        )
        ax.axhline(0, color="k", lw=0.8, ls="--")
        if found.margin is not None:
            margin = f"equivalence margin ±{found.margin:.2g}"
            ax.axhspan(-found.margin, found.margin, color="C2", alpha=0.12, label=margin)
        labels = [f"{wrap(d.config)}\n{d.verdict}" for d in entries]
        ax.set_xticks(positions, labels, fontsize=8)
        ax.set(xlabel=name, ylabel="minus the best mean of the others")
        ax.set_xlim(-0.45, len(entries) - 0.4)
        ax.set_title(
            f"{metric_label(found_answer.objective)}: each {name} minus the best mean of the "
            f"others\n{pairing_caption(found)}",
            fontsize=9,
        )
        ax.grid(axis="y", alpha=0.3)
        # Below the axes: inside, a legend can hide an interval's end.
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.28), ncol=2)
    fig.tight_layout()
    return fig


def pairing_caption(found) -> str:
    """What the grey points are, and what pairing within seed blocks did to the variance of a
    difference (`Comparison.variance_ratio` is unpaired over paired)."""
    if not found.blocked:
        return "independent replicates (no pairing)"
    ratio = found.variance_ratio
    points = f"grey: a seed block each (n = {found.blocks})"
    if math.isnan(ratio):
        return f"{points}; no difference varied between blocks"
    if ratio >= 1:
        cut = f"pairing cut the variance\nof a difference {ratio:.2g}× against unpaired replicates"
        return f"{points}; {cut}"
    return (
        f"{points}; pairing did not reduce the variance\n"
        f"of a difference: {1 / ratio:.2g}× that of unpaired replicates"
    )


def explored(
    table: pd.DataFrame, param: str, metrics: Sequence[str], categorical: bool, log: bool
) -> Figure:
    """What the sampler explored: each metric against one parameter. Pruned trials trained for
    fewer epochs, so they are greyed and never enter a comparison; no trend line is drawn."""
    rows, cols = _panels(len(metrics))
    fig, axes = _figure(rows, cols, figsize=(4.2 * cols, 3.8 * rows), squeeze=False)
    palette = {"COMPLETE": "C0", "PRUNED": "0.75"}
    for ax, metric in zip(axes.flat, metrics, strict=False):
        data = table.dropna(subset=[metric])
        ax.set_title(f"explored: {metric_label(metric)}", fontsize=10)
        if data.empty:  # a metric these trials did not compute (seaborn would warn, and draw none)
            ax.text(0.5, 0.5, "not measured", ha="center", va="center", transform=ax.transAxes)
            continue
        if categorical:
            order = sorted(data[param].unique(), key=str)
            sns.stripplot(
                data=data,
                x=param,
                y=metric,
                order=order,
                hue="state",
                ax=ax,
                size=5,
                palette=palette,
            )
        else:
            sns.scatterplot(data=data, x=param, y=metric, hue="state", ax=ax, s=35, palette=palette)
            if log:
                ax.set_xscale("log")
        ax.set_ylabel(metric_label(metric))
        _whole_numbers(ax, data[metric])
        if ax.get_legend():
            ax.get_legend().set_title("grey: pruned, not comparable")
    _hide_unused(axes, len(metrics))
    fig.tight_layout()
    return fig


def tuning_curves(
    tuning: pd.DataFrame, chosen: pd.DataFrame, scientific: Sequence[str], param, objective: str
) -> Figure | None:
    """Each configuration's tuning curve: the mean objective of its tuning trials (over the
    tuning seed blocks) against one nuisance parameter, the value it was confirmed at ringed."""
    data = tuning.dropna(subset=[objective, param.name])
    if data.empty:
        return None
    means = data.groupby(["_config", *scientific, param.name], as_index=False)[objective].mean()
    blocks = data["replicate"].nunique() if "replicate" in data else 1
    fig, ax = _figure(1, 1, figsize=(8.4, 3.8))
    sns.lineplot(data=means, x=param.name, y=objective, hue="_config", marker="o", ax=ax)
    picks = means.merge(chosen, on=[*scientific, param.name])
    ax.scatter(picks[param.name], picks[objective], s=160, facecolors="none", edgecolors="black")
    if param.log:
        ax.set_xscale("log")
    ax.set_ylabel(metric_label(objective))
    over = "one seed block" if blocks == 1 else f"mean of {blocks} seed blocks"
    ax.set_title(
        f"tuning {param.name} for each configuration, {over} (ringed: the value confirmed, "
        "with fresh blocks)",
        fontsize=10,
    )
    if ax.get_legend():
        ax.get_legend().set_title(", ".join(scientific))
    fig.tight_layout()
    return fig


def learning_curves(histories: pd.DataFrame, param: str) -> Figure | None:
    """Validation β=1 loss per epoch of every trial, and every trial's β schedule (None when no
    trial's history could be read, or the trials trained one epoch). Epochs count from 1, as
    in the live view and each trial's figures; the loss axis spans the epochs after the first
    where there are some, since the first epoch's loss, far above, would flatten the
    differences at the end."""
    if histories.empty or histories["epoch"].max() < 1:  # epoch 0 alone: a point, not a curve
        return None
    fig, (left, right) = _figure(1, 2, figsize=(11, 4))
    ordered = histories.sort_values(param, kind="stable")
    shown = {param: configuration(histories, [param])}  # values as the tables write them
    data = histories.assign(epoch=histories["epoch"] + 1, **shown)
    order = list(dict.fromkeys(configuration(ordered, [param])))
    numeric = pd.api.types.is_numeric_dtype(histories[param])
    palette = sns.color_palette("viridis" if numeric else "tab10", len(order))
    common = dict(data=data, x="epoch", hue=param, hue_order=order, units="trial")
    common |= dict(estimator=None, palette=palette)
    sns.lineplot(y="val_elbo", ax=left, lw=1, **common)
    title = "validation loss at β=1 (−ELBO) per epoch"
    later = data.loc[data["epoch"] > 1, "val_elbo"]
    if not later.empty and data["val_elbo"].max() > later.max():
        pad = 0.05 * (later.max() - later.min() or abs(later.max()) or 1.0)
        left.set_ylim(later.min() - pad, later.max() + pad)
        title += "\n(the loss axis fits epochs 2 on; epoch 1's loss lies above it)"
    left.set(title=title, ylabel="val loss (β=1)")
    sns.lineplot(y="beta", ax=right, lw=1.5, **common)
    right.set(title="KL weight β per epoch (warm-up)", ylabel="β")
    for ax in (left, right):
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    return fig


def optimization_history(
    table: pd.DataFrame, objectives: Sequence[str], directions: Sequence[str]
) -> Figure:
    """Objective value of each trial in order, with the best so far."""
    fig, axes = _figure(1, len(objectives), figsize=(5.5 * len(objectives), 3.8), squeeze=False)
    for ax, objective, direction in zip(axes[0], objectives, directions, strict=True):
        data = table.dropna(subset=[objective]).sort_values("trial")
        sns.scatterplot(data=data, x="trial", y=objective, hue="state", ax=ax, s=35)
        complete = data[data["state"] == "COMPLETE"]
        best = (
            complete[objective].cummin()
            if direction == "minimize"
            else complete[objective].cummax()
        )
        # One seed's value: the answer, not this line, says which configuration is best.
        ax.step(complete["trial"], best, where="post", color="C3", label="best single trial so far")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # trial numbers, never 1.5
        ax.legend(fontsize=8)
        ax.set(
            title=f"optimisation history ({direction})",
            xlabel="trial number",
            ylabel=metric_label(objective),
        )
    fig.tight_layout()
    return fig


def param_importances(importances: dict[str, dict[str, float]]) -> Figure:
    """Optuna's parameter importances, one panel per objective."""
    fig, axes = _figure(1, len(importances), figsize=(5 * len(importances), 3), squeeze=False)
    for ax, (objective, values) in zip(axes[0], importances.items(), strict=True):
        frame = pd.DataFrame({"parameter": list(values), "importance": list(values.values())})
        sns.barplot(data=frame, y="parameter", x="importance", ax=ax, color="C0")
        ax.set(xlim=(0, 1), title=f"importance for {metric_label(objective)}")
    fig.tight_layout()
    return fig


def pareto_front(table: pd.DataFrame, objectives: Sequence[str], front: set[int]) -> Figure:
    """The two objectives of every completed trial, Pareto-optimal ones highlighted."""
    x, y = objectives[:2]
    data = table[table["state"] == "COMPLETE"].assign(pareto=lambda t: t["trial"].isin(front))
    fig, ax = _figure(figsize=(6, 4.5))
    sns.scatterplot(
        data=data, x=x, y=y, hue="pareto", palette={True: "C3", False: "0.6"}, ax=ax, s=45
    )
    for row in data[data["pareto"]].itertuples():
        ax.annotate(
            str(row.trial),
            (getattr(row, x), getattr(row, y)),
            fontsize=8,
            xytext=(3, 3),
            textcoords="offset points",
        )
    ax.set(title="Pareto front", xlabel=metric_label(x), ylabel=metric_label(y))
    fig.tight_layout()
    return fig


def class_samples(images: torch.Tensor, labels: torch.Tensor, seed: int = 42) -> Figure:
    """One random training image per class, titled with its class name."""
    rng = np.random.default_rng(seed)
    fig, axes = _figure(2, 5, figsize=(11, 5.8))
    for label, ax in enumerate(axes.flat):
        index = rng.choice(np.flatnonzero(labels.numpy() == label))
        ax.imshow(images[index, 0].numpy(), cmap="gray", vmin=0, vmax=1)
        ax.set_title(f"{label}: {CLASS_NAMES[label]}")
        ax.axis("off")
    fig.suptitle("Fashion-MNIST: one random sample per class")
    fig.tight_layout()
    return fig


def latent_scatter(means: np.ndarray, labels: np.ndarray, title: str) -> Figure:
    """Test-set latent means coloured by class (2-D as is; wider through PCA)."""
    if means.shape[1] > 2:
        pca = PCA(n_components=2).fit(means)
        points = pca.transform(means)
        share = pca.explained_variance_ratio_.sum()
        axis_names = ("PC 1", "PC 2")
        title += (
            f"\n{means.shape[1]}-D latent means: first two principal components "
            f"({share:.0%} of variance)"
        )
    elif means.shape[1] == 1:  # one dimension: the means by class, jittered vertically
        jitter = np.random.default_rng(0).uniform(-0.3, 0.3, len(labels))
        points, axis_names = np.column_stack([means[:, 0], labels + jitter]), ("z1", "class")
    else:
        points, axis_names = means, ("z1", "z2")
    fig, ax = _figure(figsize=(7.5, 6))
    scatter = ax.scatter(
        points[:, 0], points[:, 1], c=labels, cmap="tab10", s=4, alpha=0.6, vmin=-0.5, vmax=9.5
    )
    colorbar = fig.colorbar(scatter, ax=ax, ticks=range(10))
    colorbar.ax.set_yticklabels(CLASS_NAMES)
    ax.set(xlabel=axis_names[0], ylabel=axis_names[1], title=title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


@torch.no_grad()
def manifold_grid(model: VAE, spread: np.ndarray, title: str) -> Figure:
    """Decoded 15x15 grid over [-3, 3]^2 (z2 = +3 on the top row); one row for a 1-D latent."""
    if len(spread) == 1:
        values = torch.linspace(-GRID_LIMIT, GRID_LIMIT, GRID_SIZE).view(-1, 1)
        images = torch.sigmoid(model.decode(values)).float()
        fig, ax = _figure(figsize=(12, 1.8))
        half = GRID_LIMIT / (GRID_SIZE - 1)
        extent: tuple[float, ...] = (-GRID_LIMIT - half, GRID_LIMIT + half, 0, 1)
        ax.imshow(_tile(images, GRID_SIZE), cmap="gray", vmin=0, vmax=1, extent=extent)
        ax.set(xlabel="z1", yticks=[], title=title)
        fig.tight_layout()
        return fig
    dims = (0, 1) if len(spread) == 2 else tuple(sorted(np.argsort(spread)[::-1][:2].tolist()))
    values = torch.linspace(-GRID_LIMIT, GRID_LIMIT, GRID_SIZE)
    z = torch.zeros(GRID_SIZE, GRID_SIZE, len(spread))
    z[..., dims[0]] = values.view(1, -1)  # columns: left to right
    z[..., dims[1]] = values.flip(0).view(-1, 1)  # rows: top is +3
    images = torch.sigmoid(model.decode(z.view(-1, len(spread)))).float()
    half = GRID_LIMIT / (GRID_SIZE - 1)  # half a cell, so ticks sit on cell centres
    extent = (-GRID_LIMIT - half, GRID_LIMIT + half, -GRID_LIMIT - half, GRID_LIMIT + half)
    fig, ax = _figure(figsize=(7.5, 7.5))
    ax.imshow(_tile(images, GRID_SIZE), cmap="gray", vmin=0, vmax=1, extent=extent)
    names = [f"z{d + 1}" for d in dims]
    if len(spread) > 2:
        title += f"\nslice through z{dims[0] + 1}, z{dims[1] + 1} (most spread); other dims at 0"
    ax.set(xlabel=names[0], ylabel=names[1], title=title)
    fig.tight_layout()
    return fig


@torch.no_grad()
def reconstructions(model: VAE, originals: torch.Tensor, title: str) -> Figure:
    """Originals (top) and their deterministic z = mu reconstructions (bottom)."""
    recon = model.reconstruct(originals).float()
    fig, axes = _figure(2, 1, figsize=(12, 3.2))
    for ax, images, label in ((axes[0], originals, "original"), (axes[1], recon, "recon (z = μ)")):
        ax.imshow(_tile(images, len(images)), cmap="gray", vmin=0, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_ylabel(label, rotation=0, ha="right", va="center")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


@torch.no_grad()
def uncertainty_maps(model: VAE, originals: torch.Tensor, title: str, samples: int = 64) -> Figure:
    """Per-pixel mean and variance of repeated stochastic decodes z ~ q(z|x) of the same inputs."""
    mu, logvar = model.encode(originals)
    generator = torch.Generator().manual_seed(0)
    z = model.reparameterize(mu.repeat(samples, 1), logvar.repeat(samples, 1), generator)
    decodes = torch.sigmoid(model.decode(z)).float().view(samples, *originals.shape)
    mean, variance = decodes.mean(0), decodes.var(0)
    fig, axes = _figure(3, 1, figsize=(12, 4.2))
    fig.subplots_adjust(left=0.1, right=0.84, top=0.84, bottom=0.02, hspace=0.1)
    rows = (
        (originals, "original", "gray", 1.0),
        (mean, "mean decode", "gray", 1.0),
        (variance, "variance", "magma", float(variance.max()) or 1.0),
    )
    for ax, (images, label, cmap, top) in zip(axes, rows, strict=True):
        shown = ax.imshow(_tile(images, len(images)), cmap=cmap, vmin=0, vmax=top)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_ylabel(label, rotation=0, ha="right", va="center")
    colorbar = fig.colorbar(shown, ax=axes[2], fraction=0.02, pad=0.01)
    # Beside the bar, level: written along a bar one row high, the label ran off the figure.
    colorbar.ax.set_ylabel("per-pixel\nvariance", rotation=0, ha="left", va="center")
    fig.suptitle(f"{title}\nuncertainty over {samples} decodes of z ~ q(z|x)")
    return fig


def training_history(history: pd.DataFrame, title: str) -> Figure:
    """Train and validation loss terms per epoch, β and the learning rate."""
    fig, axes = _figure(2, 3, figsize=(13, 6.5))
    epochs = history["epoch"] + 1
    for ax, (key, label) in zip(axes.flat[:4], HISTORY_PANELS, strict=True):
        ax.plot(epochs, history[f"train_{key}"], label="train", marker=".")
        ax.plot(epochs, history[f"val_{key}"], label="validation", marker=".")
        ax.set(title=label, xlabel="epoch")
        ax.legend(fontsize=8)
    axes.flat[4].plot(epochs, history["beta"], color="C2", marker=".")
    axes.flat[4].set(title="KL weight β (warm-up)", xlabel="epoch", ylim=(-0.05, 1.05))
    axes.flat[5].plot(epochs, history["lr"], color="C4", marker=".")
    axes.flat[5].set(title="learning rate", xlabel="epoch", yscale="log")
    for ax in axes.flat:
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        # Half an epoch either side: a one-epoch trial gets an axis around epoch 1, not 0.945.
        ax.set_xlim(epochs.min() - 0.5, epochs.max() + 0.5)
    fig.suptitle(title)
    # Fixed margins, wide enough for its tick labels: tight_layout is a whole extra draw, 0.10 s
    # of the 0.42 s this figure took a trial, the report's largest share (BENCHMARKS.md).
    fig.subplots_adjust(left=0.06, right=0.98, bottom=0.09, top=0.88, wspace=0.25, hspace=0.45)
    return fig


def kl_per_dimension(kl: Sequence[float], active: int | None, title: str) -> Figure:
    """Each latent dimension's KL to the prior on the test set: a dimension near 0 carries no
    information about x (posterior collapse)."""
    fig, ax = _figure(figsize=(max(4.5, 0.35 * len(kl) + 2), 3.4))
    ax.bar([f"z{i + 1}" for i in range(len(kl))], kl, color="C0")
    # A line each, so the narrow figure of a 2-D latent never clips them.
    units = f"\n{active} of {len(kl)} active units" if active is not None else ""
    ax.set_ylabel("KL (nats)")
    ax.set_title(f"{title}\ntest-set KL per latent dimension{units}", fontsize=10)
    ax.tick_params(axis="x", labelrotation=90 if len(kl) > 12 else 0)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig
