"""The study's answer: per-configuration means with 95% intervals, and which differences the
noise can separate.

Only trials trained under the study's protocol enter: completed (full budget, early stopping
being part of the protocol) and placed by the design in its answer phase (the grid, or the
confirmation re-runs). Intervals are Student-t intervals of the mean over replicates; the best
configuration is compared with each other one by Welch's t-test (scipy), the p-values corrected
for the number of comparisons with Holm's step-down method.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from vaesweep.metric_names import label

ALPHA = 0.05
CONFIDENCE = 0.95


def configuration(table: pd.DataFrame, params: Sequence[str]) -> pd.Series:
    """Each row's configuration as text: the value alone for one parameter."""
    if len(params) == 1:
        return table[params[0]].map(_format_value)
    return table[list(params)].apply(
        lambda row: ", ".join(f"{p}={_format_value(row[p])}" for p in params), axis=1
    )


def _format_value(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def mean_interval(values: np.ndarray) -> tuple[float, float, float, float]:
    """(mean, sd, ci_low, ci_high): a Student-t 95% interval; NaN where n < 2."""
    n = len(values)
    mean = float(np.mean(values)) if n else math.nan
    if n < 2:
        return mean, math.nan, math.nan, math.nan
    sd = float(np.std(values, ddof=1))
    half = float(stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1)) * sd / math.sqrt(n)
    return mean, sd, mean - half, mean + half


def effects_table(
    trials: pd.DataFrame, params: Sequence[str], metrics: Sequence[str]
) -> pd.DataFrame:
    """One row per (configuration, metric) of comparable trials."""
    columns = ["param", "value", "metric", "n", "mean", "sd", "ci_low", "ci_high"]
    if trials.empty:
        return pd.DataFrame(columns=columns)
    labelled = trials.assign(_config=configuration(trials, params))
    rows = []
    for config, group in labelled.groupby("_config", sort=False):
        for metric in metrics:
            values = group[metric].dropna().to_numpy(dtype=float)
            mean, sd, low, high = mean_interval(values)
            rows.append(
                {"param": ", ".join(params), "value": config, "metric": metric, "n": len(values),
                 "mean": mean, "sd": sd, "ci_low": low, "ci_high": high}
            )  # fmt: skip
    frame = pd.DataFrame(rows, columns=columns)
    order = _value_order(trials, params)
    return frame.sort_values(
        ["metric", "value"], key=lambda s: s.map(order) if s.name == "value" else s, kind="stable"
    ).reset_index(drop=True)


def _value_order(trials: pd.DataFrame, params: Sequence[str]) -> dict[str, int]:
    """Configurations in their parameters' natural order (numbers ascending)."""
    ordered = trials.sort_values(list(params), kind="stable")
    return {label: i for i, label in enumerate(dict.fromkeys(configuration(ordered, params)))}


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment: controls the family-wise error rate over the comparisons."""
    p = np.asarray(p_values, dtype=float)
    adjusted, running = np.empty(len(p)), 0.0
    for rank, index in enumerate(np.argsort(p, kind="stable")):
        running = max(running, min(1.0, (len(p) - rank) * p[index]))
        adjusted[index] = running
    return adjusted.tolist()


def welch_p(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided Welch t-test; without any spread, equal samples give 1 and unequal ones 0."""
    if np.std(a) == 0 and np.std(b) == 0:
        return 1.0 if np.mean(a) == np.mean(b) else 0.0
    with warnings.catch_warnings():  # nearly equal samples: scipy warns, the p-value stands
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


@dataclass
class Answer:
    objective: str
    direction: str
    best: str  # the configuration with the best mean
    n: int
    mean: float
    half_width: float  # of the 95% interval; NaN with one replicate
    better_than: list[str] = field(default_factory=list)
    not_distinguishable: list[str] = field(default_factory=list)
    adjusted_p: dict[str, float] = field(default_factory=dict)
    sentence: str = ""


def answer(
    trials: pd.DataFrame, params: Sequence[str], objective: str, direction: str
) -> Answer | None:
    """Which configuration has the best mean objective, and which others the noise separates
    from it. None without comparable trials."""
    trials = trials.dropna(subset=[objective])
    if trials.empty:
        return None
    labelled = trials.assign(_config=configuration(trials, params))
    samples = {
        config: group[objective].to_numpy(dtype=float)
        for config, group in labelled.groupby("_config", sort=False)
    }
    sign = -1.0 if direction == "maximize" else 1.0
    best = min(samples, key=lambda c: (sign * np.mean(samples[c]), c))
    mean, _, low, high = mean_interval(samples[best])
    result = Answer(objective, direction, best, len(samples[best]), mean, (high - low) / 2)
    others = [c for c in sorted(samples, key=_value_order(trials, params).get) if c != best]
    testable = all(len(samples[c]) >= 2 for c in samples)
    if others and testable:
        raw = [welch_p(samples[best], samples[c]) for c in others]
        result.adjusted_p = dict(zip(others, holm(raw), strict=True))
        for config in others:
            separated = result.adjusted_p[config] < ALPHA
            (result.better_than if separated else result.not_distinguishable).append(config)
    result.sentence = _sentence(result, params, len(others), testable)
    return result


def _sentence(result: Answer, params: Sequence[str], n_others: int, testable: bool) -> str:
    def listed(configs: Sequence[str]) -> str:
        # A configuration of several parameters is a list itself: set each apart.
        return ", ".join(f"({c})" if len(params) > 1 else c for c in configs)

    name = params[0] if len(params) == 1 else "configuration"
    numbers = f"{label(result.objective)} {result.mean:.4g}"
    if math.isnan(result.half_width):
        numbers += f" (n = {result.n}: no interval)"
    else:
        numbers += f" ± {result.half_width:.2g} (95% CI, n = {result.n})"
    where = f"{name} = {result.best}" if len(params) == 1 else f"({result.best})"
    if not n_others:
        return f"only {where} was compared: {numbers}."
    if not testable:
        return (
            f"highest mean at {where}: {numbers}; some configurations have fewer than 2 "
            "replicates, so no difference can be tested: run more trials."
        )
    test = "Welch t-test" + (
        f", Holm-corrected over {n_others} comparisons" if n_others > 1 else ""
    )
    if not result.better_than:
        return (
            f"no winner: the best mean, {where}: {numbers}, is not distinguishable from "
            f"{listed(result.not_distinguishable)} ({test}, all p ≥ {ALPHA})."
        )
    verdict = f"best {where}: {numbers}; "
    if result.not_distinguishable:
        verdict += f"not distinguishable from {listed(result.not_distinguishable)}; "
        verdict += f"better than {listed(result.better_than)}"
    else:
        every = "every other: " if n_others > 1 else ""
        verdict += f"better than {every}{listed(result.better_than)}"
    return f"{verdict} ({test}, p < {ALPHA})."
