"""The study's answer: intervals, Welch tests with Holm's correction, and the sentence."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from vaesweep.effects import answer, effects_table, holm, mean_interval


def trials(means: dict[int, float], n: int = 5, spread: float = 0.002, seed: int = 0):
    """n replicates per warm-up value, normally scattered around the given means."""
    rng = np.random.default_rng(seed)
    rows = [
        {"warmup_epochs": value, "val_knn_accuracy": mean + spread * rng.standard_normal()}
        for value, mean in means.items()
        for _ in range(n)
    ]
    return pd.DataFrame(rows)


def test_student_t_interval_of_the_mean():
    mean, sd, low, high = mean_interval(np.array([1.0, 2.0, 3.0]))
    assert (mean, sd) == (2.0, 1.0)
    assert high - mean == pytest.approx(4.302653 / math.sqrt(3), rel=1e-6)  # t(0.975, df=2)
    assert mean - low == pytest.approx(high - mean)
    assert all(math.isnan(v) for v in mean_interval(np.array([5.0]))[1:])


def test_holm_adjusts_step_down_and_stays_monotone():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])


def test_a_large_true_difference_is_called_better():
    table = trials({0: 0.60, 1: 0.70, 2: 0.70}, spread=0.01)
    result = answer(table, ["warmup_epochs"], "val_knn_accuracy", "maximize")
    assert result.best in ("1", "2")
    assert "0" in result.better_than
    assert result.sentence.startswith("best warmup_epochs = ")
    assert "better than 0" in result.sentence and "Holm-corrected" in result.sentence
    assert "(95% CI, n = 5)" in result.sentence


def test_identical_results_are_not_distinguishable():
    table = trials({0: 0.70, 1: 0.70, 2: 0.70}, spread=0.01)
    result = answer(table, ["warmup_epochs"], "val_knn_accuracy", "maximize")
    assert result.better_than == []
    assert result.sentence.startswith("no winner")
    assert "not distinguishable from" in result.sentence and "better" not in result.sentence


def test_a_minimised_objective_picks_the_lowest_mean():
    table = trials({2: 260.0, 8: 250.0}, spread=0.5).rename(
        columns={"warmup_epochs": "latent_dim", "val_knn_accuracy": "val_loss"}
    )
    result = answer(table, ["latent_dim"], "val_loss", "minimize")
    assert result.best == "8" and result.better_than == ["2"]


def test_one_replicate_gives_numbers_but_no_test():
    result = answer(
        trials({0: 0.6, 1: 0.7}, n=1), ["warmup_epochs"], "val_knn_accuracy", "maximize"
    )
    assert "no interval" in result.sentence and "no difference can be tested" in result.sentence


def test_effects_table_has_one_row_per_configuration_and_metric():
    table = trials({0: 0.6, 1: 0.7}, n=4)
    effects = effects_table(table, ["warmup_epochs"], ["val_knn_accuracy"])
    assert list(effects.columns) == [
        "param", "value", "metric", "n", "mean", "sd", "ci_low", "ci_high",
    ]  # fmt: skip
    assert effects["value"].tolist() == ["0", "1"] and effects["n"].tolist() == [4, 4]
    first = table[table["warmup_epochs"] == 0]["val_knn_accuracy"]
    assert effects.loc[0, "mean"] == pytest.approx(first.mean())
    assert effects.loc[0, "sd"] == pytest.approx(first.std())
    assert effects.loc[0, "ci_low"] < effects.loc[0, "mean"] < effects.loc[0, "ci_high"]
