"""The comparison with the best: its error rate and power by simulation, and its numbers against
statsmodels' and scipy's own tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.anova import AnovaRM
from statsmodels.stats.weightstats import ttost_paired

from vaesweep.report.comparison import compare, design_detectable

CONFIGS = [str(c) for c in range(5)]


def simulate(rng, effect: float, blocked: bool, k: int = 5, b: int = 6):
    """One k x b study with unit noise: configuration 2 better by `effect`; blocked studies add
    a shared per-block offset three times the noise."""
    offsets = rng.normal(0, 3, b) if blocked else np.zeros(b)
    values = offsets + rng.standard_normal((k, b)) + np.where(np.arange(k) == 2, effect, 0)[:, None]
    samples = {CONFIGS[c]: dict(enumerate(values[c].tolist())) for c in range(k)}
    return compare(samples, CONFIGS[:k], "maximize", blocked)


@pytest.mark.parametrize("blocked", [True, False])
def test_equal_configurations_give_a_false_claim_in_at_most_5_percent(blocked):
    rng = np.random.default_rng(20261201)
    studies = [simulate(rng, 0.0, blocked) for _ in range(2000)]
    claimed = np.mean([any(d.separated for d in s.differences) for s in studies])
    assert claimed <= 0.06
    # A claim is no formality: about 3-5% (the omnibus gate makes it a little conservative).
    assert claimed >= 0.02


@pytest.mark.parametrize("blocked", [True, False])
def test_a_difference_of_three_sd_is_found(blocked):
    rng = np.random.default_rng(7)
    studies = [simulate(rng, 3.0, blocked) for _ in range(300)]
    found = np.mean([s.winner and s.best == "2" for s in studies])
    assert found >= 0.80


def test_blocked_numbers_are_statsmodels_repeated_measures_anova():
    rng = np.random.default_rng(1)
    values = rng.normal(size=(4, 6)) + rng.normal(0, 2, 6)  # 4 configurations x 6 blocks
    samples = {CONFIGS[c]: dict(enumerate(values[c].tolist())) for c in range(4)}
    found = compare(samples, CONFIGS[:4], "maximize", blocked=True)
    long = pd.DataFrame(
        [{"config": c, "block": b, "y": values[c, b]} for c in range(4) for b in range(6)]
    )
    table = AnovaRM(long, "y", "block", within=["config"]).fit().anova_table.iloc[0]
    assert found.test == f"repeated-measures ANOVA F(3, 15) = {table['F Value']:.3g}"
    assert found.p == pytest.approx(table["Pr > F"], rel=1e-9)
    # Every interval is the mean block difference ± q(0.95; 4, 15) / sqrt(2) · SE.
    q = stats.studentized_range.ppf(0.95, 4, 15)
    for d in found.differences:
        per_block = values[int(d.config)] - values[int(found.best)]
        assert d.per_block == pytest.approx(dict(enumerate(per_block)))
        half = q * found.residual_sd / np.sqrt(6)
        assert (d.low, d.high) == pytest.approx((per_block.mean() - half, per_block.mean() + half))


def test_unblocked_numbers_are_scipys_anova_and_tukey_kramer():
    rng = np.random.default_rng(2)
    groups = [rng.normal(m, 1, n) for m, n in ((0, 5), (1, 6), (0.5, 4))]  # unequal n
    samples = {CONFIGS[c]: dict(enumerate(g.tolist())) for c, g in enumerate(groups)}
    found = compare(samples, CONFIGS[:3], "maximize", blocked=False)
    assert found.p == pytest.approx(stats.f_oneway(*groups).pvalue, rel=1e-9)
    intervals = stats.tukey_hsd(*groups).confidence_interval(0.95)
    best = int(found.best)
    for d in found.differences:
        i = int(d.config)
        assert (d.low, d.high) == pytest.approx((intervals.low[i, best], intervals.high[i, best]))


def test_equivalence_with_two_configurations_is_statsmodels_tost():
    """With two configurations the simultaneous interval is the paired t interval, so
    'equivalent within ±m' is the paired TOST at 2.5% a side."""
    rng = np.random.default_rng(3)
    agreed = 0
    for _ in range(40):
        a = rng.normal(0, 1, 8)
        b = a + rng.normal(rng.uniform(-0.3, 0.3), 0.3, 8)
        found = compare(
            {"a": dict(enumerate(a)), "b": dict(enumerate(b))},
            ["a", "b"],
            "maximize",
            blocked=True,
            margin=0.5,
        )
        other = found.differences[0]
        x, y = (b, a) if other.config == "b" else (a, b)
        p = ttost_paired(x, y, -0.5, 0.5)[0]
        assert other.equivalent == (p < 0.025)
        agreed += other.equivalent
    assert 0 < agreed < 40  # both verdicts occurred


def test_the_detectable_difference_is_found_with_80_percent_power():
    rng = np.random.default_rng(4)
    delta = design_detectable(1.0, k=2, replicates=8, blocked=True)
    hits = 0
    for _ in range(2000):
        a = rng.normal(0, 1, 8)
        d = rng.normal(delta, np.sqrt(2), 8)  # a difference has twice the residual variance
        samples = {"a": dict(enumerate(a)), "b": dict(enumerate(a + d))}
        hits += compare(samples, ["a", "b"], "maximize", blocked=True).winner
    assert hits / 2000 == pytest.approx(0.80, abs=0.03)


def test_incomplete_blocks_are_left_out_and_too_few_are_none():
    samples = {"a": {0: 1.0, 1: 2.0, 2: 3.0}, "b": {0: 1.5, 1: 2.7}}
    found = compare(samples, ["a", "b"], "maximize", blocked=True)
    assert found.blocks == 2 and set(found.differences[0].per_block) == {0, 1}
    assert compare({"a": {0: 1.0}, "b": {0: 2.0}}, ["a", "b"], "maximize", True) is None
    assert compare({"a": {0: 1.0, 1: 2.0}}, ["a"], "maximize", True) is None
