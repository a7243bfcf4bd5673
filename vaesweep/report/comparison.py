"""Each configuration against the best: simultaneous 95% intervals of the differences, an omnibus
test, and what the design could detect.

Blocked designs (replicate r of every configuration trains with seed r) are randomized complete
block designs, analysed with the additive model (configuration + block). The omnibus test is its
F test, the repeated-measures ANOVA (the same F and p as statsmodels' `AnovaRM`, which a test
checks; computed here from the residual the intervals need, without its 12 ms a call). The
intervals of all pairwise differences are Tukey's HSD on that residual: mean difference
± q(0.95; k, (k-1)(b-1)) · sqrt(MSE / b), q from scipy's studentized range. Unblocked designs
use the one-way ANOVA and Tukey-Kramer intervals (the values of scipy's `f_oneway` and
`tukey_hsd`, which a test checks, with the critical value computed once per shape, not per call).

Intervals that hold for every pair at once hold for the pairs with the best too, although the
best is picked from the data; so a claim that the best is better than another (the omnibus test
rejects, and the interval excludes 0) is made in at most 5% of studies whose configurations are
all equal (tests/test_comparison.py simulates it).

With an equivalence margin d, a configuration is equivalent to the best when its whole interval
lies within ±d: the two one-sided tests (TOST) read off simultaneous intervals, so it holds for
every configuration at once.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy import optimize, stats

if TYPE_CHECKING:
    from vaesweep.spec.studies import StudySpec

ALPHA = 0.05
POWER = 0.80
MAX_REPLICATES = 1000  # "run about N more replicates" says "more than" past this


@dataclass
class Difference:
    """One configuration minus the best, on the objective's own scale."""

    config: str
    diff: float
    low: float  # simultaneous 95% interval
    high: float
    per_block: dict[int, float] = field(default_factory=dict)  # blocked: config - best per block
    separated: bool = False  # the omnibus test rejects and the interval excludes 0
    equivalent: bool | None = None  # within ±margin (None: no margin)

    @property
    def bound(self) -> float:
        """How far from the best this configuration can be, at 95% simultaneous confidence."""
        return max(abs(self.low), abs(self.high))


@dataclass
class Comparison:
    best: str
    blocked: bool  # analysed within blocks
    blocks: int  # complete blocks analysed (blocked), 0 otherwise
    test: str  # the omnibus test, e.g. "repeated-measures ANOVA F(4, 20) = 3.1"
    p: float  # its p-value
    differences: list[Difference]
    residual_sd: float  # sqrt(MSE): of the additive model (blocked) or pooled within (unblocked)
    df: int
    k: int  # configurations compared
    replicates: float  # per configuration (blocks; unblocked: the harmonic mean of the counts)
    variance_ratio: float | None = None  # blocked: unpaired / paired variance of a difference
    margin: float | None = None
    more_replicates: int | None = None  # with a margin: about how many more decide every one

    def at(self, replicates: float) -> tuple[int, float]:
        """(residual df, standard error of a difference) of this design with `replicates`."""
        return _design(self.k, replicates, self.blocked, self.residual_sd)

    @functools.cached_property
    def detectable(self) -> float:
        """The difference between two configurations found with 80% power (computed when read:
        the effects table compares every metric, the sentence reads it for the objective)."""
        return detectable_difference(self.at(self.replicates)[1], self.k, self.df)

    @property
    def winner(self) -> bool:
        return bool(self.differences) and all(d.separated for d in self.differences)

    @property
    def undecided(self) -> list[Difference]:
        return [d for d in self.differences if not d.separated and not d.equivalent]


def _design(k: int, replicates: float, blocked: bool, sd: float) -> tuple[int, float]:
    """(residual df, standard error of a difference) of k configurations x `replicates`."""
    df = (k - 1) * (replicates - 1) if blocked else k * (replicates - 1)
    return round(df), sd * math.sqrt(2 / replicates)


@functools.cache  # scipy's studentized range takes about 70 ms a quantile
def critical_value(k: int, df: int) -> float:
    """Tukey's simultaneous two-sided 95% multiplier for one difference, in standard errors."""
    if k == 2:
        return float(stats.t.ppf(1 - ALPHA / 2, df))
    return float(stats.studentized_range.ppf(1 - ALPHA, k, df)) / math.sqrt(2)


def detectable_difference(se: float, k: int, df: int) -> float:
    """The true difference between two configurations that the procedure's interval separates
    from 0 with 80% power (noncentral t)."""
    if se == 0 or df < 1:
        return 0.0 if se == 0 else math.nan
    c = critical_value(k, df)

    def power(shift: float) -> float:  # the true difference in standard errors
        wrong_side = np.nan_to_num(stats.nct.cdf(-c, df, shift))  # scipy: NaN when ~0
        return float(stats.nct.sf(c, df, shift) + wrong_side) - POWER

    return se * float(optimize.brentq(power, 0.0, c + 5))


def study_detects(spec: StudySpec) -> dict[str, float]:
    """Per objective with a measured noise (the study file's `noise`): the difference its design
    finds with 80% power; empty where it compares fewer than 2 configurations or replicates."""
    k, r = spec.compared, spec.design.replicates
    if k < 2 or r < 2:
        return {}
    return {
        name: design_detectable(sd, k, r, spec.design.shares_seeds)
        for name, sd in spec.noise.items()
    }


def design_detectable(sd: float, k: int, replicates: int, blocked: bool) -> float:
    """What a balanced design of k configurations and `replicates` replicates can detect at
    residual SD `sd`: for planning, before any trial runs."""
    df, se = _design(k, replicates, blocked, sd)
    return detectable_difference(se, k, df)


def compare(
    samples: Mapping[str, Mapping[int, float]],
    order: Sequence[str],
    direction: str,
    blocked: bool,
    margin: float | None = None,
) -> Comparison | None:
    """`samples[config][block]` is one trial's value. None with one configuration, or too few
    replicates to estimate the noise, or no noise at all (every residual 0: a test would claim
    certainty from a rounding coincidence)."""
    sign = -1.0 if direction == "maximize" else 1.0
    configs = [c for c in order if samples.get(c)]
    if len(configs) < 2:
        return None
    complete = sorted(set.intersection(*(set(samples[c]) for c in configs)))
    if blocked and len(complete) >= 2:
        frame = pd.DataFrame({c: [samples[c][b] for b in complete] for c in configs})
        found = _blocked(frame, complete, sign, margin)
    else:
        groups = {c: np.asarray(list(samples[c].values()), dtype=float) for c in configs}
        if any(len(g) < 2 for g in groups.values()):
            return None
        found = _unblocked(groups, sign, margin)
    return found if found.residual_sd > 0 else None


def _best(means: pd.Series, sign: float) -> str:
    return min(means.index, key=lambda c: (sign * means[c], list(means.index).index(c)))


def _blocked(
    frame: pd.DataFrame, blocks: list[int], sign: float, margin: float | None
) -> Comparison:
    """`frame`: one column per configuration, one row per complete block."""
    b, k = frame.shape
    means = frame.mean()
    best = _best(means, sign)
    residual = frame.sub(means, axis=1).sub(frame.mean(axis=1), axis=0) + frame.to_numpy().mean()
    df = (k - 1) * (b - 1)
    mse = float((residual.to_numpy() ** 2).sum()) / df
    within = float(frame.var(ddof=1).mean())  # the variance an unpaired design would see
    ms_config = b * float(((means - means.mean()) ** 2).sum()) / (k - 1)
    test, p = _f_test("repeated-measures ANOVA", ms_config, mse, k - 1, df)
    half = critical_value(k, df) * math.sqrt(2 * mse / b)
    differences = [
        Difference(
            c,
            float(means[c] - means[best]),
            float(means[c] - means[best] - half),
            float(means[c] - means[best] + half),
            per_block={
                blk: float(frame.at[i, c] - frame.at[i, best]) for i, blk in enumerate(blocks)
            },
        )
        for c in frame.columns
        if c != best
    ]
    ratio = within / mse if mse > 0 else math.nan
    found = Comparison(best, True, b, test, p, differences, math.sqrt(mse), df, k, b, ratio, margin)
    return _decide(found)


def _f_test(name: str, ms_effect: float, mse: float, df1: int, df2: int) -> tuple[str, float]:
    f = ms_effect / mse if mse > 0 else math.nan  # no residual: `compare` gives no comparison
    p = float(stats.f.sf(f, df1, df2)) if mse > 0 else math.nan
    return f"{name} F({df1}, {df2}) = {f:.3g}", p


def _unblocked(groups: dict[str, np.ndarray], sign: float, margin: float | None) -> Comparison:
    configs = list(groups)
    k = len(configs)
    means = pd.Series({c: float(g.mean()) for c, g in groups.items()})
    best = _best(means, sign)
    n = np.array([len(g) for g in groups.values()])
    df = int(n.sum()) - k
    mse = float(sum(((g - g.mean()) ** 2).sum() for g in groups.values())) / df
    grand = float(np.concatenate(list(groups.values())).mean())
    ms_config = float(sum(len(g) * (g.mean() - grand) ** 2 for g in groups.values())) / (k - 1)
    test, p = _f_test("one-way ANOVA", ms_config, mse, k - 1, df)
    c = critical_value(k, df)
    size = dict(zip(configs, n, strict=True))
    differences = []
    for config in configs:
        if config == best:
            continue
        diff = float(means[config] - means[best])
        half = c * math.sqrt(mse * (1 / size[config] + 1 / size[best]))
        differences.append(Difference(config, diff, diff - half, diff + half))
    typical = float(stats.hmean(n))
    found = Comparison(
        best, False, 0, test, p, differences, math.sqrt(mse), df, k, typical, margin=margin
    )
    return _decide(found)


def _decide(result: Comparison) -> Comparison:
    """Verdicts, and with a margin, about how many more replicates would decide the undecided."""
    for d in result.differences:
        d.separated = result.p < ALPHA and (d.low > 0 or d.high < 0)
        if result.margin is not None:
            d.equivalent = -result.margin < d.low and d.high < result.margin
    if result.margin is None or not result.undecided:
        return result

    def half_width(r: int) -> float:
        df, se = result.at(r)
        return critical_value(result.k, df) * se

    # Either verdict will do: separated (the half-width below the distance from 0) or
    # equivalent (below the distance to the margin); the half-width falls as r grows, so the
    # replicates needed are found by bisection (each new df costs one quantile).
    targets = []
    for d in result.undecided:
        distance = abs(d.diff)
        margin_room = result.margin - distance if distance < result.margin else 0.0
        targets.append(max(distance, margin_room))
    target = min(targets)  # the hardest of the undecided
    replicates = round(result.replicates)
    low, high = replicates, replicates + MAX_REPLICATES + 1
    if target <= 0 or half_width(high) >= target:
        result.more_replicates = MAX_REPLICATES + 1
        return result
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if half_width(middle) < target else (middle, high)
    result.more_replicates = high - replicates
    return result
