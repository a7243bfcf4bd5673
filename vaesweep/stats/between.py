"""Studies side by side: do their best configurations differ?

Each study chose its best from its own k configurations, so the best of a study of five looks
better than the best of a study of one by selection alone. The family is therefore every pair
of configurations across each pair of studies (k_A x k_B for studies A and B), Bonferroni over
all of them: whichever two configurations the studies happened to choose, the claim keeps its
5%. Each pair has its own variances (Welch's t, never a pooled one: two studies may differ in
noise), and where the two bests trained with the same seeds (blocks of the same seed in both)
the pair is compared on those seeds, paired.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from vaesweep.stats.pairwise import ALPHA, one_sided_critical


@dataclass(frozen=True)
class Best:
    study: str
    values: Mapping[Hashable, float]  # seed -> the best configuration's value (completed trials)
    configurations: int  # how many it was chosen from


@dataclass(frozen=True)
class BestPair:
    first: str
    second: str
    diff: float  # first minus second
    low: float
    high: float
    paired: int  # shared seeds compared pairwise (0: unpaired, Welch)

    @property
    def separated(self) -> bool:
        return self.low > 0 or self.high < 0


def compare_bests(bests: Sequence[Best]) -> tuple[list[BestPair], int]:
    """Every pair of studies' bests with a simultaneous two-sided 95% interval; and the family's
    size.
    A pair where either best has fewer than 2 values gets no interval (NaN)."""
    pairs = [(a, b) for i, a in enumerate(bests) for b in bests[i + 1 :]]
    family = sum(a.configurations * b.configurations for a, b in pairs)
    level = ALPHA / max(family, 1)
    return [_pair(a, b, level) for a, b in pairs], family


def _pair(a: Best, b: Best, level: float) -> BestPair:
    shared = [s for s in a.values if s in b.values]
    if len(shared) >= 2:
        d = np.array([a.values[s] - b.values[s] for s in shared])
        diff, se, df = float(d.mean()), float(d.std(ddof=1) / math.sqrt(len(d))), len(d) - 1.0
    else:
        x, y = np.array(list(a.values.values())), np.array(list(b.values.values()))
        if len(x) < 2 or len(y) < 2:
            return BestPair(a.study, b.study, math.nan, math.nan, math.nan, 0)
        vx, vy = x.var(ddof=1) / len(x), y.var(ddof=1) / len(y)
        diff, se = float(x.mean() - y.mean()), math.sqrt(vx + vy)
        df = (vx + vy) ** 2 / (vx**2 / (len(x) - 1) + vy**2 / (len(y) - 1)) if se else 1.0
        shared = []
    noiseless = 0.0 if diff == 0 else math.inf
    half = se * one_sided_critical(level / 2, df) if se > 0 else noiseless
    return BestPair(a.study, b.study, diff, diff - half, diff + half, len(shared))
