"""From the pairs' tests to the claims an answer makes about one objective.

- **worse / best**: a closed test (Marcus, Peritz & Gabriel, 1976) of H_i, "configuration i is
  among the best". An intersection of such hypotheses over a set I is tested by Bonferroni over
  the one-sided tests "some j is better than i", i in I; its shortcut is Holm's step-down over
  p_i = (k - 1) min_j p(j better than i). Rejecting H_i claims
  "some other configuration is better than i": *worse*. The configuration left when every other
  is rejected is *the best*: better than each other one. The family-wise error stays at the
  level for any means, variances, correlations and ties.
- **the confidence set for the best, and equivalence**: Hsu's constrained multiple comparisons
  with the best (MCB), Bonferroni over the k - 1 one-sided comparisons with each configuration,
  each pair at its own variance. Each configuration gets a simultaneous interval for "its mean
  minus the best mean of the others"; those whose interval reaches above 0 are the configurations
  the data cannot rule out as the best (`may_be_best`); one whose interval ends at 0 has another
  configuration at least as good. *Equivalent*, with a margin d: the interval's lower end lies
  above -d, so the configuration is within d of the best, whichever that is (one-sided bounds:
  with two configurations, the two one-sided tests of TOST at the level).

Several objectives are one family: `close` runs the closed test over every configuration of
every objective (Holm over the m x k hypotheses), and MCB gives each objective its Bonferroni
share. When one configuration is truly best, a false claim of either kind requires one of that
configuration's k - 1 comparisons to err past MCB's level (Holm never reaches a looser level than
the look's rate / (m + 1): each objective's leader is never rejected), so together they keep the
level. When several tie for the best, every "another is at least as good" is true, and an error
is a false "worse" on a tied one (the closed test's level) or a false "equivalent" (MCB's level):
the two are separate families there, each at the level. A look's share comes from `sequential`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from vaesweep.stats.pairwise import ALPHA, Pairs, Scores, one_sided_critical, pairs, scores
from vaesweep.stats.sequential import look_level

VERDICT_COLUMNS = ["diff", "diff_low", "diff_high", "p_worse", "may_be_best", "verdict"]


@dataclass
class Difference:
    """One configuration against the best of the others, on the objective's own scale."""

    config: str
    diff: float  # its mean minus the best mean among the others (the leader: its lead)
    low: float  # MCB's simultaneous interval for that difference; it always holds 0
    high: float
    p_worse: float  # the closed test's adjusted p-value of "another configuration is better"
    p_each: float  # its unadjusted p-value: (k - 1) x the smallest p of another being better
    worse: bool  # shown worse than another configuration
    best: bool  # shown better than every other configuration
    may_be_best: bool  # in the 95% confidence set for the best
    sd: float = math.nan  # of one difference with the highest mean (the leader: the second)
    df: float = math.nan
    per_block: dict[int, float] = field(default_factory=dict)  # blocked: that difference a block
    equivalent: bool | None = None  # within the margin of the best, whichever it is (None: none)
    behind: float = math.nan  # how far it can be behind the best: MCB's bound on the worse side

    def columns(self) -> dict[str, object]:
        """Its columns in `stats.compare`'s table and in effects.csv (`VERDICT_COLUMNS`)."""
        return {
            "diff": self.diff,
            "diff_low": self.low,
            "diff_high": self.high,
            "p_worse": self.p_worse,
            "may_be_best": self.may_be_best,
            "verdict": self.verdict,
        }

    @property
    def verdict(self) -> str:
        if self.best:
            return "best"
        if self.worse:
            return "worse"
        if self.equivalent is None:
            return "no difference"
        return "equivalent" if self.equivalent else "undecided"


@dataclass
class Comparison:
    highest: str  # the configuration with the highest (or lowest, minimized) mean
    blocked: bool  # analysed within blocks
    replicates: int  # blocks analysed (blocked); the fewest replicates of a configuration (not)
    entries: list[Difference]  # every configuration, in the order given
    scores: dict[str, np.ndarray]  # per configuration, on the objective's scale, failures scored
    failures: dict[str, int]  # failed trials per configuration among them
    level: float  # this objective's error rate at this look (one-sided claims)
    objectives: int  # objectives sharing the look's error rate
    margin: float | None = None
    more_replicates: int | None = None  # with a margin: about how many more decide every one
    max_blocks: int | None = None

    @property
    def k(self) -> int:
        return len(self.entries)

    @property
    def mcb_level(self) -> float:
        """The one-sided level of each of MCB's k - 1 comparisons."""
        return self.level / max(self.k - 1, 1)

    @property
    def differences(self) -> list[Difference]:
        """Every configuration but the one with the highest mean."""
        return [d for d in self.entries if d.config != self.highest]

    @property
    def winner(self) -> str | None:
        """The configuration shown better than every other, if any."""
        return next((d.config for d in self.entries if d.best), None)

    @property
    def may_be_best(self) -> list[str]:
        return [d.config for d in self.entries if d.may_be_best]

    @property
    def undecided(self) -> list[Difference]:
        """Neither the best, nor worse, nor equivalent ("undecided", or "no difference" where
        there is no margin to be equivalent within)."""
        return [d for d in self.entries if d.verdict in ("undecided", "no difference")]

    @property
    def means(self) -> dict[str, float]:
        return {c: float(v.mean()) for c, v in self.scores.items()}

    @property
    def counts(self) -> dict[str, int]:
        return {c: len(v) for c, v in self.scores.items()}

    @property
    def blocks(self) -> int:
        return self.replicates if self.blocked else 0

    @property
    def variance_ratio(self) -> float | None:
        """Blocked: how much pairing cut the variance of a difference, unpaired over paired,
        averaged over the differences with the highest mean (None unblocked)."""
        if not self.blocked:
            return None
        top = self.scores[self.highest].var(ddof=1)
        unpaired = np.mean([self.scores[d.config].var(ddof=1) + top for d in self.differences])
        paired = np.mean([d.sd**2 for d in self.differences])
        return float(unpaired / paired) if paired > 0 else math.nan


@dataclass(frozen=True)
class Looks:
    """Where this look stands among a study's looks: the earlier looks' block counts, and the
    most blocks the study may grow to (None: a single, fixed-size analysis)."""

    earlier: tuple[int, ...] = ()
    max_blocks: int | None = None

    def level(self, blocks: int, alpha: float = ALPHA) -> float:
        return look_level(blocks, self.earlier, self.max_blocks, alpha)


ONE_LOOK = Looks()  # a fixed-size analysis: the whole error rate at this look


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
    found = scores(samples, order, sign, blocked)
    if found is None:
        return None
    tests = pairs(found)
    n = min(len(v) for v in found.values)
    level = looks.level(n) / objectives
    means = np.array([v.mean() for v in found.values])
    ranked = np.argsort(-means, kind="stable")  # ties: the first in order
    entries = _entries(found, tests, ranked, level, margin, -sign, objectives)
    comparison = Comparison(
        found.configs[ranked[0]],
        blocked,
        n,
        entries,
        {c: -sign * v for c, v in zip(found.configs, found.values, strict=True)},
        dict(zip(found.configs, found.failures, strict=True)),
        level,
        objectives,
        margin,
        max_blocks=looks.max_blocks,
    )
    comparison.more_replicates = _more_replicates(comparison, looks)
    return comparison


def closed_test(p_better: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """(rejected, adjusted p) of every H_i, "i is among the best", for one objective alone."""
    adjusted = holm(among_the_best(p_better))
    return adjusted <= level, adjusted


def among_the_best(p_better: np.ndarray) -> np.ndarray:
    """Each H_i's Bonferroni p-value: (k - 1) x the smallest one-sided p-value of another
    configuration being better than i."""
    k = len(p_better)
    off = p_better + np.diag(np.full(k, np.inf))
    return np.minimum(1.0, (k - 1) * off.min(axis=1))


def close(comparisons: Sequence[Comparison | None]) -> None:
    """The closed test over a study's whole family: Holm over every configuration of every
    objective (the m x k hypotheses) at the look's error rate, which `compare` alone splits
    between the objectives (Bonferroni). Sets each entry's `p_worse`, `worse` and `best`."""
    found = [c for c in comparisons if c is not None]
    if len(found) < 2:
        return  # one objective: `compare` already tested it at the whole rate
    level = min(c.level * c.objectives for c in found)
    entries = [d for c in found for d in c.entries]
    adjusted = holm(np.array([d.p_each for d in entries]))
    for d, p in zip(entries, adjusted, strict=True):
        d.p_worse, d.worse = float(p), bool(p <= level)
    for c in found:
        shown = sum(d.worse for d in c.entries) == c.k - 1
        for d in c.entries:
            d.best = shown and not d.worse


def holm(p: np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values, as statsmodels' `multipletests(method="holm")` gives
    them (a test checks): written here because that function runs a full garbage collection on
    every call, 65 ms, which a study's answer and a simulation of thousands could not afford."""
    order = np.argsort(p, kind="stable")
    steps = np.maximum.accumulate((len(p) - np.arange(len(p))) * p[order])
    adjusted = np.empty_like(p)
    adjusted[order] = np.minimum(steps, 1.0)
    return adjusted


def mcb(tests: Pairs, level: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hsu's constrained MCB intervals (lower, upper) for each mean minus the best of the
    others, oriented larger-better, and the confidence set for the best (a mask), each of the
    k - 1 comparisons at `level` one-sided."""
    k = len(tests.gain)
    half = tests.half(level)
    diff = -tests.gain  # [i, j]: i - j
    others = ~np.eye(k, dtype=bool)
    upper = np.where(others, diff + half, np.inf).min(axis=1)
    member = upper >= 0  # the confidence set; exact ties (identical values) stay in
    lower = np.where(others & member[None, :], diff - half, np.inf).min(axis=1)
    alone = member & (member.sum() == 1)
    return np.where(alone, 0.0, np.minimum(lower, 0.0)), np.maximum(upper, 0.0), member


def _entries(
    found: Scores,
    tests: Pairs,
    ranked: np.ndarray,
    level: float,
    margin: float | None,
    up: float,
    objectives: int,
) -> list[Difference]:
    k = len(found.configs)
    each = among_the_best(tests.p_better)
    adjusted = holm(each)
    worse = adjusted <= level
    lower, upper, member = mcb(tests, level / (k - 1))
    means = np.array([v.mean() for v in found.values])
    entries = []
    for i, config in enumerate(found.configs):
        ref = ranked[1] if i == ranked[0] else ranked[0]  # the best mean of the others
        low, high = sorted((up * lower[i], up * upper[i]))
        per_block = found.values[i] - found.values[ref] if found.blocks is not None else []
        entries.append(
            Difference(
                config,
                float(up * (means[i] - means[ref])),
                float(low),
                float(high),
                float(min(1.0, adjusted[i] * objectives)),
                float(each[i]),
                bool(worse[i]),
                bool(worse.sum() == k - 1 and not worse[i]),
                bool(member[i]),
                float(tests.sd[i, ref]),
                float(tests.df[i, ref]),
                dict(zip(found.blocks or [], (up * np.asarray(per_block)).tolist(), strict=True)),
                None if margin is None else bool(lower[i] > -margin),
                float(-lower[i]),
            )
        )
    return entries


def _more_replicates(found: Comparison, looks: Looks) -> int | None:
    """With a margin: about how many more replicates would decide every undecided one at its
    own noise (its difference with the highest mean), at the level a look then would have
    after this one; past `max_blocks`, `max_blocks + 1 - n` (it cannot be decided)."""
    if found.margin is None or not found.undecided or looks.max_blocks is None:
        return None
    n, top = found.replicates, looks.max_blocks
    after = Looks((*looks.earlier, n), top)
    needed = n
    for d in found.undecided:
        distance = abs(d.diff)
        target = max(distance, found.margin - distance if distance < found.margin else 0.0)
        for m in range(n + 1, top + 2):
            if m > top:
                return top + 1 - n
            each = after.level(m) / found.objectives / max(found.k - 1, 1)
            if one_sided_critical(each, m - 1) * d.sd / math.sqrt(m) < target:
                needed = max(needed, m)
                break
    return needed - n
