"""The study's answer: per-configuration means with 95% intervals, each configuration's
difference from the best with a simultaneous 95% interval (`vaesweep.stats`), and the sentence.

Only trials trained under the study's protocol enter: completed (full budget, early stopping
being part of the protocol) or failed by divergence (a failure is data: its block's worst),
placed by the design in its answer phase (the grid, or the confirmation re-runs) and, in a
blocked design, in a complete block. A configuration's own interval is Student-t over its
replicates; the best's, in the answer, is adjusted for having been chosen.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from vaesweep.spec.metric_names import better, label, span
from vaesweep.stats import Comparison, Difference, Looks, compare_samples
from vaesweep.stats.pairwise import ONE_LOOK, critical
from vaesweep.stats.power import conservative_sd, detectable, winner_power

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
    objectives: Sequence[str] = (),
    looks: Looks = ONE_LOOK,
) -> pd.DataFrame:
    """One row per (configuration, metric) of comparable trials, in the order of `metrics` (the
    objectives first): its mean with its own 95% interval, and its difference from the metric's
    best configuration with a simultaneous interval (paired within blocks where `blocked`). The
    `objectives` are the answer's family at its look; every other metric is compared alone, at
    one look."""
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
        "failed",  # failed trials among n, each scored as its block's worst (added last)
    ]
    if trials.empty:
        return pd.DataFrame(columns=columns)
    labelled = trials.assign(_config=configuration(trials, params))
    order = _value_order(trials, params)
    rows = []
    for metric in metrics:
        direction = (directions or {}).get(metric) or better(metric)
        answered = metric in objectives
        found = compare_metric(
            labelled,
            order,
            metric,
            direction,
            blocked,
            family=len(objectives) if answered else 1,
            looks=looks if answered else ONE_LOOK,
        )
        differences = {d.config: d for d in found.differences} if found else {}
        for config, group in labelled.groupby("_config", sort=False):
            values = _scores(group, metric, found, config)
            mean, sd, low, high = mean_interval(values)
            row = {"param": ", ".join(params), "value": config, "metric": metric}
            row |= {"n": len(values), "failed": found.failures[config] if found else 0}
            row |= {"mean": mean, "sd": sd, "ci_low": low, "ci_high": high}
            if found:
                d = differences.get(config, Difference(config, 0.0, 0.0, 0.0))  # the best: 0
                row |= {"best": found.best, "diff": d.diff, "diff_low": d.low}
                row |= {"diff_high": d.high, "paired": found.blocked}
            rows.append(row)
    frame = pd.DataFrame(rows, columns=columns)
    # The metrics in the order given (the objectives first), each configuration in value order.
    rank = {"metric": {m: i for i, m in enumerate(metrics)}, "value": order}
    return frame.sort_values(
        ["metric", "value"], key=lambda s: s.map(rank[s.name]), kind="stable"
    ).reset_index(drop=True)


def _scores(group: pd.DataFrame, metric: str, found: Comparison | None, config: str) -> np.ndarray:
    """A configuration's values as the comparison scored them (a failure as its block's
    worst), or, without a comparison, its completed values."""
    if found is not None and config in found.scores:
        return found.scores[config]
    return group.loc[~_failed(group), metric].dropna().to_numpy(dtype=float)


def _failed(rows: pd.DataFrame) -> pd.Series:
    """Failed trials (diverged: their seeds would fail again), which count as data."""
    if "state" not in rows:
        return pd.Series(False, index=rows.index)
    return rows["state"] == "FAIL"


def compare_metric(
    labelled: pd.DataFrame,
    order: Mapping[str, int],
    metric: str,
    direction: str,
    blocked: bool,
    margin: float | None = None,
    family: int = 1,
    looks: Looks = ONE_LOOK,
) -> Comparison | None:
    """The comparison of one metric over trials labelled with their `_config`: by block where
    `blocked`, else each trial on its own. A failed trial enters as NaN, a failure; a completed
    one without this metric (not computed) is left out."""
    failed = _failed(labelled)
    rows = labelled[failed | labelled[metric].notna()]
    values = rows[metric].astype(float).where(~failed[rows.index])
    key = BLOCK if blocked and BLOCK in rows else None
    samples = {
        config: {
            int(k): float(v)
            for k, v in zip(group[key] if key else group.index, values[group.index], strict=True)
        }
        for config, group in rows.groupby("_config", sort=False)
    }
    return compare_samples(
        samples,
        sorted(samples, key=order.__getitem__),
        direction,
        key is not None,
        margin,
        family,
        looks,
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
    # Of the best's interval: simultaneous over the k configurations' means (and the looks),
    # so it holds for the one the data chose. NaN with one replicate.
    half_width: float
    comparison: Comparison | None = None  # None: one configuration, or too few replicates
    sentence: str = ""

    @property
    def shown_best(self) -> bool:
        """Whether the answer shows `best` better than some other configuration: the one case in
        which vaesweep marks a configuration best (★, the table's `best` column)."""
        differences = self.comparison.differences if self.comparison else []
        return any(d.separated for d in differences)


def answer(
    trials: pd.DataFrame,
    params: Sequence[str],
    objective: str,
    direction: str,
    blocked: bool = False,
    margin: float | None = None,
    family: int = 1,
    looks: Looks = ONE_LOOK,
) -> Answer | None:
    """Which configuration has the best mean objective, how far each other one is from it, and
    what the design could have seen. `family`: the study's objectives, which share the error
    rate. None without comparable trials."""
    trials = trials[_failed(trials) | trials[objective].notna()]
    if trials[objective].notna().sum() == 0:
        return None
    labelled = trials.assign(_config=configuration(trials, params))
    order = _value_order(trials, params)
    found = compare_metric(labelled, order, objective, direction, blocked, margin, family, looks)
    if found is not None:
        best, values = found.best, found.scores[found.best]
    else:
        completed = labelled[~_failed(labelled)]
        means = completed.groupby("_config", sort=False)[objective].mean()
        sign = -1.0 if direction == "maximize" else 1.0
        best = min(means.index, key=lambda c: (sign * means[c], order[c]))
        values = completed.loc[completed["_config"] == best, objective].to_numpy(dtype=float)
    k = labelled["_config"].nunique()
    half = _best_half_width(values, looks.level(len(values)) / k)
    result = Answer(objective, direction, best, len(values), float(np.mean(values)), half, found)
    result.sentence = _sentence(result, params, k - 1)
    return result


def _best_half_width(values: np.ndarray, level: float) -> float:
    """Half the best's interval: Bonferroni over the configurations' means, so it holds for
    whichever the data chose (the winner's curse), at this look's share of the error rate."""
    if len(values) < 2:
        return math.nan
    sd = float(np.std(values, ddof=1))
    return critical(level, len(values) - 1) * sd / math.sqrt(len(values)) if sd else 0.0


def _lister(params: Sequence[str]):
    """How configurations are named in a sentence. A configuration of several parameters is a
    list itself: set each apart. A bare value ("undecided: 0") would read as a count, so one
    parameter's is named."""

    def listed(configs: Sequence[str]) -> str:
        return ", ".join(f"({c})" if len(params) > 1 else f"{params[0]} = {c}" for c in configs)

    return listed


def _numbers(result: Answer, n_others: int) -> str:
    """The best mean with its interval: "val 5-NN accuracy 0.6856 ± 0.0046 (95% CI, ...)"."""
    numbers = f"{label(result.objective)} {result.mean:.4g}"
    wide = _wider(2 * result.half_width, result.objective, "")
    if math.isnan(result.half_width):
        return f"{numbers} (n = {result.n}: no interval)"
    if n_others:
        chosen = f", adjusted for choosing the best of {n_others + 1}"
        return f"{numbers} ± {result.half_width:.2g} (95% CI, n = {result.n}{chosen}{wide})"
    return f"{numbers} ± {result.half_width:.2g} (95% CI, n = {result.n}{wide})"


def _sentence(result: Answer, params: Sequence[str], n_others: int) -> str:
    listed, numbers = _lister(params), _numbers(result, n_others)
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
        every = listed([found.differences[0].config])
    else:
        every = (
            f"every other {params[0]} value" if len(params) == 1 else "every other configuration"
        )
    separated = [d for d in found.differences if d.separated]
    equivalent = [d for d in found.differences if d.equivalent]
    tail = f"{_failures(found, listed)} ({_method(found)})."
    if not separated and not equivalent:
        bound = max(d.bound for d in found.differences)
        within = f"within {bound:.2g} of the best{_wider(bound, result.objective)}"
        return (
            f"no winner: {every} is {within}, {where}: {numbers}; "
            f"{_detects(found, result.objective)}{_more(found)}{tail}"
        )
    if len(equivalent) == n_others and not separated:
        within = f"within ±{found.margin:.2g} of the best"
        return f"equivalent: {every} is {within}, {where}: {numbers}{tail}"
    # "best" only for a configuration shown better than some other; else the best mean leads.
    head = f"best {where}" if separated else f"no winner: the best mean, {where}"
    head += f": {numbers}"
    return "; ".join([head, *_verdicts(result, found, listed, n_others)]) + tail


def _verdicts(result: Answer, found: Comparison, listed, n_others: int) -> list[str]:
    """What a mixed answer says of the others: better than, equivalent, undecided."""
    separated = [d for d in found.differences if d.separated]
    equivalent = [d for d in found.differences if d.equivalent]
    parts = []
    if separated:
        gap = min(min(abs(d.low), abs(d.high)) for d in separated)
        which = (
            "every other"
            if len(separated) == n_others and n_others > 1
            else listed([d.config for d in separated])
        )
        parts.append(f"better than {which} (by at least {gap:.2g})")
    inside = [d for d in equivalent if not d.separated]
    smaller = [d for d in equivalent if d.separated]
    if inside:
        parts.append(f"equivalent within ±{found.margin:.2g}: {listed([d.config for d in inside])}")
    if smaller:  # a real difference can be smaller than the margin: say both
        parts.append(f"{listed([d.config for d in smaller])} by less than the margin")
    if rest := found.undecided:
        bound = max(d.bound for d in rest)
        kind = "undecided" if found.margin is not None else "not distinguishable"
        each = "each " if len(rest) > 1 else ""
        within = f"within {bound:.2g} of it{_wider(bound, result.objective)}"
        parts.append(f"{kind}: {listed([d.config for d in rest])}, {each}{within}{_more(found)}")
    return parts


def _wider(width: float, objective: str, claim: str = ": no difference is ruled out") -> str:
    """Where an interval is at least as wide as every value the metric can take (an accuracy
    "within 4.1" at n = 2), says so: the number is true but tells nothing."""
    whole = span(objective)
    if whole is None or not width >= whole:
        return ""
    text = f"wider than the metric's whole range, {whole:g}{claim}"
    return f" ({text})" if claim else f"; {text}"


def _detects(found: Comparison, objective: str) -> str:
    """What a "no winner" could have seen: for a pair, and for a winner (stats.power)."""
    pair, winner = detectable_differences(found)
    whole = span(objective)
    if math.isinf(pair):
        return "this look could not have told any difference apart"
    if whole is not None and pair >= whole:
        return (
            f"a pair would need to be {pair:.2g} apart, more than the metric's whole range "
            f"({whole:g}), to be told apart with 80% power"
        )
    if found.k == 2:
        return f"a true difference of {pair:.2g} would be found with 80% power"
    return (
        f"a pair {pair:.2g} apart would be told apart, and a configuration {winner:.2g} "
        "better than every other would be named the winner, each with 80% power"
    )


def detectable_differences(found: Comparison) -> tuple[float, float]:
    """(pair, winner): the true differences this comparison finds with 80% power, at the upper
    90% confidence bound of the noisiest difference's SD."""
    noisiest = max(found.differences, key=lambda d: conservative_sd(d.sd, d.df))
    sd, df = conservative_sd(noisiest.sd, noisiest.df), noisiest.df
    se = sd / math.sqrt(found.replicates)
    return (
        detectable(se, df, found.level),
        detectable(se, df, found.level, winner_power(found.k)),
    )


def _failures(found: Comparison, listed) -> str:
    failed = {c: n for c, n in found.failures.items() if n}
    if not failed:
        return ""
    each = ", ".join(f"{listed([c])}: {n}" for c, n in failed.items())
    return f"; failed trials, each counted as its block's worst: {each}"


def _method(found: Comparison) -> str:
    """How the intervals were made: e.g. "paired t intervals within 10 seed blocks, each at
    1.0%: 95% simultaneous over 3 comparisons and over looks up to 20 replicates"."""
    how = (
        f"paired t intervals within {found.blocks} seed blocks"
        if found.blocked
        else "Welch t intervals"
    )
    over = f"{found.family} comparisons" if found.family > 1 else "1 comparison"
    if found.max_replicates is not None:
        over += f" and over looks up to {found.max_replicates} replicates"
    return f"{how}, each at {found.level:.2%}: 95% simultaneous over {over}"


def _more(found: Comparison) -> str:
    if found.more_replicates is None or found.max_replicates is None:
        return ""
    if found.replicates + found.more_replicates > found.max_replicates:
        return f"; not decidable within max_replicates = {found.max_replicates} at the noise seen"
    n, trials = found.more_replicates, found.more_replicates * (len(found.differences) + 1)
    replicates = "replicate" if n == 1 else "replicates"
    return f": run about {n} more {replicates} of each ({trials} more trials) to decide"
