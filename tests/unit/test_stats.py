"""The answer's statistics (vaesweep.stats): its error rate where real studies break the
textbook's assumptions, its power, its numbers against scipy's and statsmodels' own tests, the
closed test's shortcut against the closed test itself, and what the public function refuses."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats
from stat_scenarios import (
    POWER_CASES,
    SCENARIOS,
    Scenario,
    claims,
    earlier_power,
    false_claim_rate,
    optional_stopping_rate,
    power,
)
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.weightstats import ttost_paired

from vaesweep import stats
from vaesweep.stats import compare_samples
from vaesweep.stats.between import Best, compare_bests
from vaesweep.stats.pairwise import pairs, scores
from vaesweep.stats.power import _closed, detectable
from vaesweep.stats.sequential import look_level, spent
from vaesweep.stats.verdicts import closed_test, holm

STUDIES = 2000


def _samples(values: np.ndarray, blocks: int | None = None) -> dict[str, dict[int, float]]:
    b = values.shape[1] if blocks is None else blocks
    return {str(c): {j: float(values[c, j]) for j in range(b)} for c in range(len(values))}


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_false_claims_stay_within_5_percent_where_the_textbook_breaks(scenario):
    rate = false_claim_rate(scenario, STUDIES, seed=20261207)
    assert rate <= 0.06, f"{scenario.name}: {rate:.3f}"


def test_looking_after_every_block_and_stopping_at_a_claim_stays_within_5_percent():
    """A study that grows after its answer was shown: looks at every block from 3 to 20
    (max_blocks = 20), stopping at the first claim."""
    s = Scenario("growing 3 × b", 3, 20)
    assert optional_stopping_rate(s, STUDIES, seed=8) <= 0.06
    # Without spending the error across looks, the same stopping rule claims far more often.
    rng, hits = np.random.default_rng(8), 0
    for _ in range(300):
        values = s.values(rng)[0]
        hits += any(
            any(
                d.worse
                for d in compare_samples(_samples(values, n), list("012"), "maximize", True).entries
            )
            for n in range(3, 21)
        )
    assert hits / 300 > 0.10


def test_a_study_that_picked_its_best_is_not_favoured_against_another():
    """`vaesweep compare`: the best of five configurations against a study of one, equal in
    truth; and two studies of different noise, which a pooled variance would mix."""
    rng = np.random.default_rng(5)
    claims = {"5 × 3 vs 1 × 3": 0, "5 × 6 vs 1 × 6": 0, "3 × 10 at SD 1 vs 3 × 3 at SD 2": 0}
    for _ in range(STUDIES):
        for b in (3, 6):
            five, one = rng.standard_normal((5, b)), rng.standard_normal(b)
            best = Best("a", dict(enumerate(five[np.argmax(five.mean(axis=1))])), 5)
            found, family = compare_bests([best, Best("b", dict(enumerate(one)), 1)])
            claims[f"5 × {b} vs 1 × {b}"] += found[0].separated
        quiet, loud = rng.standard_normal((3, 10)), 2 * rng.standard_normal((3, 3))
        first = Best("a", dict(enumerate(quiet[np.argmax(quiet.mean(axis=1))])), 3)
        # Seeds apart: the second study's trials never share the first's seeds.
        second = Best("b", {100 + j: v for j, v in enumerate(loud[np.argmax(loud.mean(1))])}, 3)
        claims["3 × 10 at SD 1 vs 3 × 3 at SD 2"] += compare_bests([first, second])[0][0].separated
    assert family == 5
    for name, count in claims.items():
        assert count / STUDIES <= 0.06, name


def test_the_power_given_back_against_the_procedure_before():
    """A closed step-down and MCB, against Bonferroni over every pair with two-sided
    intervals, on the same draws (1,000 studies a case; BENCHMARKS.md has 2,000)."""
    cases = {name: (s, target, worse_one) for name, s, target, worse_one in POWER_CASES}
    s, target, _ = cases["5 × 6, one 3 SD better"]
    now, before = power(s, 1000, 3, target), earlier_power(s, 1000, 3, target)
    assert now.winner >= 0.53 and now.winner > before.winner + 0.2
    assert now.alone >= 0.75  # the confidence set holds the winner alone
    s, target, worse_one = cases["5 × 6, one 2 SD worse"]
    now, before = power(s, 1000, 3, target, worse_one), earlier_power(s, 1000, 3, target, worse_one)
    assert now.worse >= 0.60 and now.worse > before.worse + 0.1
    s, target, _ = cases["5 × 6, one 1 SD better"]
    assert power(s, 1000, 3, target).kept >= 0.95  # the best stays in the set


def test_paired_and_welch_p_values_are_scipys_one_sided_tests():
    rng = np.random.default_rng(1)
    values = rng.normal(size=(4, 6)) * [[1], [2], [1], [3]] + rng.normal(0, 2, 6)
    found = pairs(scores(_samples(values), list("0123"), -1.0, True))
    for i, j in itertools.permutations(range(4), 2):
        test = scipy_stats.ttest_rel(values[j], values[i], alternative="greater")
        assert found.p_better[i, j] == pytest.approx(test.pvalue, rel=1e-9)
    groups = [rng.normal(m, sd, n) for m, sd, n in ((0, 1, 5), (1, 3, 6), (0.5, 1, 4))]
    samples = {str(c): dict(enumerate(g.tolist())) for c, g in enumerate(groups)}
    found = pairs(scores(samples, list("012"), -1.0, False))
    for i, j in itertools.permutations(range(3), 2):
        test = scipy_stats.ttest_ind(groups[j], groups[i], equal_var=False, alternative="greater")
        assert found.p_better[i, j] == pytest.approx(test.pvalue, rel=1e-9)


def _brute_force_closed_test(p_better: np.ndarray, level: float) -> np.ndarray:
    """Every intersection H_I tested by Bonferroni over the |I| (k - 1) one-sided tests "some
    j is better than i", i in I; H_i rejected when every H_I containing i is."""
    k = len(p_better)
    rejected_sets = {
        subset: min(p_better[i, j] for i in subset for j in range(k) if j != i)
        <= level / (len(subset) * (k - 1))
        for size in range(1, k + 1)
        for subset in itertools.combinations(range(k), size)
    }
    return np.array(
        [
            all(rejected for subset, rejected in rejected_sets.items() if i in subset)
            for i in range(k)
        ]
    )


def test_the_holm_shortcut_is_the_closed_test_itself():
    rng = np.random.default_rng(2)
    decided = 0
    for _ in range(300):
        k = int(rng.integers(2, 6))
        values = rng.normal(size=(k, 6)) + rng.normal(0, 1.5, (k, 1)) + rng.normal(0, 3, 6)
        p = pairs(scores(_samples(values), [str(c) for c in range(k)], -1.0, True)).p_better
        rejected, _ = closed_test(p, 0.05)
        assert (rejected == _brute_force_closed_test(p, 0.05)).all()
        decided += rejected.any()
    assert 30 < decided < 270  # both outcomes were checked


def test_several_objectives_are_closed_as_one_family():
    """Holm over the m x k hypotheses: each p_worse is statsmodels' Holm over every
    configuration's p of every objective, and "worse" is p_worse at most 5%."""
    rng = np.random.default_rng(7)
    s = Scenario("two", 4, 6, objectives=2, effect={0: 2.5})
    decided = 0
    for _ in range(10):
        found = claims(s, s.values(rng))
        every = [d for c in found for d in c.entries]
        expected = multipletests([d.p_each for d in every], method="holm")[1]
        assert [d.p_worse for d in every] == pytest.approx(expected)
        assert [d.worse for d in every] == [p <= 0.05 for p in expected]
        for c in found:
            assert c.winner == ("0" if sum(d.worse for d in c.entries) == 3 else None)
        decided += sum(d.worse for d in every)
    assert decided > 0


def test_holm_is_statsmodels_holm():
    rng = np.random.default_rng(3)
    for _ in range(10):  # statsmodels collects garbage on every call: a few suffice
        p = rng.random(int(rng.integers(1, 9))) ** 3
        assert holm(p) == pytest.approx(multipletests(p, method="holm")[1])


def test_the_simulations_closed_test_is_the_shipped_one():
    """`vaesweep studies` and "detects" simulate the closed test vectorized; it decides as the
    answer's own does, blocked and unblocked."""
    rng = np.random.default_rng(4)
    for blocked in (True, False):
        values = rng.normal(size=(200, 4, 5))
        values[:, 1] += 1.5
        fast = _closed(values, blocked, 0.05)
        for s in range(200):
            found = compare_samples(_samples(values[s]), list("0123"), "maximize", blocked)
            assert [d.worse for d in found.entries] == fast[s].tolist()


def test_what_a_winner_needs_is_named_with_80_percent_power():
    """The detectable winner's lead, put into the answer's own procedure, is named the best in
    80% of fresh studies (1,000), at a fixed-size look and at a first look's share."""
    for looks in (stats.Looks(), stats.Looks((), 12)):  # 6 blocks of 12: spent(0.5)
        delta = detectable(1.0, 5, 6, True, looks.level(6))["winner"]
        s = Scenario("winner", 5, 6, effect={2: delta})
        rng, named = np.random.default_rng(12), 0
        for _ in range(1000):
            values = _samples(s.values(rng)[0])
            found = compare_samples(values, list("01234"), "maximize", True, looks=looks)
            named += found.winner == "2"
        assert named / 1000 == pytest.approx(0.80, abs=0.04)


def test_two_configurations_decide_as_one_sided_t_tests_and_tost():
    """With two configurations the closed test is the paired t test at 5% two-sided (both
    directions are errors while they tie), the confidence set for the best drops one when the
    one-sided test at 5% does, and 'equivalent within ±m' for both is statsmodels' paired TOST
    at 5%."""
    rng = np.random.default_rng(3)
    seen = set()
    for _ in range(60):
        a = rng.normal(0, 1, 8)
        b = a + rng.normal(rng.uniform(-0.6, 0.6), 0.3, 8)
        found = compare_samples(
            {"a": dict(enumerate(a)), "b": dict(enumerate(b))}, ["a", "b"], "maximize", True, 0.5
        )
        entry = {d.config: d for d in found.entries}
        b_better = scipy_stats.ttest_rel(b, a, alternative="greater").pvalue
        a_better = scipy_stats.ttest_rel(a, b, alternative="greater").pvalue
        assert entry["a"].worse == (b_better <= 0.025) and entry["b"].worse == (a_better <= 0.025)
        assert entry["a"].may_be_best == (b_better > 0.05)
        both = entry["a"].equivalent and entry["b"].equivalent
        assert both == (ttost_paired(b, a, -0.5, 0.5)[0] < 0.05)
        seen |= {d.verdict for d in found.entries}
    assert {"best", "worse", "equivalent", "undecided"} <= seen


def test_mcb_intervals_follow_hsus_definition():
    """Each configuration's interval for its mean minus the best of the others: the upper end
    min_j (m_i - m_j + d se_ij), 0 at least; the lower end min over the others in the set of
    (m_i - m_j - d se_ij), 0 at most, and exactly 0 for a configuration alone in the set."""
    rng = np.random.default_rng(6)
    values = rng.normal(size=(4, 8)) + np.array([[0], [0.2], [1.5], [0.3]]) + rng.normal(0, 2, 8)
    found = compare_samples(_samples(values), list("0123"), "maximize", True)
    d = scipy_stats.t.isf(0.05 / 3, 7)
    diffs = {(i, j): values[i] - values[j] for i in range(4) for j in range(4) if i != j}
    upper = {
        i: min(x.mean() + d * x.std(ddof=1) / math.sqrt(8) for (a, _), x in diffs.items() if a == i)
        for i in range(4)
    }
    member = [i for i in range(4) if upper[i] > 0]
    for entry in found.entries:
        i = int(entry.config)
        assert entry.high == pytest.approx(max(upper[i], 0.0))
        assert entry.may_be_best == (i in member)
        others = [diffs[i, j] for j in member if j != i]
        expected = min((x.mean() - d * x.std(ddof=1) / math.sqrt(8) for x in others), default=0)
        assert entry.low == pytest.approx(0.0 if member == [i] else min(expected, 0.0))
        assert entry.low <= 0 <= entry.high


def test_a_failure_ranks_below_every_completed_value_of_its_block():
    """Not tied with the worst: just below it (a millionth of the widest gap between two
    completed trials of a block), so with two configurations a failed block is a loss, never a
    difference of 0."""
    samples = {
        "a": {0: 1.0, 1: 2.0, 2: 3.0, 3: 4.0},
        "b": {0: 1.1, 1: math.nan, 2: 3.05, 3: math.nan},  # failed in blocks 1 and 3
        "c": {0: 0.9, 1: 1.9, 2: 2.9, 3: 3.9},
    }
    found = compare_samples(samples, ["a", "b", "c"], "maximize", True)
    assert found.failures == {"a": 0, "b": 2, "c": 0}
    gap = 0.2e-6  # block 0: 1.1 - 0.9, the widest
    assert found.scores["b"].tolist() == pytest.approx([1.1, 1.9 - gap, 3.05, 3.9 - gap], abs=1e-12)
    assert found.scores["b"][1] < 1.9 and found.scores["b"][3] < 3.9
    assert found.highest == "a"
    # Minimized, the failure is above every completed value instead.
    lower = compare_samples(samples, ["a", "b", "c"], "minimize", True)
    assert lower.scores["b"][1] > 2.0 and lower.scores["b"][3] > 4.0
    two = {"a": {0: 1.0, 1: 2.0, 2: 3.0}, "b": {0: 1.2, 1: math.nan, 2: 2.9}}
    per_block = compare_samples(two, ["a", "b"], "maximize", True).entries[1].per_block
    assert -1e-6 < per_block[1] < 0  # lost, not tied
    every = {"a": {0: math.nan, 1: math.nan}, "b": {0: math.nan, 1: math.nan}}
    assert compare_samples(every, ["a", "b"], "maximize", True) is None  # nothing to compare


def test_each_look_spends_its_share_and_the_design_keeps_most():
    assert look_level(10, (), None, 0.05) == 0.05  # a fixed-size analysis
    assert look_level(10, (), 20, 0.05) == pytest.approx(spent(0.5, 0.05))
    assert spent(0.5, 0.05) >= 0.75 * 0.05  # the design's look, at the default max_blocks
    assert look_level(20, (10,), 20, 0.05) == pytest.approx(0.05 - spent(0.5, 0.05))
    assert look_level(10, (10,), 20, 0.05) == look_level(10, (), 20, 0.05)  # the same look
    assert look_level(25, (20,), 20, 0.05) == 0  # past max_blocks: nothing is left
    assert sum(look_level(n, range(2, n), 20, 0.05) for n in range(2, 21)) == pytest.approx(0.05)
    # The previous shape (gamma = 1) spent no more at any fraction: earlier looks stay within.
    for t in np.linspace(0, 1, 21):
        assert 0.05 * (1 - math.exp(-t)) / (1 - math.exp(-1)) <= spent(t, 0.05) + 1e-12


def _table(rng=None) -> pd.DataFrame:
    rng = rng or np.random.default_rng(6)
    return pd.DataFrame(
        [
            {
                "lr": lr,
                "replicate": r,
                "acc": 0.7 + 0.05 * (lr == 1e-3) + 0.01 * r + rng.normal(0, 0.001),
                "ssim": 0.5 + 0.02 * r + rng.normal(0, 0.01),
            }
            for r in range(4)
            for lr in (1e-3, 1e-4)
        ]
    )


def test_the_public_compare_takes_a_trials_table():
    table = _table()
    found = stats.compare(table, "lr", ["acc", "ssim"], ["maximize", "maximize"])
    assert list(found.columns) == ["lr", *stats.COLUMNS]
    acc = found[found["objective"] == "acc"].set_index("lr")
    assert acc.loc[1e-3, "verdict"] == "best" and acc.loc[1e-4, "verdict"] == "worse"
    assert acc.loc[1e-4, "diff"] == pytest.approx(-0.05, abs=0.003)
    assert acc.loc[1e-3, "diff"] == pytest.approx(0.05, abs=0.003)  # the leader's lead
    assert list(acc["may_be_best"]) == [False, True]
    # Two objectives share the 5% (Bonferroni) and Holm's first step over two configurations
    # halves it again: p_worse is the one-sided paired p-value times 4, compared with 5%.
    d = table[table.lr == 1e-3]["acc"].to_numpy() - table[table.lr == 1e-4]["acc"].to_numpy()
    p = scipy_stats.ttest_1samp(d, 0, alternative="greater").pvalue
    assert acc.loc[1e-4, "p_worse"] == pytest.approx(min(1, 4 * p))
    ssim = found[found["objective"] == "ssim"]
    assert set(ssim["verdict"]) == {"no difference"} and ssim["may_be_best"].all()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.assign(lr=t["lr"].where(t.index != 0)), "column 'lr' has a missing"),
        (
            lambda t: t.assign(replicate=t["replicate"].astype(float).where(t.index != 0)),
            "column 'replicate' has a missing",
        ),
        (lambda t: t.assign(acc=t["acc"].where(t.index != 0, math.inf)), "'acc' has an infinite"),
        (lambda t: t.assign(acc=t["acc"] * 1e308), "'acc' has values too large"),
        (lambda t: t.assign(acc="x"), "'acc' is not numeric"),
        (lambda t: pd.concat([t, t.iloc[:1]]), "two rows in one 'replicate'"),
    ],
)
def test_the_public_compare_refuses_a_table_it_cannot_answer(change, message):
    with pytest.raises(ValueError, match=message):
        stats.compare(change(_table()), "lr", "acc")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"margin": math.nan}, "margin for 'acc' must be a positive number"),
        ({"margin": -0.1}, "margin for 'acc' must be a positive number"),
        ({"margin": {"acc": 0}}, "margin for 'acc' must be a positive number"),
        ({"max_blocks": 0}, "max_blocks must be a whole number >= 2"),
        ({"max_blocks": 2.5}, "max_blocks must be a whole number >= 2"),
        ({"max_blocks": 10, "looks": [-1, 4]}, "whole numbers >= 1"),
        ({"max_blocks": 10, "looks": [4, 100]}, "a look at 100 blocks is past"),
        ({"looks": [4]}, "looks need max_blocks"),
        ({"direction": "up"}, "direction must be"),
        ({"block": "seed"}, "no column 'seed'"),
    ],
)
def test_the_public_compare_refuses_settings_it_cannot_use(settings, message):
    with pytest.raises(ValueError, match=message):
        stats.compare(_table(), "lr", "acc", **settings)


def test_a_minimised_objective_with_growth_gives_whole_answers():
    """direction="minimize" and looks: every row has a verdict and finite bounds."""
    found = stats.compare(_table(), "lr", "acc", "minimize", max_blocks=8, looks=[2, 2, 3])
    assert found["verdict"].notna().all()
    assert np.isfinite(found[["diff_low", "diff_high", "p_worse"]].to_numpy(dtype=float)).all()
    assert found.set_index("lr").loc[1e-4, "may_be_best"]  # the lower accuracy, minimized


def test_the_documented_example_runs_and_says_what_it_shows(capsys):
    docs = (Path(__file__).resolve().parents[2] / "docs" / "studies.md").read_text()
    code = docs.split("### `vaesweep.stats.compare`\n\n```python\n")[1].split("```")[0]
    namespace: dict = {}
    exec(code, namespace)
    answer = namespace["answer"]
    printed = capsys.readouterr().out
    assert "verdict" in printed and "may_be_best" in printed
    verdicts = dict(zip(answer["warmup_epochs"], answer["verdict"], strict=True))
    # Warm-up 0 trails by 0.085 on every block: worse. 2 and 4 are 0.0025 apart; 4 blocks
    # bound each within ±0.02 of the best, whichever it is.
    assert verdicts == {0: "worse", 2: "equivalent", 4: "equivalent"}
    assert list(answer["may_be_best"]) == [False, True, True]


def test_no_noise_claims_nothing_from_a_constant_gap():
    """A 5-NN accuracy moves in steps: two blocks may differ by the same step by coincidence,
    which leaves no noise to test against, so no claim; identical values are no difference."""
    gap = {"a": {0: 0.70, 1: 0.71}, "b": {0: 0.69, 1: 0.70}, "c": {0: 0.70, 1: 0.71}}
    found = compare_samples(gap, ["a", "b", "c"], "maximize", True, margin=0.05)
    by = {d.config: d for d in found.entries}
    assert found.highest == "a" and found.winner is None
    assert by["b"].verdict == "undecided" and not by["b"].worse and math.isinf(by["b"].behind)
    # c equals a, but b, never ruled out, has no noise to bound c's distance from it by.
    assert by["c"].may_be_best and by["a"].may_be_best and by["c"].low == -math.inf
