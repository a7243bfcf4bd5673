"""Each objective's answer: per-configuration means with 95% intervals, each configuration's
difference from the best of the others with MCB's simultaneous 95% interval, the closed test's
"worse" and "best" and the confidence set for the best (`vaesweep.stats`), and the sentence.

Only trials trained under the study's protocol enter: completed (full budget, early stopping
being part of the protocol) or failed by divergence (a failure is data: ranked last),
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
from vaesweep.stats import Comparison, Looks, close, compare_samples
from vaesweep.stats.pairwise import one_sided_critical
from vaesweep.stats.power import conservative_sd, detectable
from vaesweep.stats.verdicts import ONE_LOOK, VERDICT_COLUMNS

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
    compared: Mapping[str, Comparison | None] | None = None,
) -> pd.DataFrame:
    """One row per (configuration, metric) of comparable trials, in the order of `metrics` (the
    objectives first): its mean with its own 95% interval, its difference from the best mean of
    the other configurations with MCB's simultaneous interval (paired within blocks where
    `blocked`), the closed test's adjusted p-value and verdict, and whether it may be the best.
    The objectives' comparisons are the answer's (`compared`, from `objective_comparisons`); every
    other metric is compared alone, at one look."""
    columns = [
        "param",
        "value",
        "metric",
        "n",
        "mean",
        "sd",
        "ci_low",
        "ci_high",
        *VERDICT_COLUMNS,
        "paired",
        "failed",  # failed trials among n, each ranked below its block's completed ones
    ]
    if trials.empty:
        return pd.DataFrame(columns=columns)
    labelled = trials.assign(_config=configuration(trials, params))
    order = _value_order(trials, params)
    rows = []
    for metric in metrics:
        direction = (directions or {}).get(metric) or better(metric)
        found = (
            compared[metric]
            if compared is not None and metric in compared
            else metric_comparison(labelled, order, metric, direction, blocked)
        )
        entries = {d.config: d for d in found.entries} if found else {}
        for config, group in labelled.groupby("_config", sort=False):
            values = _scores(group, metric, found, config)
            mean, sd, low, high = mean_interval(values)
            row = {"param": ", ".join(params), "value": config, "metric": metric}
            row |= {"n": len(values), "failed": found.failures[config] if found else 0}
            row |= {"mean": mean, "sd": sd, "ci_low": low, "ci_high": high}
            if found:
                row |= entries[config].columns() | {"paired": found.blocked}
            rows.append(row)
    frame = pd.DataFrame(rows, columns=columns)
    # The metrics in the order given (the objectives first), each configuration in value order.
    rank = {"metric": {m: i for i, m in enumerate(metrics)}, "value": order}
    return frame.sort_values(
        ["metric", "value"], key=lambda s: s.map(rank[s.name]), kind="stable"
    ).reset_index(drop=True)


def objective_comparisons(
    trials: pd.DataFrame,
    params: Sequence[str],
    objectives: Sequence[str],
    directions: Mapping[str, str],
    blocked: bool,
    margins: Mapping[str, float | None],
    looks: Looks = ONE_LOOK,
) -> dict[str, Comparison | None]:
    """The answer's comparisons, one per objective, closed as one family at this look."""
    if trials.empty or not objectives:
        return {}
    labelled = trials.assign(_config=configuration(trials, params))
    order = _value_order(trials, params)
    compared = {
        objective: metric_comparison(
            labelled,
            order,
            objective,
            directions[objective],
            blocked,
            margins.get(objective),
            len(objectives),
            looks,
        )
        for objective in objectives
    }
    close(list(compared.values()))
    return compared


def _scores(group: pd.DataFrame, metric: str, found: Comparison | None, config: str) -> np.ndarray:
    """A configuration's values as the comparison scored them (a failure ranked below its
    block's completed values), or, without a comparison, its completed values."""
    if found is not None and config in found.scores:
        return found.scores[config]
    return group.loc[~_failed(group), metric].dropna().to_numpy(dtype=float)


def _failed(rows: pd.DataFrame) -> pd.Series:
    """Failed trials (diverged: their seeds would fail again), which count as data."""
    if "state" not in rows:
        return pd.Series(False, index=rows.index)
    return rows["state"] == "FAIL"


def metric_comparison(
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
    best: str  # the configuration with the best mean (the best only if `shown_best`)
    n: int
    mean: float
    # Of the best mean's interval: simultaneous over the k configurations' means (and the
    # looks), so it holds for the one the data chose. NaN with one replicate.
    half_width: float
    comparison: Comparison | None = None  # None: one configuration, or too few replicates
    sentence: str = ""
    headline: str = ""  # the sentence's verdict alone: "best warmup_epochs = 0", "no winner: ..."

    def __repr__(self) -> str:
        head = self.sentence if len(self.sentence) <= 100 else self.sentence[:99] + "…"
        return f"<Answer {self.objective}: {head}>"

    @property
    def shown_best(self) -> bool:
        """Whether the answer shows `best` better than every other configuration (the closed
        test): the one case in which vaesweep calls a configuration the best (★)."""
        return self.comparison is not None and self.comparison.winner == self.best


def objective_answer(
    trials: pd.DataFrame,
    params: Sequence[str],
    objective: str,
    direction: str,
    blocked: bool = False,
    margin: float | None = None,
    family: int = 1,
    looks: Looks = ONE_LOOK,
    compared: Mapping[str, Comparison | None] | None = None,
    tuned: Sequence[str] = (),
) -> Answer | None:
    """Which configuration has the best mean objective, which are worse, which may be the best,
    and what the design could have seen. `family`: the study's objectives, which share the
    error rate; `compared`: their comparisons, closed together (`objective_comparisons`), else this
    objective is compared on its own share; `tuned`: the params a tuned study chose for each
    configuration. None without comparable trials."""
    trials = trials[_failed(trials) | trials[objective].notna()]
    if trials[objective].notna().sum() == 0:
        return None
    labelled = trials.assign(_config=configuration(trials, params))
    order = _value_order(trials, params)
    found = (
        compared[objective]
        if compared is not None and objective in compared
        else metric_comparison(
            labelled, order, objective, direction, blocked, margin, family, looks
        )
    )
    if found is not None:
        best, values = found.highest, found.scores[found.highest]
    else:
        completed = labelled[~_failed(labelled)]
        means = completed.groupby("_config", sort=False)[objective].mean()
        sign = -1.0 if direction == "maximize" else 1.0
        best = min(means.index, key=lambda c: (sign * means[c], order[c]))
        values = completed.loc[completed["_config"] == best, objective].to_numpy(dtype=float)
    k = labelled["_config"].nunique()
    half = _best_half_width(values, looks.level(len(values)) / k)
    result = Answer(objective, direction, best, len(values), float(np.mean(values)), half, found)
    result.headline, result.sentence = _sentence(
        result, params, _names(labelled, params, tuned), k - 1
    )
    return result


def _best_half_width(values: np.ndarray, level: float) -> float:
    """Half the best mean's interval: Bonferroni over the configurations' means, so it holds
    for whichever the data chose (the winner's curse), at this look's share of the error rate."""
    if len(values) < 2:
        return math.nan
    sd = float(np.std(values, ddof=1))
    if not sd:
        return 0.0
    return one_sided_critical(level / 2, len(values) - 1) * sd / math.sqrt(len(values))


def _names(labelled: pd.DataFrame, params: Sequence[str], tuned: Sequence[str]) -> dict[str, str]:
    """How each configuration is named in a sentence. A bare value ("undecided: 0") would read
    as a count, so one setting's is named ("warmup_epochs = 0"); several are set apart in
    parentheses; the values a tuned study confirmed it at follow as what they are
    ("warmup_epochs = 0 (tuned lr = 0.002)")."""
    rows = labelled.drop_duplicates("_config")
    compared = [p for p in params if p not in tuned] or list(params)
    core = configuration(rows, compared)
    named = core.map(f"{compared[0]} = {{}}".format if len(compared) == 1 else "({})".format)
    extra = [p for p in params if p not in compared]
    if extra:
        at = rows[extra].apply(
            lambda row: ", ".join(f"{p} = {_format_value(row[p])}" for p in extra), axis=1
        )
        named = named + " (tuned " + at + ")"
    return dict(zip(rows["_config"], named, strict=True))


def _numbers(result: Answer, n_others: int) -> str:
    """The best mean with its interval: "val 5-NN accuracy 0.6856 ± 0.0046 (95% CI, ...)". An
    interval wider than the metric's whole range is said to be so before its number is shown."""
    numbers = f"{label(result.objective)} {result.mean:.4g}"
    if math.isnan(result.half_width):
        return f"{numbers} (n = {result.n}: no interval)"
    chosen = f", adjusted for choosing the best mean of {n_others + 1}" if n_others else ""
    whole = span(result.objective)
    if whole is not None and 2 * result.half_width >= whole:
        chosen = f"{chosen}," if chosen else ""
        return (
            f"{numbers} (n = {result.n} is too few: its 95% CI{chosen} is wider than the "
            f"metric's whole range, {whole:g}: ± {result.half_width:.2g})"
        )
    return f"{numbers} ± {result.half_width:.2g} (95% CI, n = {result.n}{chosen})"


def _sentence(
    result: Answer, params: Sequence[str], names: Mapping[str, str], n_others: int
) -> tuple[str, str]:
    """(headline, sentence): the verdict alone ("best warmup_epochs = 0"), and the whole answer,
    which begins with it."""
    numbers = _numbers(result, n_others)

    def listed(configs: Sequence[str]) -> str:
        return ", ".join(names[c] for c in configs)

    where = listed([result.best])
    if not n_others:
        head = f"only {where} was compared"
        return head, f"{head}: {numbers}."
    found = result.comparison
    if found is None:
        head = f"best mean at {where}"
        return head, (
            f"{head}: {numbers}; some configurations have fewer than 2 replicates (or complete "
            "seed blocks), so no difference can be tested: run more trials."
        )
    every = (
        listed([found.differences[0].config])
        if n_others == 1
        else f"every other {params[0]} value"
        if len(params) == 1
        else "every other configuration"
    )
    tail = f"{_failures(found, listed)} ({_method(found)})."
    if found.winner is not None:
        lead = abs(next(d.diff for d in found.entries if d.best))
        head = f"best {where}"
        parts = [f"{head}: {numbers}", f"better than {every} (its mean leads by {lead:.2g})"]
        return head, "; ".join(parts + _equivalents(found, listed)) + tail
    if found.margin is not None and all(d.equivalent for d in found.entries):
        head = f"equivalent: every configuration is within {found.margin:.2g} of the best"
        return head, f"{head}, whichever it is; best mean at {where}: {numbers}{tail}"
    head = f"no winner: the best is {_best_set(found, listed)}"
    parts = [head, f"best mean at {where}: {numbers}", *_verdicts(result, found, listed)]
    return head, "; ".join(parts) + tail


def _best_set(found: Comparison, listed) -> str:
    """The confidence set for the best, worded as what it claims."""
    members = found.may_be_best
    if len(members) == 1:
        return f"{listed(members)} (95% confidence set: every other has one at least as good)"
    return f"one of {listed(members)} (95% confidence set)"


def _equivalents(found: Comparison, listed) -> list[str]:
    inside = [d.config for d in found.entries if d.equivalent and not d.best]
    if not inside:
        return []
    return [f"within {found.margin:.2g} of it: {listed(inside)}"]


def _verdicts(result: Answer, found: Comparison, listed) -> list[str]:
    """What a no-winner answer says of each configuration: worse, equivalent, undecided."""
    worse = [d for d in found.entries if d.worse]
    parts = []
    if worse:
        worse_ones = listed([d.config for d in worse])
        parts.append(f"worse (another configuration is better): {worse_ones}")
    if equivalent := [d for d in found.entries if d.equivalent and not d.worse]:
        within = f"within {found.margin:.2g} of the best"
        parts.append(f"{within}: {listed([d.config for d in equivalent])}")
    rest = [d for d in found.entries if not d.worse and not d.equivalent]
    if rest:
        bound = max(d.behind for d in rest)
        kind = "undecided" if found.margin is not None else "not shown worse"
        each = "each " if len(rest) > 1 else ""
        within = _within(bound, result.objective, each)
        parts.append(f"{kind}: {listed([d.config for d in rest])}, {within}{_more(found)}")
    parts.append(_detects(found, result.objective))
    return parts


def _within(bound: float, objective: str, each: str) -> str:
    """How far behind the best the undecided may be: "each within 0.012 of the best". Where
    that bound is at least every value the metric can take (an accuracy "within 4.1" at n = 2),
    it rules nothing out, and says so first."""
    whole = span(objective)
    if whole is None or not bound >= whole:
        return f"{each}within {bound:.2g} of the best"
    return (
        f"no difference is ruled out ({each}within a bound wider than the metric's whole range, "
        f"{whole:g}: {bound:.2g})"
    )


def _detects(found: Comparison, objective: str) -> str:
    """What a "no winner" could have seen: a winner, and a worse one (stats.power)."""
    winner, worse = detectable_differences(found)
    whole = span(objective)
    if math.isinf(winner):
        return "this look could not have named a winner of any size"
    if whole is not None and winner >= whole:
        return (
            f"a winner would need to lead by {winner:.2g}, more than the metric's whole range "
            f"({whole:g}), to be named with 80% power"
        )
    if found.k == 2:
        return f"a true difference of {winner:.2g} would be found with 80% power"
    return (
        f"a configuration {winner:.2g} better than every other would be named the best, and one "
        f"{worse:.2g} worse than the rest called worse, each with 80% power"
    )


def detectable_differences(found: Comparison) -> tuple[float, float]:
    """(winner, worse): the true differences the shipped procedure finds with 80% power at
    this look, at the upper 90% confidence bound of the noisiest difference's SD."""
    noisiest = max(found.entries, key=lambda d: conservative_sd(d.sd, d.df))
    noise = conservative_sd(noisiest.sd, noisiest.df) / math.sqrt(2)  # a difference: sqrt 2
    found_at = detectable(noise, found.k, found.replicates, found.blocked, found.level)
    return found_at["winner"], found_at["worse"]


def _failures(found: Comparison, listed) -> str:
    failed = {c: n for c, n in found.failures.items() if n}
    if not failed:
        return ""
    each = ", ".join(f"{listed([c])}: {n}" for c, n in failed.items())
    return f"; failed trials, each ranked below its block's completed ones: {each}"


def _method(found: Comparison) -> str:
    """How the claims were made: e.g. "paired t tests within 10 seed blocks: a closed test at
    4.1% and MCB intervals (each of 2 comparisons at 2.0%), over looks up to 20 replicates"."""
    how = f"paired t tests within {found.blocks} seed blocks" if found.blocked else "Welch t tests"
    objectives = f" (this objective's share of {found.objectives})" if found.objectives > 1 else ""
    looks = ""
    if found.max_blocks is not None:
        looks = f", this look's share over looks up to {found.max_blocks} replicates"
    each = f"each of {found.k - 1} comparisons" if found.k > 2 else "1 comparison"
    return (
        f"{how}: a closed test at {found.level:.2%}{objectives}{looks}; MCB intervals, {each} "
        f"at {found.mcb_level:.2%}"
    )


def _more(found: Comparison) -> str:
    if found.more_replicates is None or found.max_blocks is None:
        return ""
    if found.replicates + found.more_replicates > found.max_blocks:
        return f"; not decidable within max_blocks = {found.max_blocks} at the noise seen"
    n, trials = found.more_replicates, found.more_replicates * found.k
    replicates = "replicate" if n == 1 else "replicates"
    return f": run about {n} more {replicates} of each ({trials} more trials) to decide"
