"""Seeded simulated studies for the answer's error rates: the conditions real studies have, not
only the textbook's. Shared by tests/test_stats.py and benchmarks/stats_grid.py (the table in
BENCHMARKS.md). Residual SD 1 and block offsets N(0, 3²), as the outside audit simulated."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from vaesweep.stats import Looks, compare_samples

BLOCK_SD = 3.0
ONE_LOOK = Looks()  # a fixed-size analysis


@dataclass(frozen=True)
class Scenario:
    """k configurations x b blocks with equal true means unless `effect` says otherwise."""

    name: str
    k: int
    b: int
    sds: tuple[float, ...] = ()  # per configuration (default all 1)
    correlated: float = 0.0  # the first k-1 share a component with this correlation
    tails: float | None = None  # t-distributed noise with these degrees of freedom
    fail_worst: float = 0.0  # the last configuration fails on its own worst share of seeds
    missing: float = 0.0  # trials missing at random
    objectives: int = 1
    blocked: bool = True
    effect: dict[int, float] = field(default_factory=dict)  # configuration -> true shift

    def values(self, rng: np.random.Generator) -> np.ndarray:
        """(objectives, k, b) values; NaN marks a failed trial."""
        out = np.empty((self.objectives, self.k, self.b))
        for o in range(self.objectives):
            noise = self._noise(rng) * np.array(self.sds or (1.0,) * self.k)[:, None]
            offsets = rng.normal(0, BLOCK_SD, self.b) if self.blocked else 0.0
            shift = np.array([self.effect.get(c, 0.0) for c in range(self.k)])[:, None]
            out[o] = noise + offsets + shift
        if self.fail_worst:
            last = out[0, -1]
            worst = last <= np.quantile(last, self.fail_worst)
            out[:, -1, worst] = np.nan
        if self.missing:
            out[:, rng.random((self.k, self.b)) < self.missing] = np.inf  # absent, not failed
        return out

    def _noise(self, rng: np.random.Generator) -> np.ndarray:
        draw: Callable[..., np.ndarray] = (
            (lambda size: rng.standard_t(self.tails, size) / np.sqrt(self.tails / (self.tails - 2)))
            if self.tails
            else rng.standard_normal
        )
        noise = draw((self.k, self.b))
        if self.correlated:
            shared = draw(self.b)
            r = self.correlated
            noise[:-1] = np.sqrt(r) * shared + np.sqrt(1 - r) * noise[:-1]
        return noise


def samples(values: np.ndarray, blocks: int | None = None) -> dict[str, dict[int, float]]:
    """One objective's (k, b) values as compare's samples, the first `blocks` blocks."""
    b = values.shape[1] if blocks is None else blocks
    return {
        str(c): {j: float(values[c, j]) for j in range(b) if not np.isinf(values[c, j])}
        for c in range(values.shape[0])
    }


def claims(s: Scenario, values: np.ndarray, looks: Looks = ONE_LOOK, blocks=None) -> list:
    """The comparisons of every objective at one look."""
    order = [str(c) for c in range(s.k)]
    return [
        compare_samples(samples(v, blocks), order, "maximize", s.blocked, None, s.objectives, looks)
        for v in values
    ]


def false_claim(s: Scenario, found: list) -> bool:
    """A "worse" verdict on a configuration that is truly as good as the best: under equal
    means, any; where the last configuration fails on its bad seeds, any on another one (it is
    the failing one that is truly worse)."""
    failing = str(s.k - 1) if s.fail_worst else None
    for f in found:
        if f is None:
            continue
        for d in f.differences:
            if d.separated and d.config != failing:
                return True
    return False


def false_claim_rate(s: Scenario, studies: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    return float(np.mean([false_claim(s, claims(s, s.values(rng))) for _ in range(studies)]))


def optional_stopping_rate(
    s: Scenario, studies: int, seed: int, first: int = 3, last: int = 20
) -> float:
    """Looks after every block from `first` to `last` (= max_replicates), stopping at the first
    claim: how often a claim is ever made."""
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(studies):
        values = s.values(rng)
        for n in range(first, last + 1):
            looks = Looks(tuple(range(first, n)), last)
            if false_claim(s, claims(s, values, looks, blocks=n)):
                hits += 1
                break
    return hits / studies


def power(s: Scenario, studies: int, seed: int, winner: str) -> float:
    """How often `winner` is claimed better than every other configuration."""
    rng = np.random.default_rng(seed)
    won = 0
    for _ in range(studies):
        found = claims(s, s.values(rng))[0]
        won += found is not None and found.best == winner and found.winner
    return won / studies


SCENARIOS = [
    Scenario("textbook 5 × 6", 5, 6),
    Scenario("textbook 3 × 10 (warmup)", 3, 10),
    Scenario("textbook 5 × 3 (latent)", 5, 3),
    Scenario("textbook 2 × 5", 2, 5),
    Scenario("one SD 3× (5 × 6)", 5, 6, sds=(1, 1, 1, 1, 3)),
    Scenario("one SD 3× (5 × 3)", 5, 3, sds=(1, 1, 1, 1, 3)),
    Scenario("one SD 3× (3 × 10)", 3, 10, sds=(1, 1, 3)),
    Scenario("one SD 3× (3 × 3)", 3, 3, sds=(1, 1, 3)),
    Scenario("one SD 2× (5 × 6)", 5, 6, sds=(1, 1, 1, 1, 2)),
    Scenario("k−1 correlated 0.9 (5 × 3)", 5, 3, correlated=0.9),
    Scenario("k−1 correlated 0.9 (5 × 6)", 5, 6, correlated=0.9),
    Scenario("k−1 correlated 0.9 (3 × 10)", 3, 10, correlated=0.9),
    Scenario("t, 3 df (5 × 6)", 5, 6, tails=3.0),
    Scenario("10% missing at random (5 × 6)", 5, 6, missing=0.1),
    Scenario("two objectives (2 × 5, likelihood)", 2, 5, objectives=2),
    Scenario("two objectives (3 × 3, joint)", 3, 3, objectives=2),
    Scenario("one fails on its worst 20% (3 × 10)", 3, 10, fail_worst=0.2),
    Scenario("unblocked, one SD 3× (5 × 6)", 5, 6, sds=(1, 1, 1, 1, 3), blocked=False),
]


@functools.cache
def _tukey_critical(k: int, df: int) -> float:
    return float(stats.studentized_range.ppf(0.95, k, df)) / np.sqrt(2)


def earlier_claims(values: np.ndarray) -> tuple[str, list[str]]:
    """The procedure vaesweep used before this one, for the power it costs: the blocked
    additive model's repeated-measures ANOVA, then Tukey intervals on its pooled residual
    (assumes sphericity). (best, configurations claimed worse)."""
    k, b = values.shape
    means = values.mean(axis=1)
    best = int(np.argmax(means))
    residual = values - means[:, None] - values.mean(axis=0)[None, :] + values.mean()
    df = (k - 1) * (b - 1)
    mse = (residual**2).sum() / df
    f = b * ((means - means.mean()) ** 2).sum() / (k - 1) / mse
    if stats.f.sf(f, k - 1, df) >= 0.05:
        return str(best), []
    half = _tukey_critical(k, df) * np.sqrt(2 * mse / b)
    return str(best), [str(c) for c in range(k) if c != best and means[best] - means[c] > half]


def earlier_power(s: Scenario, studies: int, seed: int, winner: str) -> float:
    rng = np.random.default_rng(seed)
    won = 0
    for _ in range(studies):
        best, worse = earlier_claims(s.values(rng)[0])
        won += best == winner and len(worse) == s.k - 1
    return won / studies


def earlier_false_claim_rate(s: Scenario, studies: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    return float(np.mean([bool(earlier_claims(s.values(rng)[0])[1]) for _ in range(studies)]))
