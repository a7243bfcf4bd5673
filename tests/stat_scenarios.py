"""Seeded simulated studies for the answer's error rates and power: the conditions real studies
have, not only the textbook's. Shared by tests/unit/test_stats.py and benchmarks/stats_grid.py (the
tables in BENCHMARKS.md). Residual SD 1 and block offsets N(0, 3²), as the outside audits
simulated.

A claim is false when the truth contradicts it: "worse" (or another named the best) for a
configuration with the highest true mean; a configuration left out of the confidence set for
the best although it alone has the highest true mean; "equivalent" for one whose true mean is
more than the margin below the highest. A failure ranks below every completed value, so a
configuration that fails where another completes is truly worse than an otherwise equal one.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from vaesweep.stats import Looks, close, compare_samples
from vaesweep.stats.pairwise import one_sided_critical

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
    outlier_block: float = 0.0  # one block's residuals this many times larger
    fail_worst: float = 0.0  # the last configuration fails on its own worst share of seeds
    fail_random: tuple[float, ...] = ()  # per configuration: the chance a trial fails
    missing: float = 0.0  # trials missing at random
    objectives: int = 1
    blocked: bool = True
    margin: float | None = None
    effect: dict[int, float] = field(default_factory=dict)  # configuration -> true shift

    @property
    def means(self) -> np.ndarray:
        return np.array([self.effect.get(c, 0.0) for c in range(self.k)])

    def values(self, rng: np.random.Generator) -> np.ndarray:
        """(objectives, k, b) values; NaN marks a failed trial, inf a missing one."""
        out = np.empty((self.objectives, self.k, self.b))
        for o in range(self.objectives):
            noise = self._noise(rng) * np.array(self.sds or (1.0,) * self.k)[:, None]
            if self.outlier_block:
                noise[:, 0] *= self.outlier_block
            offsets = rng.normal(0, BLOCK_SD, self.b) if self.blocked else 0.0
            out[o] = noise + offsets + self.means[:, None]
        if self.fail_worst:
            last = out[0, -1]
            worst = last <= np.quantile(last, self.fail_worst)
            out[:, -1, worst] = np.nan
        if self.fail_random:
            fails = rng.random((self.k, self.b)) < np.array(self.fail_random)[:, None]
            out[:, fails] = np.nan
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

    def truly_best(self) -> set[str]:
        """The configurations with the highest true mean, failing ones ranked below."""
        failing = {self.k - 1} if self.fail_worst else set()
        failing |= {c for c, p in enumerate(self.fail_random) if p > 0}
        rank = [(self.means[c], c not in failing) for c in range(self.k)]
        fewest = min(p for p in (self.fail_random or (0.0,)))
        if self.fail_random and all(p == fewest for p in self.fail_random):
            rank = [(self.means[c], True) for c in range(self.k)]  # all fail alike: no penalty
        top = max(rank)
        return {str(c) for c in range(self.k) if rank[c] == top}


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
    found = [
        compare_samples(
            samples(v, blocks), order, "maximize", s.blocked, s.margin, s.objectives, looks
        )
        for v in values
    ]
    close(found)
    return found


def false_claim(s: Scenario, found: list) -> bool:
    """Any claim of the answer that the truth contradicts (the module's docstring)."""
    best = s.truly_best()
    alone = next(iter(best)) if len(best) == 1 else None
    top = max(s.means)
    for f in found:
        if f is None:
            continue
        for d in f.entries:
            if d.worse and d.config in best:
                return True
            if d.config == alone and not d.may_be_best:
                return True
            if d.equivalent and s.margin and s.means[int(d.config)] < top - s.margin:
                return True
    return False


def false_claim_rate(s: Scenario, studies: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    return float(np.mean([false_claim(s, claims(s, s.values(rng))) for _ in range(studies)]))


def optional_stopping_rate(
    s: Scenario, studies: int, seed: int, first: int = 3, last: int = 20
) -> float:
    """Looks after every block from `first` to `last` (= max_blocks), stopping at the first
    claim: how often a false claim is ever made."""
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


@dataclass
class Power:
    """How often each decisive claim is made on studies where it is true."""

    winner: float = 0.0  # `target` named the best
    alone: float = 0.0  # the confidence set for the best is `target` alone
    kept: float = 0.0  # `target` in the confidence set
    worse: float = 0.0  # `worse_one` called worse


def power(s: Scenario, studies: int, seed: int, target: str, worse_one: str | None = None):
    rng = np.random.default_rng(seed)
    out = Power()
    for _ in range(studies):
        found = claims(s, s.values(rng))[0]
        if found is None:
            continue
        out.winner += found.winner == target
        out.alone += found.may_be_best == [target]
        out.kept += target in found.may_be_best
        out.worse += any(d.worse for d in found.entries if d.config == worse_one)
    for name in ("winner", "alone", "kept", "worse"):
        setattr(out, name, getattr(out, name) / studies)
    return out


# --- the procedure that shipped before, for the side-by-side table --------------------------


def earlier(s: Scenario, values: np.ndarray, level: float = 0.05) -> list[dict]:
    """Per objective: the best mean, the configurations called worse (each pair's paired t or
    Welch interval, two-sided, Bonferroni over every pair of every objective) and those called
    equivalent (that interval within ±margin); a failure scored as its block's worst."""
    out = []
    family = s.objectives * s.k * (s.k - 1) // 2
    for v in values:
        v = np.where(np.isinf(v), np.nan, v)  # missing: left out below (blocked: whole block)
        failed = np.isnan(v)
        if s.blocked:
            keep = ~failed.all(axis=0)
            v = np.where(failed, np.nanmin(v, axis=0)[None, :], v)[:, keep]
        else:
            v = np.where(failed, np.nanmin(v), v)
        means = v.mean(axis=1)
        best = int(np.argmax(means))
        worse, equivalent = set(), set()
        for c in range(s.k):
            if c == best:
                continue
            if s.blocked:
                d = v[c] - v[best]
                se, df = d.std(ddof=1) / math.sqrt(len(d)), len(d) - 1
            else:
                a, b = v[c], v[best]
                va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
                se = math.sqrt(va + vb)
                df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
            half = one_sided_critical(level / family / 2, df) * se if se else math.inf
            diff = means[c] - means[best]
            if diff + half < 0:
                worse.add(str(c))
            if s.margin and -s.margin < diff - half and diff + half < s.margin:
                equivalent.add(str(c))
        out.append({"best": str(best), "worse": worse, "equivalent": equivalent})
    return out


def earlier_false_claim_rate(s: Scenario, studies: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    best, top, hits = s.truly_best(), max(s.means), 0
    for _ in range(studies):
        for f in earlier(s, s.values(rng)):
            wrong = f["worse"] & best or (
                s.margin and any(s.means[int(c)] < top - s.margin for c in f["equivalent"])
            )
            if wrong:
                hits += 1
                break
    return hits / studies


def earlier_power(s: Scenario, studies: int, seed: int, target: str, worse_one=None) -> Power:
    rng = np.random.default_rng(seed)
    out = Power()
    for _ in range(studies):
        f = earlier(s, s.values(rng))[0]
        out.winner += f["best"] == target and len(f["worse"]) == s.k - 1
        out.worse += worse_one in f["worse"]
    out.winner /= studies
    out.worse /= studies
    return out


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
    Scenario("skewed: t 3 df, an outlier block ×5 (5 × 6)", 5, 6, tails=3.0, outlier_block=5.0),
    Scenario("10% missing at random (5 × 6)", 5, 6, missing=0.1),
    Scenario("two objectives (2 × 5, likelihood)", 2, 5, objectives=2),
    Scenario("two objectives (3 × 3, joint)", 3, 3, objectives=2),
    Scenario("three objectives (5 × 6)", 5, 6, objectives=3),
    Scenario("unblocked, one SD 3× (5 × 6)", 5, 6, sds=(1, 1, 1, 1, 3), blocked=False),
    # Ties for the best, with the rest far below or at the equivalence margin.
    Scenario("two tie for the best, 3 below by 2 (5 × 6)", 5, 6, effect={2: -2, 3: -2, 4: -2}),
    Scenario("three tie, 2 below by 1 (5 × 6)", 5, 6, effect={3: -1, 4: -1}),
    Scenario(
        "two tie, one just past the margin (3 × 10, ±0.5)",
        3,
        10,
        margin=0.5,
        effect={2: -0.5001},
    ),
    # Equivalence at its margin: "equivalent" is wrongly said when the gap is the margin.
    Scenario("at the margin (2 × 10, ±1)", 2, 10, margin=1.0, effect={1: -1.0001}),
    Scenario(
        "at the margin, unequal SDs (3 × 10, ±1)",
        3,
        10,
        sds=(1, 1, 2),
        margin=1.0,
        effect={2: -1.0001},
    ),
    Scenario(
        "one best by 1, the rest at the margin (3 × 10, ±1)",
        3,
        10,
        margin=1.0,
        effect={0: 1.0, 1: -0.0001, 2: -0.0001},
    ),
    # Failures: ranked last, so a configuration that fails is worse than an equal one that does not.
    Scenario("one fails on its worst 20% (3 × 10)", 3, 10, fail_worst=0.2),
    Scenario("one fails at random 20% (2 × 6)", 2, 6, fail_random=(0.0, 0.2)),
    Scenario("one fails at random 20% (5 × 6)", 5, 6, fail_random=(0, 0, 0, 0, 0.2)),
    Scenario("both fail at random 20% (2 × 6)", 2, 6, fail_random=(0.2, 0.2)),
    Scenario("all fail at random 10% (5 × 6)", 5, 6, fail_random=(0.1,) * 5),
]

# Power: one configuration better (or worse) by a number of residual SDs.
POWER_CASES = [
    ("5 × 6, one 3 SD better", Scenario("p", 5, 6, effect={2: 3.0}), "2", None),
    ("5 × 6, one 2 SD worse", Scenario("p", 5, 6, effect={2: -2.0}), "0", "2"),
    ("3 × 6, one 2 SD better", Scenario("p", 3, 6, effect={2: 2.0}), "2", None),
    ("3 × 6, one 3 SD better", Scenario("p", 3, 6, effect={2: 3.0}), "2", None),
    ("3 × 10, one 2 SD better", Scenario("p", 3, 10, effect={2: 2.0}), "2", None),
    ("5 × 3, one 3 SD better", Scenario("p", 5, 3, effect={2: 3.0}), "2", None),
    ("5 × 10, one 3 SD better", Scenario("p", 5, 10, effect={2: 3.0}), "2", None),
    ("5 × 6, one 1 SD better", Scenario("p", 5, 6, effect={2: 1.0}), "2", None),
]
