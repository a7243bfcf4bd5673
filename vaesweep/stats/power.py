"""What a design detects under the procedure that ships, said two ways:

- *a winner*: one configuration better than every other by Δ is named the best (the closed test
  rejects every other) with 80% power;
- *a worse one*: one configuration Δ worse than all the others is called worse with 80% power.

Both are measured, not bounded: the closed test's step-down depends on every comparison at
once, so `power` simulates it (seeded, vectorized: 4,000 studies a point, the same draws for
every Δ, so the search is exact for them) under equal variances and correlations, on the
design's blocks and degrees of freedom, and searches Δ. A difference's SD observed on few blocks
is a poor guide to the true one (with 3 blocks it is below half the truth in one study of five),
so an answer's statement uses its one-sided 90% upper confidence bound: the stated Δ has at
least 80% power in at least 90% of studies. Planning (`vaesweep studies`) uses the study file's
`noise` (the residual SD measured on the design) instead, at the first look.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from scipy import stats

POWER = 0.80
SD_CONFIDENCE = 0.90
DRAWS = 4000


def conservative_sd(sd: float, df: float) -> float:
    """The one-sided SD_CONFIDENCE upper confidence bound of an SD estimated on `df` df."""
    if not df >= 1 or math.isnan(sd):
        return math.nan
    return sd * math.sqrt(df / stats.chi2.ppf(1 - SD_CONFIDENCE, df))


def detectable(noise: float, k: int, replicates: int, blocked: bool, level: float) -> dict:
    """{"winner": Δ, "worse": Δ}: the true differences the shipped procedure finds with 80%
    power, where `noise` is the residual SD (a difference's SD is sqrt(2) noise) and `level`
    the objective's error rate at the look. NaN below 2 configurations or 2 replicates."""
    if k < 2 or replicates < 2 or not noise >= 0:
        return {"winner": math.nan, "worse": math.nan}
    if noise == 0:
        return {"winner": 0.0, "worse": 0.0}
    return {
        kind: noise * _unit_detectable(kind, k, replicates, blocked, round(level, 12))
        for kind in ("winner", "worse")
    }


@functools.lru_cache(maxsize=256)
def _unit_detectable(kind: str, k: int, b: int, blocked: bool, level: float) -> float:
    noise = np.random.default_rng(20261207).standard_normal((DRAWS, k, b))
    found = _named if kind == "winner" else _called_worse
    return _search(lambda delta: float(np.mean(found(noise, delta, blocked, level))))


def _search(power_at) -> float:
    """The smallest Δ (in residual SDs) with POWER, by bisection (power rises with Δ)."""
    low, high = 0.0, 1.0
    while power_at(high) < POWER:
        low, high = high, high * 2
        if high > 1e4:
            return math.inf
    for _ in range(20):  # to a millionth of the bracket
        middle = (low + high) / 2
        low, high = (middle, high) if power_at(middle) < POWER else (low, middle)
    return high


def _named(noise: np.ndarray, delta: float, blocked: bool, level: float) -> np.ndarray:
    """Per simulated study: configuration 0, delta better than the others, named the best."""
    values = noise.copy()
    values[:, 0] += delta
    rejected = _closed(values, blocked, level)
    return np.asarray(rejected[:, 1:].all(axis=1))


def _called_worse(noise: np.ndarray, delta: float, blocked: bool, level: float) -> np.ndarray:
    values = noise.copy()
    values[:, 0] -= delta
    return _closed(values, blocked, level)[:, 0]


def _closed(values: np.ndarray, blocked: bool, level: float) -> np.ndarray:
    """The closed test's rejections (Holm over (k - 1) min_j p), vectorized over studies: the
    same decisions as `verdicts.closed_test` on each study (a test checks)."""
    studies, k, b = values.shape
    if blocked:
        d = values[:, None, :, :] - values[:, :, None, :]  # [s, i, j, block]: j - i
        se = d.std(axis=3, ddof=1) / math.sqrt(b)
        gain, df = d.mean(axis=3), np.full((studies, k, k), b - 1.0)
    else:
        means, share = values.mean(axis=2), values.var(axis=2, ddof=1) / b
        gain = means[:, None, :] - means[:, :, None]
        se2 = share[:, :, None] + share[:, None, :]
        parts = share**2 / (b - 1)
        df = se2**2 / (parts[:, :, None] + parts[:, None, :])
        se = np.sqrt(se2)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(se > 0, stats.t.sf(gain / se, df), 1.0)
    p[:, np.arange(k), np.arange(k)] = np.inf
    p_i = np.minimum(1.0, (k - 1) * p.min(axis=2))
    order = np.argsort(p_i, axis=1)
    ranked = np.take_along_axis(p_i, order, axis=1)
    passes = np.cumprod(ranked <= level / (k - np.arange(k)), axis=1).astype(bool)
    rejected = np.zeros_like(passes)
    np.put_along_axis(rejected, order, passes, axis=1)
    return rejected
