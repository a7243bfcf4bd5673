"""The study's answer: intervals, the comparison with the best, and the sentence."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from vaesweep.report.effects import answer, detectable_differences, effects_table, mean_interval
from vaesweep.stats import Looks
from vaesweep.stats.pairwise import critical


def worse(result) -> list[str]:
    """The configurations the answer claims worse than the best."""
    found = result.comparison
    return [d.config for d in found.differences if d.separated] if found else []


def trials(means: dict[int, float], n: int = 5, spread: float = 0.002, seed: int = 0, block_sd=0.0):
    """n replicates (blocks) per warm-up value, normally scattered around the given means, each
    block shifted by one shared offset."""
    rng = np.random.default_rng(seed)
    offsets = block_sd * rng.standard_normal(n)
    rows = [
        {
            "warmup_epochs": value,
            "replicate": r,
            "val_knn_accuracy": mean + offsets[r] + spread * rng.standard_normal(),
        }
        for value, mean in means.items()
        for r in range(n)
    ]
    return pd.DataFrame(rows)


def test_student_t_interval_of_the_mean():
    mean, sd, low, high = mean_interval(np.array([1.0, 2.0, 3.0]))
    assert (mean, sd) == (2.0, 1.0)
    assert high - mean == pytest.approx(4.302653 / math.sqrt(3), rel=1e-6)  # t(0.975, df=2)
    assert mean - low == pytest.approx(high - mean)
    assert all(math.isnan(v) for v in mean_interval(np.array([5.0]))[1:])


def test_a_large_true_difference_is_called_better():
    table = trials({0: 0.60, 1: 0.70, 2: 0.70}, spread=0.01)
    result = answer(table, ["warmup_epochs"], "val_knn_accuracy", "maximize")
    assert result.best in ("1", "2")
    assert worse(result) == ["0"]
    assert result.sentence.startswith("best warmup_epochs = ") and result.shown_best
    assert "better than warmup_epochs = 0 (by at least 0.0" in result.sentence
    # Unblocked: Welch's t per pair, each at 5% / 3 pairs.
    assert "(Welch t intervals, each at 1.67%: 95% simultaneous over 3 comparisons)." in (
        result.sentence
    )
    assert "(95% CI, n = 5, adjusted for choosing the best of 3)" in result.sentence
    # The best's interval holds for each of the 3 means at once: t at 5% / 3, 4 df.
    values = table[table["warmup_epochs"] == int(result.best)]["val_knn_accuracy"]
    half = 3.960786 * values.std() / math.sqrt(5)  # t(1 - 0.05 / 6, df = 4)
    assert result.half_width == pytest.approx(half, rel=1e-5)


def test_no_winner_says_what_it_rules_out():
    table = trials({0: 0.70, 1: 0.70, 2: 0.70}, spread=0.01)
    result = answer(table, ["warmup_epochs"], "val_knn_accuracy", "maximize")
    assert worse(result) == [] and not result.shown_best  # nothing is marked best
    found = result.comparison
    bound = max(max(abs(d.low), abs(d.high)) for d in found.differences)
    assert result.sentence.startswith(
        f"no winner: every other warmup_epochs value is within {bound:.2g} of the best, "
        f"warmup_epochs = {result.best}: val 5-NN accuracy"
    )
    pair, winner = detectable_differences(found)
    assert (
        f"a pair {pair:.2g} apart would be told apart, and a configuration {winner:.2g} "
        "better than every other would be named the winner, each with 80% power"
    ) in result.sentence
    # A winner must beat both others: each comparison at 90% power, so a larger difference.
    assert winner > pair > 0


def test_a_margin_makes_equal_configurations_equivalent_or_asks_for_replicates():
    table = trials({0: 0.700, 1: 0.700, 2: 0.700}, n=6, spread=0.001, seed=1)
    result = answer(table, ["warmup_epochs"], "val_knn_accuracy", "maximize", margin=0.01)
    assert result.sentence.startswith("equivalent: every other warmup_epochs value is within ±0.01")
    # The advice counts this look and the next: the study may grow to 20 replicates.
    looks = Looks((), 20)
    tight = answer(
        table, ["warmup_epochs"], "val_knn_accuracy", "maximize", margin=0.0008, looks=looks
    )
    assert tight.comparison.undecided and tight.comparison.more_replicates > 0
    more = tight.comparison.more_replicates
    assert tight.sentence.startswith("no winner: every other warmup_epochs value is within ")
    assert f"run about {more} more replicates of each ({3 * more} more trials)" in tight.sentence
    # At that many more, every undecided interval (at its own SD, and the next look's share
    # of the error after this one) is narrower than its distance to 0 or to the margin; one
    # fewer leaves some undecided.
    found, n, after = tight.comparison, tight.comparison.replicates, Looks((6,), 20)

    def decided(m: int) -> bool:
        half = lambda d: critical(after.level(m) / 3, m - 1) * d.sd / math.sqrt(m)  # noqa: E731
        room = lambda d: max(abs(d.diff), 0.0008 - abs(d.diff))  # noqa: E731
        return all(half(d) < room(d) for d in found.undecided)

    assert decided(n + more) and not decided(n + more - 1)
    # Without a most replicates, growing is not accounted for: no advice to grow.
    fixed = answer(table, ["warmup_epochs"], "val_knn_accuracy", "maximize", margin=0.0008)
    assert fixed.comparison.more_replicates is None


def test_blocks_separate_what_unpaired_replicates_cannot():
    # A shared per-block offset (SD 0.01) five times the noise, and a true effect of 0.004.
    table = trials({0: 0.700, 2: 0.704, 4: 0.700}, n=6, spread=0.001, block_sd=0.01, seed=3)
    paired = answer(table, ["warmup_epochs"], "val_knn_accuracy", "maximize", blocked=True)
    unpaired = answer(table, ["warmup_epochs"], "val_knn_accuracy", "maximize", blocked=False)
    assert paired.best == "2" and worse(paired) == ["0", "4"]
    assert "paired t intervals within 6 seed blocks, each at 1.67%" in paired.sentence
    assert worse(unpaired) == [] and unpaired.sentence.startswith("no winner")
    assert paired.comparison.variance_ratio > 20


def test_a_minimised_objective_picks_the_lowest_mean():
    table = trials({2: 260.0, 8: 250.0}, spread=0.5).rename(
        columns={"warmup_epochs": "latent_dim", "val_knn_accuracy": "val_loss"}
    )
    result = answer(table, ["latent_dim"], "val_loss", "minimize")
    assert result.best == "8" and worse(result) == ["2"]
    assert result.sentence.startswith("best latent_dim = 8")


def test_one_replicate_gives_numbers_but_no_test():
    result = answer(
        trials({0: 0.6, 1: 0.7}, n=1), ["warmup_epochs"], "val_knn_accuracy", "maximize"
    )
    assert result.sentence.startswith("best mean at warmup_epochs = 1")
    assert "no interval" in result.sentence and "no difference can be tested" in result.sentence


def test_effects_table_has_one_row_per_configuration_and_metric_with_its_difference():
    table = trials({0: 0.6, 1: 0.7}, n=4, block_sd=0.05)
    effects = effects_table(table, ["warmup_epochs"], ["val_knn_accuracy"], blocked=True)
    # effects.csv's columns, a stored format: written out here, not read from the code.
    stored = "param value metric n mean sd ci_low ci_high best diff diff_low diff_high paired"
    stored += " failed"
    assert list(effects.columns) == stored.split()
    assert effects["value"].tolist() == ["0", "1"] and effects["n"].tolist() == [4, 4]
    first = table[table["warmup_epochs"] == 0]["val_knn_accuracy"]
    assert effects.loc[0, "mean"] == pytest.approx(first.mean())
    assert effects.loc[0, "sd"] == pytest.approx(first.std())
    assert effects.loc[0, "ci_low"] < effects.loc[0, "mean"] < effects.loc[0, "ci_high"]
    # The difference from the best, paired: with two configurations, the paired t interval.
    assert effects["best"].tolist() == ["1", "1"] and effects["paired"].all()
    d = first.to_numpy() - table[table["warmup_epochs"] == 1]["val_knn_accuracy"].to_numpy()
    half = 3.182446 * d.std(ddof=1) / 2  # t(0.975, df=3) · sd / sqrt(4)
    row = effects.loc[0]
    assert row["diff"] == pytest.approx(d.mean())
    assert (row["diff_low"], row["diff_high"]) == pytest.approx((d.mean() - half, d.mean() + half))
    assert effects.loc[1, ["diff", "diff_low", "diff_high"]].tolist() == [0.0, 0.0, 0.0]


def test_effects_list_the_objective_first_then_the_other_metrics_in_the_order_given():
    table = trials({0: 0.6, 1: 0.7}, n=3, block_sd=0.05)
    table["test_active_units"] = 2.0  # alphabetically before val_knn_accuracy
    metrics = ["val_knn_accuracy", "test_active_units"]
    effects = effects_table(table, ["warmup_epochs"], metrics, objectives=metrics[:1])
    assert effects["metric"].tolist() == ["val_knn_accuracy"] * 2 + ["test_active_units"] * 2
    assert effects["value"].tolist() == ["0", "1", "0", "1"]


def test_some_equivalent_and_some_undecided_lead_with_no_winner():
    table = trials({0: 0.700, 2: 0.700, 4: 0.698}, n=10, spread=0.002, seed=0)
    result = answer(
        table,
        ["warmup_epochs"],
        "val_knn_accuracy",
        "maximize",
        margin=0.0035,
        looks=Looks((), 20),
    )
    found = result.comparison
    assert [d.config for d in found.differences if d.equivalent] == ["0"]
    assert [d.config for d in found.undecided] == ["4"]
    assert result.sentence.startswith("no winner: the best mean, warmup_epochs = 2: ")
    assert (
        "; equivalent within ±0.0035: warmup_epochs = 0; undecided: warmup_epochs = 4, within "
        in result.sentence
    )
    assert "run about 6 more replicates of each (18 more trials) to decide" in result.sentence


SIX = {value: 0.70 for value in range(6)}


def test_an_interval_wider_than_the_metric_says_it_rules_nothing_out():
    # Two replicates of 6 configurations: t with 1 degree of freedom at 5% / 15 pairs makes the
    # intervals wider than the whole range of an accuracy, 1.
    few = answer(trials(SIX, n=2, spread=0.02), ["warmup_epochs"], "val_knn_accuracy", "maximize")
    bound = max(d.bound for d in few.comparison.differences)
    assert bound > 1
    assert (
        f"within {bound:.2g} of the best (wider than the metric's whole range, 1: no difference "
        "is ruled out), warmup_epochs = "
    ) in few.sentence
    assert "a pair would need to be " in few.sentence
    assert "apart, more than the metric's whole range (1), to be told apart with 80% power" in (
        few.sentence
    )
    # At 5 replicates the same noise gives intervals inside the range: no such words.
    enough = answer(
        trials(SIX, n=5, spread=0.02), ["warmup_epochs"], "val_knn_accuracy", "maximize"
    )
    assert "whole range" not in enough.sentence
    # An unbounded metric (the loss) never says it.
    loss = trials(SIX, n=2, spread=0.02).rename(columns={"val_knn_accuracy": "val_loss"})
    assert "whole range" not in answer(loss, ["warmup_epochs"], "val_loss", "minimize").sentence


def test_a_mean_interval_wider_than_the_metric_says_so():
    # Each configuration's two replicates 0.2 apart: the best's interval, t(1 - 0.05/12, 1 df)
    # times 0.1, is far wider than 1.
    table = pd.DataFrame(
        {"warmup_epochs": v, "replicate": r, "val_knn_accuracy": 0.6 + 0.2 * r + 0.001 * v}
        for v in range(6)
        for r in range(2)
    )
    result = answer(table, ["warmup_epochs"], "val_knn_accuracy", "maximize")
    assert 2 * result.half_width > 1
    assert (
        f"± {result.half_width:.2g} (95% CI, n = 2, adjusted for choosing the best of 6; wider "
        "than the metric's whole range, 1)"
    ) in result.sentence
