"""The study's answer: per-configuration means with 95% intervals, each configuration's
difference from the best with a simultaneous 95% interval (`comparison`), and the sentence.

Only trials trained under the study's protocol enter: completed (full budget, early stopping
being part of the protocol), placed by the design in its answer phase (the grid, or the
confirmation re-runs) and, in a blocked design, in a complete block. Intervals of a mean are
Student-t intervals over replicates.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from vaesweep.report.comparison import MAX_REPLICATES, Comparison, Difference, compare
from vaesweep.spec.metric_names import better, label

CONFIDENCE = 0.95
BLOCK = "replicate"  # the trials table's column that names a trial's block


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
    if sd == 0:  # scipy's interval of a constant sample is NaN; it is the point itself
        return mean, sd, mean, mean
    low, high = stats.t.interval(CONFIDENCE, n - 1, loc=mean, scale=sd / math.sqrt(n))
    return mean, sd, float(low), float(high)


def effects_table(
    trials: pd.DataFrame,
    params: Sequence[str],
    metrics: Sequence[str],
    blocked: bool = False,
    directions: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """One row per (configuration, metric) of comparable trials: its mean with a 95% interval,
    and its difference from the metric's best configuration with a simultaneous 95% interval
    (paired within blocks where `blocked`)."""
    columns = [
        "param",
        "value",
        "metric",
        "n",
        "mean",
        "sd",
        "ci_low",
        "ci_high",
        "best",
        "diff",
        "diff_low",
        "diff_high",
        "paired",
    ]
    if trials.empty:
        return pd.DataFrame(columns=columns)
    labelled = trials.assign(_config=configuration(trials, params))
    order = _value_order(trials, params)
    rows = []
    for metric in metrics:
        direction = (directions or {}).get(metric) or better(metric)
        found = compare_metric(labelled, order, metric, direction, blocked)
        differences = {d.config: d for d in found.differences} if found else {}
        for config, group in labelled.groupby("_config", sort=False):
            values = group[metric].dropna().to_numpy(dtype=float)
            mean, sd, low, high = mean_interval(values)
            row = {"param": ", ".join(params), "value": config, "metric": metric}
            row |= {"n": len(values), "mean": mean, "sd": sd, "ci_low": low, "ci_high": high}
            if found:
                d = differences.get(config, Difference(config, 0.0, 0.0, 0.0))  # the best: 0
                row |= {"best": found.best, "diff": d.diff, "diff_low": d.low}
                row |= {"diff_high": d.high, "paired": found.blocked}
            rows.append(row)
    frame = pd.DataFrame(rows, columns=columns)
    return frame.sort_values(
        ["metric", "value"], key=lambda s: s.map(order) if s.name == "value" else s, kind="stable"
    ).reset_index(drop=True)


def compare_metric(
    labelled: pd.DataFrame,
    order: Mapping[str, int],
    metric: str,
    direction: str,
    blocked: bool,
    margin: float | None = None,
) -> Comparison | None:
    """The comparison of one metric over trials labelled with their `_config`: by block where
    `blocked`, else each trial on its own."""
    rows = labelled.dropna(subset=[metric])
    key = BLOCK if blocked and BLOCK in rows else None
    samples = {
        config: {
            int(k): float(v)
            for k, v in zip(group[key] if key else group.index, group[metric], strict=True)
        }
        for config, group in rows.groupby("_config", sort=False)
    }
    return compare(
        samples, sorted(samples, key=order.__getitem__), direction, key is not None, margin
    )


def _value_order(trials: pd.DataFrame, params: Sequence[str]) -> dict[str, int]:
    """Configurations in their parameters' natural order (numbers ascending)."""
    ordered = trials.sort_values(list(params), kind="stable")
    return {label: i for i, label in enumerate(dict.fromkeys(configuration(ordered, params)))}


@dataclass
class Answer:
    objective: str
    direction: str
    best: str  # the configuration with the best mean
    n: int
    mean: float
    half_width: float  # of the 95% interval; NaN with one replicate
    comparison: Comparison | None = None  # None: one configuration, or too few replicates
    sentence: str = ""

    @property
    def better_than(self) -> list[str]:
        found = self.comparison
        return [d.config for d in found.differences if d.separated] if found else []


def answer(
    trials: pd.DataFrame,
    params: Sequence[str],
    objective: str,
    direction: str,
    blocked: bool = False,
    margin: float | None = None,
) -> Answer | None:
    """Which configuration has the best mean objective, how far each other one is from it, and
    what the design could have seen. None without comparable trials."""
    trials = trials.dropna(subset=[objective])
    if trials.empty:
        return None
    labelled = trials.assign(_config=configuration(trials, params))
    order = _value_order(trials, params)
    found = compare_metric(labelled, order, objective, direction, blocked, margin)
    means = labelled.groupby("_config", sort=False)[objective].mean()
    sign = -1.0 if direction == "maximize" else 1.0
    best = found.best if found else min(means.index, key=lambda c: (sign * means[c], order[c]))
    values = labelled.loc[labelled["_config"] == best, objective].to_numpy(dtype=float)
    mean, _, low, high = mean_interval(values)
    result = Answer(objective, direction, best, len(values), mean, (high - low) / 2, found)
    result.sentence = _sentence(result, params, len(means) - 1)
    return result


def _sentence(result: Answer, params: Sequence[str], n_others: int) -> str:
    def listed(configs: Sequence[str]) -> str:
        # A configuration of several parameters is a list itself: set each apart. A bare value
        # ("undecided: 0") would read as a count, so one parameter's is named.
        return ", ".join(f"({c})" if len(params) > 1 else f"{params[0]} = {c}" for c in configs)

    numbers = f"{label(result.objective)} {result.mean:.4g}"
    if math.isnan(result.half_width):
        numbers += f" (n = {result.n}: no interval)"
    else:
        numbers += f" ± {result.half_width:.2g} (95% CI, n = {result.n})"
    where = f"{params[0]} = {result.best}" if len(params) == 1 else f"({result.best})"
    if not n_others:
        return f"only {where} was compared: {numbers}."
    found = result.comparison
    if found is None:
        return (
            f"best mean at {where}: {numbers}; some configurations have fewer than 2 "
            "replicates (or complete seed blocks), so no difference can be tested: run more trials."
        )
    if n_others == 1:
        every = f"the other, {listed([found.differences[0].config])},"
    else:
        every = (
            f"every other {params[0]} value" if len(params) == 1 else "every other configuration"
        )
    separated = [d for d in found.differences if d.separated]
    equivalent = [d for d in found.differences if d.equivalent]
    rest = found.undecided
    how = _method(found)
    if not separated and not equivalent:
        bound = max(d.bound for d in found.differences)
        return (
            f"no winner: {every} is within {bound:.2g} of the best, {where}: {numbers}; "
            f"this design detects differences of {found.detectable:.2g} or more with 80% "
            f"power{_more(found)} ({how})."
        )
    if len(equivalent) == n_others:
        # A difference can be real and still smaller than the margin: say both.
        smaller = listed([d.config for d in separated])
        real = f"; {smaller} differ from it, by less than the margin" if separated else ""
        return (
            f"equivalent: {every} is within ±{found.margin:.2g} of the best, {where}: "
            f"{numbers}{real} ({how})."
        )
    # "best" only for a configuration shown better than some other; else the best mean leads.
    parts = [
        f"best {where}: {numbers}" if separated else f"no winner: the best mean, {where}: {numbers}"
    ]
    if separated:
        gap = min(min(abs(d.low), abs(d.high)) for d in separated)
        which = (
            "every other"
            if len(separated) == n_others and n_others > 1
            else listed([d.config for d in separated])
        )
        parts.append(f"better than {which} (by at least {gap:.2g})")
    if equivalent:
        parts.append(
            f"equivalent within ±{found.margin:.2g}: {listed([d.config for d in equivalent])}"
        )
    if rest:
        bound = max(d.bound for d in rest)
        kind = "undecided" if found.margin is not None else "not distinguishable"
        each = "each " if len(rest) > 1 else ""
        names = listed([d.config for d in rest])
        parts.append(f"{kind}: {names}, {each}within {bound:.2g} of it{_more(found)}")
    return "; ".join(parts) + f" ({how})."


def _method(found: Comparison) -> str:
    if found.blocked:
        intervals = f"Tukey 95% simultaneous intervals, paired within {found.blocks} seed blocks"
    else:
        intervals = "Tukey-Kramer 95% simultaneous intervals"
    return f"{intervals}; {found.test}, p = {found.p:.2g}"


def _more(found: Comparison) -> str:
    if found.more_replicates is None:
        return ""
    if found.more_replicates > MAX_REPLICATES:
        return f"; more than {MAX_REPLICATES} more replicates would be needed to decide"
    n, trials = found.more_replicates, found.more_replicates * (len(found.differences) + 1)
    replicates = "replicate" if n == 1 else "replicates"
    return f": run about {n} more {replicates} of each ({trials} more trials) to decide"
