"""Every pair of configurations tested on its own differences, and the scores they are tested on.

Each ordered pair (i, j) gets a one-sided test of "j is better than i" from that pair's own
differences: the paired t test over the seed blocks both trained in (blocked designs), Welch's t
otherwise. Neither assumes equal variances or equal correlations (sphericity): one configuration
noisier than the others, or configurations correlated unequally, change only that pair's test
(the additive model's pooled residual, and so Tukey's HSD, claim falsely when sphericity fails).
`verdicts` turns the pairs into claims; this module only measures.

A failed trial (a diverged one: its seed would diverge again) is data, not a gap, and it is the
worst outcome there is: it ranks below every completed trial of its block, scored just below the
block's worst completed value (by RANKED_LAST of the widest gap between two completed trials of
a block; unblocked, just below the worst completed value). So it loses its block to every
completed trial, never ties with the worst one, and a configuration whose bad seeds fail is never
favoured by dropping them. The margin is kept small on purpose: a failure scored far below (by
the widest gap) turns a pair's differences into a few equal large values, which the t test does
not describe: with two configurations failing alike at random it claimed falsely in 7.3% of
simulated studies, where the small margin keeps every failure scenario within 5% (BENCHMARKS.md).
A block every configuration failed is dropped.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

ALPHA = 0.05
RANKED_LAST = 1e-6  # a failure's margin below its block's worst, as a share of the widest gap


@dataclass(frozen=True)
class Scores:
    """The values compared, oriented so that larger is better, a failure scored as above."""

    configs: list[str]
    values: list[np.ndarray]  # per configuration; blocked: one per shared block, aligned
    failures: list[int]  # failed trials among them, per configuration
    blocks: list[int] | None  # the blocks compared (None: unblocked replicates)


@dataclass(frozen=True)
class Pairs:
    """Every ordered pair's test, indexed [i, j] for "j minus i" (oriented: positive favours j)."""

    gain: np.ndarray  # mean difference j - i
    se: np.ndarray  # its standard error (0: no noise)
    df: np.ndarray  # its degrees of freedom
    sd: np.ndarray  # SD of one difference: of one block's (paired) or of two single trials'

    @property
    def p_better(self) -> np.ndarray:
        """[i, j]: the one-sided p-value of "j is better than i" (1 on the diagonal, and where
        there is no noise: a constant gap on a discrete metric may be a rounding coincidence)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(self.se > 0, self.gain / self.se, -np.inf)
        return np.where(self.se > 0, stats.t.sf(t, np.maximum(self.df, 1)), 1.0)

    def half(self, level: np.ndarray | float) -> np.ndarray:
        """The one-sided bound's distance from `gain` at `level` per pair (0 for identical
        values, infinite for a noiseless constant gap: no claim)."""
        critical = np.vectorize(one_sided_critical)(level, np.maximum(self.df, 1))
        noiseless = np.where(self.gain == 0, 0.0, np.inf)
        with np.errstate(invalid="ignore"):
            return np.where(self.se > 0, critical * self.se, noiseless)


def scores(
    samples: Mapping[str, Mapping[int, float]], order: Sequence[str], sign: float, blocked: bool
) -> Scores | None:
    """`samples[config][block]` is one trial's value, NaN for a failed trial; `sign` is -1 where
    smaller is better. None with fewer than 2 configurations, or fewer than 2 usable blocks (or
    replicates of some configuration)."""
    configs = [c for c in order if samples.get(c)]
    if len(configs) < 2:
        return None
    return (_blocked if blocked else _unblocked)(samples, configs, -sign)


def _blocked(samples: Mapping[str, Mapping[int, float]], configs: list[str], up: float):
    shared = sorted(set.intersection(*(set(samples[c]) for c in configs)))
    table = up * np.array([[samples[c][b] for c in configs] for b in shared], dtype=float)
    failed = np.isnan(table)
    usable = np.asarray(~failed.all(axis=1)) if len(shared) else np.zeros(0, bool)
    table, failed = table[usable], failed[usable]
    if len(table) < 2:
        return None
    worst = np.nanmin(table, axis=1)
    spread = np.nanmax(table, axis=1) - worst
    gap = RANKED_LAST * (float(spread.max()) or _range(table) or 1.0)
    table = np.where(failed, (worst - gap)[:, None], table)
    blocks = [b for b, keep in zip(shared, usable, strict=True) if keep]
    values = [table[:, i] for i in range(len(configs))]
    return Scores(configs, values, [int(f) for f in failed.sum(axis=0)], blocks)


def _unblocked(samples: Mapping[str, Mapping[int, float]], configs: list[str], up: float):
    raw = [up * np.array(list(samples[c].values()), dtype=float) for c in configs]
    every = np.concatenate(raw)
    if np.isnan(every).all() or min(len(r) for r in raw) < 2:
        return None
    floor = float(np.nanmin(every)) - RANKED_LAST * (_range(every) or 1.0)
    values = [np.where(np.isnan(r), floor, r) for r in raw]
    return Scores(configs, values, [int(np.isnan(r).sum()) for r in raw], None)


def _range(values: np.ndarray) -> float:
    return float(np.nanmax(values) - np.nanmin(values))


def pairs(found: Scores) -> Pairs:
    """Every ordered pair's paired t (blocked) or Welch t (unblocked) statistics."""
    if found.blocks is not None:
        x = np.array(found.values)  # (k, b)
        d = x[None, :, :] - x[:, None, :]  # [i, j, block]: j - i
        n = x.shape[1]
        sd = d.std(axis=2, ddof=1)
        df = np.full(sd.shape, n - 1.0)
        return Pairs(d.mean(axis=2), sd / math.sqrt(n), df, sd)
    means = np.array([v.mean() for v in found.values])
    variances = np.array([v.var(ddof=1) for v in found.values])
    counts = np.array([len(v) for v in found.values], dtype=float)
    share = variances / counts  # squared standard error of each mean
    se2 = share[:, None] + share[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        parts = share**2 / (counts - 1)
        df = np.where(se2 > 0, se2**2 / (parts[:, None] + parts[None, :]), 1.0)
    sd = np.sqrt(variances[:, None] + variances[None, :])
    return Pairs(means[None, :] - means[:, None], np.sqrt(se2), df, sd)


@functools.lru_cache(maxsize=4096)  # the same few (level, df) recur in a study and a simulation
def one_sided_critical(level: float, df: float) -> float:
    """The one-sided t multiplier at `level` (infinite where no error is left to spend)."""
    return math.inf if level <= 0 else float(stats.t.isf(level, df))
