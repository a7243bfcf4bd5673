"""Each configuration against the best, without assuming equal variances or correlations.

Every pair of configurations gets an interval from its own differences: paired t over the seed
blocks both trained in (blocked designs), Welch's t otherwise. The intervals are simultaneous by
Bonferroni over the family: every pair of configurations of every objective of the study, since
the best is picked from the data and any pair could have been the one compared. Each look at a
growing study tests at its share of the error rate (`sequential`). A pair's paired t needs only
its differences to be normal and independent across blocks: one configuration noisier than the
others, or configurations correlated unequally, change only that pair's interval (the additive
model's pooled residual, and so Tukey's HSD, assume sphericity and claim falsely when it fails).

A failed trial (a diverged one: its seed would diverge again) is data, not a gap: it counts as
its block's worst outcome (unblocked: the worst of the objective), so a configuration whose bad
seeds fail is never favoured by dropping them. A block every configuration failed is dropped.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from vaesweep.stats.sequential import look_level

ALPHA = 0.05


@dataclass
class Difference:
    """One configuration minus the best, on the objective's own scale."""

    config: str
    diff: float
    low: float  # simultaneous interval (the family's and the looks' share of ALPHA)
    high: float
    sd: float = math.nan  # of its paired differences (blocked), else the pair's Welch SD
    df: float = math.nan
    per_block: dict[int, float] = field(default_factory=dict)  # blocked: config - best per block
    equivalent: bool | None = None  # within ±margin (None: no margin)

    @property
    def separated(self) -> bool:
        """The interval excludes 0: the configuration differs from the best (is worse)."""
        return self.low > 0 or self.high < 0

    @property
    def bound(self) -> float:
        """How far from the best this configuration can be, at the simultaneous confidence."""
        return max(abs(self.low), abs(self.high))

    @property
    def verdict(self) -> str:
        if self.separated:
            return "worse"
        if self.equivalent is None:
            return "no difference"
        return "equivalent" if self.equivalent else "undecided"


@dataclass
class Comparison:
    best: str
    blocked: bool  # analysed within blocks
    replicates: int  # blocks analysed (blocked); the fewest replicates of a configuration (not)
    differences: list[Difference]
    scores: dict[str, np.ndarray]  # per configuration, a failure as its block's worst
    failures: dict[str, int]  # failed trials per configuration among them
    level: float  # two-sided level of each interval (ALPHA shared by the family and the looks)
    family: int  # comparisons sharing ALPHA: pairs of configurations x objectives
    k: int  # configurations compared
    margin: float | None = None
    more_replicates: int | None = None  # with a margin: about how many more decide every one
    max_replicates: int | None = None

    @property
    def means(self) -> dict[str, float]:
        return {c: float(v.mean()) for c, v in self.scores.items()}

    @property
    def counts(self) -> dict[str, int]:
        return {c: len(v) for c, v in self.scores.items()}

    @property
    def variance_ratio(self) -> float | None:
        """Blocked: how much pairing cut the variance of a difference, unpaired over paired,
        averaged over the differences with the best (None unblocked)."""
        if not self.blocked:
            return None
        best = self.scores[self.best].var(ddof=1)
        unpaired = np.mean([self.scores[d.config].var(ddof=1) + best for d in self.differences])
        paired = np.mean([d.sd**2 for d in self.differences])
        return float(unpaired / paired) if paired > 0 else math.nan

    @property
    def blocks(self) -> int:
        return self.replicates if self.blocked else 0

    @property
    def winner(self) -> bool:
        return bool(self.differences) and all(d.separated for d in self.differences)

    @property
    def undecided(self) -> list[Difference]:
        return [d for d in self.differences if not d.separated and not d.equivalent]


@dataclass(frozen=True)
class Looks:
    """Where this look stands among a study's looks: the earlier looks' block counts, and the
    most blocks the study may grow to (None: a single, fixed-size analysis)."""

    earlier: tuple[int, ...] = ()
    max_replicates: int | None = None

    def level(self, blocks: int, alpha: float = ALPHA) -> float:
        return look_level(blocks, self.earlier, self.max_replicates, alpha)


ONE_LOOK = Looks()  # a fixed-size analysis: the whole error rate at this look


def pairs(k: int) -> int:
    return k * (k - 1) // 2


def compare(
    samples: Mapping[str, Mapping[int, float]],
    order: Sequence[str],
    direction: str,
    blocked: bool,
    margin: float | None = None,
    objectives: int = 1,
    looks: Looks = ONE_LOOK,
) -> Comparison | None:
    """`samples[config][block]` is one trial's value, NaN for a failed trial. None with one
    configuration, or fewer than 2 usable blocks (or replicates of some configuration)."""
    sign = -1.0 if direction == "maximize" else 1.0
    configs = [c for c in order if samples.get(c)]
    if len(configs) < 2:
        return None
    values = (_blocked_values if blocked else _unblocked_values)(samples, configs, sign)
    if values is None:
        return None
    groups, blocks = values
    means = {c: float(np.mean(groups[c][0])) for c in configs}
    best = min(configs, key=lambda c: (sign * means[c], configs.index(c)))
    n = min(len(groups[c][0]) for c in configs)
    family = objectives * pairs(len(configs))
    level = looks.level(n) / family
    differences = [_difference(c, best, groups, blocks, level) for c in configs if c != best]
    found = Comparison(
        best,
        blocked,
        n,
        differences,
        {c: groups[c][0] for c in configs},
        {c: int(groups[c][1]) for c in configs},
        level,
        family,
        len(configs),
        margin,
        max_replicates=looks.max_replicates,
    )
    for d in differences:
        if margin is not None:
            d.equivalent = -margin < d.low and d.high < margin
    found.more_replicates = _more_replicates(found, looks)
    return found


Groups = dict[str, tuple[np.ndarray, int]]  # config -> (values, failures among them)
Found = tuple[Groups, list[int] | None]  # and the blocks (None: unblocked)


def _blocked_values(
    samples: Mapping[str, Mapping[int, float]], configs: list[str], sign: float
) -> Found | None:
    """Each configuration's values over the blocks every configuration trained in, a failure
    replaced by its block's worst completed value; None with fewer than 2 such blocks."""
    shared = sorted(set.intersection(*(set(samples[c]) for c in configs)))
    if len(shared) < 2:
        return None
    table = np.array([[samples[c][b] for c in configs] for b in shared], dtype=float)
    failed = np.isnan(table)
    usable = ~failed.all(axis=1)
    table, failed = table[usable], failed[usable]
    if len(table) < 2:
        return None
    worst = np.nanmax(sign * table, axis=1) * sign  # per block
    table = np.where(failed, worst[:, None], table)
    blocks = [b for b, keep in zip(shared, usable, strict=True) if keep]
    return {c: (table[:, i], int(failed[:, i].sum())) for i, c in enumerate(configs)}, blocks


def _unblocked_values(
    samples: Mapping[str, Mapping[int, float]], configs: list[str], sign: float
) -> Found | None:
    every = np.array([v for c in configs for v in samples[c].values()], dtype=float)
    if np.isnan(every).all():
        return None
    worst = float(np.nanmax(sign * every) * sign)
    groups: Groups = {}
    for c in configs:
        raw = np.array(list(samples[c].values()), dtype=float)
        if len(raw) < 2:
            return None
        groups[c] = (np.where(np.isnan(raw), worst, raw), int(np.isnan(raw).sum()))
    return groups, None


def _difference(
    config: str, best: str, groups: Groups, blocks: list[int] | None, level: float
) -> Difference:
    """`sd` is that of one difference: of one block's (paired), or of two single trials'."""
    a, b = groups[config][0], groups[best][0]
    per_block: dict[int, float] = {}
    if blocks is not None:  # paired t
        d = a - b
        diff, sd, df = float(d.mean()), float(d.std(ddof=1)), float(len(d) - 1)
        se = sd / math.sqrt(len(d))
        per_block = dict(zip(blocks, d.tolist(), strict=True))
    else:  # Welch
        va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
        diff, se = float(a.mean() - b.mean()), math.sqrt(va + vb)
        sd = math.sqrt(a.var(ddof=1) + b.var(ddof=1))
        welch = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1)) if se else math.nan
        df = float(welch)
    if se > 0:
        half = se * critical(level, df)
    else:  # no noise: identical values are no difference; a constant gap on a discrete metric
        half = 0.0 if diff == 0 else math.inf  # may be a rounding coincidence, so no claim
    return Difference(config, diff, diff - half, diff + half, sd, df, per_block)


@functools.lru_cache(maxsize=4096)  # the same few (level, df) recur in a study and a simulation
def critical(level: float, df: float) -> float:
    """The two-sided t multiplier at `level` (infinite where no error is left to spend)."""
    return math.inf if level <= 0 else float(stats.t.isf(level / 2, df))


def _more_replicates(found: Comparison, looks: Looks) -> int | None:
    """With a margin: about how many more replicates would decide every undecided one at its
    own noise, at the level a look then would have after this one; past `max_replicates`,
    `max_replicates + 1 - n` (more than the study may grow: it cannot be decided)."""
    if found.margin is None or not found.undecided or looks.max_replicates is None:
        return None
    n, top = found.replicates, looks.max_replicates
    after = Looks((*looks.earlier, n), top)
    needed = n
    for d in found.undecided:
        distance = abs(d.diff)
        target = max(distance, found.margin - distance if distance < found.margin else 0.0)
        for m in range(n + 1, top + 2):
            if m > top:
                return top + 1 - n
            half = critical(after.level(m) / found.family, m - 1) * d.sd / math.sqrt(m)
            if half < target:
                needed = max(needed, m)
                break
    return needed - n
