"""The study's answer: intervals, the comparison with the best, and the sentence."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from vaesweep.answer.effects import detectable_differences, effects_table, mean_interval
from vaesweep.answer.effects import objective_answer as answer
from vaesweep.stats import Looks
from vaesweep.stats.pairwise import one_sided_critical


def worse(result) -> list[str]:
    """The configurations the answer claims worse (another configuration is better)."""
    found = result.comparison
    return [d.config for d in found.entries if d.worse] if found else []


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


def test_a_large_true_difference_is_called_worse_and_a_clear_leader_best():
    table = trials({0: 0.60, 1: 0.70, 2: 0.70}, spread=0.01)
    result = answer(table, ["warmup_epochs"], "val_knn_accuracy", "maximize")
    assert result.best in ("1", "2") and worse(result) == ["0"]
    assert not result.shown_best  # 1 and 2 tie: neither is shown better than the other
    assert result.sentence.startswith("no winner: the best is one of warmup_epochs = 1, ")
    assert "worse (another configuration is better): warmup_epochs = 0" in result.sentence
    assert "(Welch t tests: a closed test at 5.00%; MCB intervals, each of 2 comparisons at " in (
        result.sentence
    )
    assert "(95% CI, n = 5, adjusted for choosing the best mean of 3)" in result.sentence
    # The best mean's interval holds for each of the 3 means at once: t at 5% / 3, 4 df.
    values = table[table["warmup_epochs"] == int(result.best)]["val_knn_accuracy"]
    half = 3.960786 * values.std() / math.sqrt(5)  # t(1 - 0.05 / 6, df = 4)
    assert result.half_width == pytest.approx(half, rel=1e-5)
    clear = answer(
        trials({0: 0.60, 1: 0.70, 2: 0.65}, spread=0.01),
        ["warmup_epochs"],
        "val_knn_accuracy",
        "maximize",
    )
    assert clear.shown_best and clear.comparison.winner == clear.best == "1"
    assert clear.sentence.startswith("best warmup_epochs = 1: ")
    assert "better than every other warmup_epochs value (its mean leads by 0.0" in clear.sentence


def test_no_winner_says_what_it_rules_out():
    table = trials({0: 0.70, 1: 0.70, 2: 0.70}, spread=0.01)
    result = answer(table, ["warmup_epochs"], "val_knn_accuracy", "maximize")
    assert worse(result) == [] and not result.shown_best  # nothing is marked best
    found = result.comparison
    behind = max(d.behind for d in found.entries)
    assert behind == max(-d.low for d in found.entries)
    assert result.sentence.startswith("no winner: the best is one of warmup_epochs = 0, ")
    assert "not shown worse: warmup_epochs = 0, warmup_epochs = 1, warmup_epochs = 2, each " in (
        result.sentence
    )
    assert f"within {behind:.2g} of the best" in result.sentence
    winner, worse_one = detectable_differences(found)
    assert (
        f"a configuration {winner:.2g} better than every other would be named the best, and one "
        f"{worse_one:.2g} worse than the rest called worse, each with 80% power"
    ) in result.sentence
    assert winner > 0 and worse_one > 0


def test_a_margin_makes_equal_configurations_equivalent_or_asks_for_replicates():
    table = trials({0: 0.700, 1: 0.700, 2: 0.700}, n=6, spread=0.001, seed=1)
    result = answer(table, ["warmup_epochs"], "val_knn_accuracy", "maximize", margin=0.01)
    assert result.sentence.startswith(
        "equivalent: every configuration is within 0.01 of the best, whichever it is; "
    )
    # The advice counts this look and the next: the study may grow to 20 replicates.
    looks = Looks((), 20)
    tight = answer(
        table, ["warmup_epochs"], "val_knn_accuracy", "maximize", margin=0.0008, looks=looks
    )
    assert tight.comparison.undecided and tight.comparison.more_replicates > 0
    more = tight.comparison.more_replicates
    assert tight.sentence.startswith("no winner: the best is one of ")
    assert f"run about {more} more replicates of each ({3 * more} more trials)" in tight.sentence
    # At that many more, every undecided one's MCB bound (at its own SD, the next look's share
    # of the error after this one, over 2 comparisons) is narrower than its distance to 0 or to
    # the margin; one fewer leaves some undecided.
    found, n, after = tight.comparison, tight.comparison.replicates, Looks((6,), 20)

    def decided(m: int) -> bool:
        def half(d) -> float:
            return one_sided_critical(after.level(m) / 2, m - 1) * d.sd / math.sqrt(m)

        return all(half(d) < max(abs(d.diff), 0.0008 - abs(d.diff)) for d in found.undecided)

    assert decided(n + more) and not decided(n + more - 1)
    # Without a most replicates, growing is not accounted for: no advice to grow.
    fixed = answer(table, ["warmup_epochs"], "val_knn_accuracy", "maximize", margin=0.0008)
    assert fixed.comparison.more_replicates is None


def test_blocks_separate_what_unpaired_replicates_cannot():
    # A shared per-block offset (SD 0.01) five times the noise, and a true effect of 0.004.
    table = trials({0: 0.700, 2: 0.704, 4: 0.700}, n=6, spread=0.001, block_sd=0.01, seed=3)
    paired = answer(table, ["warmup_epochs"], "val_knn_accuracy", "maximize", blocked=True)
    unpaired = answer(table, ["warmup_epochs"], "val_knn_accuracy", "maximize", blocked=False)
    assert paired.best == "2" and worse(paired) == ["0", "4"] and paired.shown_best
    assert "paired t tests within 6 seed blocks: a closed test at 5.00%" in paired.sentence
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
    stored = "param value metric n mean sd ci_low ci_high diff diff_low diff_high p_worse"
    stored += " may_be_best verdict paired failed"
    assert list(effects.columns) == stored.split()
    assert effects["value"].tolist() == ["0", "1"] and effects["n"].tolist() == [4, 4]
    first = table[table["warmup_epochs"] == 0]["val_knn_accuracy"]
    assert effects.loc[0, "mean"] == pytest.approx(first.mean())
    assert effects.loc[0, "sd"] == pytest.approx(first.std())
    assert effects.loc[0, "ci_low"] < effects.loc[0, "mean"] < effects.loc[0, "ci_high"]
    # Each minus the best of the others, paired: with two configurations MCB's bound is the
    # one-sided paired t bound at 5%, cut at 0; the leader's lead is the same gap, reversed.
    assert effects["paired"].all() and effects["verdict"].tolist() == ["worse", "best"]
    d = first.to_numpy() - table[table["warmup_epochs"] == 1]["val_knn_accuracy"].to_numpy()
    half = 2.353363 * d.std(ddof=1) / 2  # t(0.95, df=3) · sd / sqrt(4)
    row = effects.loc[0]
    assert row["diff"] == pytest.approx(d.mean()) and not row["may_be_best"]
    assert (row["diff_low"], row["diff_high"]) == pytest.approx((d.mean() - half, 0.0))
    assert effects.loc[1, "diff"] == pytest.approx(-d.mean()) and effects.loc[1, "may_be_best"]
    assert effects.loc[1, "diff_low"] == 0.0


def test_effects_list_the_objective_first_then_the_other_metrics_in_the_order_given():
    table = trials({0: 0.6, 1: 0.7}, n=3, block_sd=0.05)
    table["test_active_units"] = 2.0  # alphabetically before val_knn_accuracy
    metrics = ["val_knn_accuracy", "test_active_units"]
    effects = effects_table(table, ["warmup_epochs"], metrics)
    assert effects["metric"].tolist() == ["val_knn_accuracy"] * 2 + ["test_active_units"] * 2
    assert effects["value"].tolist() == ["0", "1", "0", "1"]


def test_some_equivalent_and_some_undecided_lead_with_no_winner():
    table = trials({0: 0.700, 2: 0.700, 4: 0.698}, n=10, spread=0.002, seed=0)
    result = answer(
        table,
        ["warmup_epochs"],
        "val_knn_accuracy",
        "maximize",
        margin=0.003,
        looks=Looks((), 20),
    )
    found = result.comparison
    equivalent = [d.config for d in found.entries if d.equivalent]
    undecided = [d.config for d in found.undecided]
    assert equivalent and undecided and set(equivalent) | set(undecided) == {"0", "2", "4"}
    assert result.sentence.startswith("no winner: the best is one of ")
    assert "within 0.003 of the best: " in result.sentence
    assert "undecided: " in result.sentence and "more replicates of each" in result.sentence


SIX = {value: 0.70 for value in range(6)}


def test_an_interval_wider_than_the_metric_says_it_rules_nothing_out():
    # Two replicates of 6 configurations: t with 1 degree of freedom at 5% / 5 comparisons makes
    # the intervals wider than the whole range of an accuracy, 1.
    few = answer(trials(SIX, n=2, spread=0.04), ["warmup_epochs"], "val_knn_accuracy", "maximize")
    bound = max(d.behind for d in few.comparison.entries)
    assert bound > 1
    # The caveat comes before the number it qualifies.
    assert (
        "no difference is ruled out (each within a bound wider than the metric's whole range, "
        f"1: {bound:.2g})"
    ) in few.sentence
    assert "a winner would need to lead by " in few.sentence
    assert "more than the metric's whole range (1), to be named with 80% power" in few.sentence
    # At 5 replicates the same noise gives intervals inside the range: no such words.
    enough = answer(
        trials(SIX, n=5, spread=0.04), ["warmup_epochs"], "val_knn_accuracy", "maximize"
    )
    assert "whole range" not in enough.sentence
    # An unbounded metric (the loss) never says it.
    loss = trials(SIX, n=2, spread=0.04).rename(columns={"val_knn_accuracy": "val_loss"})
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
        f"{result.mean:.4g} (n = 2 is too few: its 95% CI, adjusted for choosing the best mean "
        f"of 6, is wider than the metric's whole range, 1: ± {result.half_width:.2g})"
    ) in result.sentence


def test_a_tuned_configuration_is_named_by_its_compared_value_then_its_tuned_one():
    table = pd.DataFrame(
        {
            "warmup_epochs": v,
            "lr": 0.002 * (1 + v),
            "replicate": r,
            "val_knn_accuracy": 0.6 + 0.01 * r + 0.001 * v,
        }
        for v in (0, 4)
        for r in range(3)
    )
    result = answer(
        table, ["warmup_epochs", "lr"], "val_knn_accuracy", "maximize", blocked=True, tuned=["lr"]
    )
    assert "best mean at warmup_epochs = 4 (tuned lr = 0.01): " in result.sentence
    assert "lr=" not in result.sentence
    assert result.headline.startswith("no winner: the best is one of warmup_epochs = 0 (tuned ")
    assert result.sentence.startswith(result.headline)
    # Untuned, two settings name a configuration together.
    plain = answer(table, ["warmup_epochs", "lr"], "val_knn_accuracy", "maximize", blocked=True)
    assert "(warmup_epochs=4, lr=0.01)" in plain.sentence
