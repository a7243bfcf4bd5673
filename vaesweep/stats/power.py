"""What a design detects, said two ways:

- *a pair*: a true difference Δ between two given configurations is claimed (its interval
  excludes 0 on the right side) with 80% power;
- *a winner*: one configuration better than every other by Δ is claimed better than each of
  them, so named the winner, with at least 80% power (each of its k − 1 comparisons then has
  power 1 − 0.2 / (k − 1): a union bound over the misses, whatever their correlation).

Both at the interval's own level and degrees of freedom. A difference's SD observed on few
blocks is a poor guide to the true one (with 3 blocks it is below half the truth in one study
of five), so the SD used is its one-sided 90% upper confidence bound: the stated Δ has at least
80% power in at least 90% of studies. Planning (`vaesweep studies`) uses the study file's
`noise` instead.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import optimize, stats

POWER = 0.80
SD_CONFIDENCE = 0.90


def conservative_sd(sd: float, df: float) -> float:
    """The one-sided SD_CONFIDENCE upper confidence bound of an SD estimated on `df` df."""
    if not df >= 1 or math.isnan(sd):
        return math.nan
    return sd * math.sqrt(df / stats.chi2.ppf(1 - SD_CONFIDENCE, df))


def detectable(se: float, df: float, level: float, power: float = POWER) -> float:
    """The true difference whose two-sided interval at `level` excludes 0 on its side with
    `power` (noncentral t)."""
    if se == 0:
        return 0.0
    if not df >= 1 or level <= 0 or math.isnan(se):
        return math.inf
    c = float(stats.t.isf(level / 2, df))

    def shortfall(shift: float) -> float:  # the true difference in standard errors
        return float(np.nan_to_num(stats.nct.sf(c, df, shift))) - power

    # With 1 or 2 degrees of freedom the power rises slowly with the shift: widen the bracket.
    high = c + 40
    while shortfall(high) <= 0:
        if high > 1e7:
            return math.inf
        high *= 4
    return se * float(optimize.brentq(shortfall, 0.0, high))


def winner_power(k: int) -> float:
    """The power each of a winner's k − 1 comparisons needs for 80% power to win them all."""
    return 1 - (1 - POWER) / max(k - 1, 1)


def design_detectable(
    noise: float, k: int, replicates: int, blocked: bool, family: int, level: float
) -> float:
    """Planning, before any trial runs: the pair difference a design of k configurations x
    `replicates` finds with 80% power, each comparison at `level` (its share of the family's
    and the first look's error), where `noise` is the residual SD measured on that design (so a
    difference's SD is sqrt(2) noise, as under equal variances and correlations)."""
    if k < 2 or replicates < 2:
        return math.nan
    df = replicates - 1 if blocked else 2 * (replicates - 1)
    return detectable(noise * math.sqrt(2 / replicates), df, level / family)
