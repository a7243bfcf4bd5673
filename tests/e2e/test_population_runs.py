"""Populations in a real run: trials started together and trained as one network each keep
their own trial, outcome, folder and heartbeat, and the study its exact count and balance."""

from __future__ import annotations

import json
import sqlite3

import pandas as pd
import pytest
import torch

from vaesweep.errors import VaesweepError
from vaesweep.spec.studies import check_population, load_study, parse_study
from vaesweep.training.device import Compute
from vaesweep.training.population import choose_population, decide_population

from helpers import PRUNABLE_STUDY, run_args, run_each, run_unstable, stored_trials, vaesweep

TIMING = {"seconds", "train_seconds"}
# Members match their solo runs up to float rounding (the trainer's test: 6e-6): here within
# 1e-3, relative or absolute (in nats, for the small KL terms); a k-NN accuracy within one image
# whose nearest neighbours are that close to a tie (of the 100 validation, 200 test images).
TOLERANCE = {"val_knn_accuracy": 0.0101, "test_knn_accuracy": 0.0051, "test_knn_notebook": 0.0051}


def populations(results, name="warmup") -> list[int]:
    return [
        json.loads((results / t.user_attrs["folder"] / "trial.json").read_text())["population"]
        for t in stored_trials(results, name)
        if "folder" in t.user_attrs
    ]


def test_a_population_gives_each_trial_what_it_gets_alone(tmp_path, tiny_data_dir):
    runs = run_each(tmp_path, tiny_data_dir, 3, "--population", ("1", "3"))
    assert populations(runs["1"]) == [1, 1, 1] and populations(runs["3"]) == [3, 3, 3]
    alone, together = stored_trials(runs["1"]), stored_trials(runs["3"])
    assert [t.params for t in alone] == [t.params for t in together]
    for one, member in zip(alone, together, strict=True):
        assert (
            member.state.name == "COMPLETE" and member.user_attrs["seed"] == one.user_attrs["seed"]
        )
        assert member.value == pytest.approx(one.value, rel=1e-4)
        histories = [
            pd.read_csv(r / t.user_attrs["folder"] / "history.csv")
            for r, t in ((runs["1"], one), (runs["3"], member))
        ]
        columns = [c for c in histories[0].columns if c not in TIMING]
        pd.testing.assert_frame_equal(
            histories[0][columns], histories[1][columns], rtol=1e-3, atol=1e-3
        )


def test_a_population_never_starts_more_trials_than_the_study_needs(tmp_path, tiny_data_dir):
    results = tmp_path / "results"
    outcome = vaesweep(*run_args(results, tiny_data_dir, 4, "--population", "3"))
    assert outcome.exit_code == 0, outcome.output
    trials = stored_trials(results)
    assert [t.state.name for t in trials] == ["COMPLETE"] * 4
    assert populations(results) == [3, 3, 3, 1]
    grid = [params["warmup_epochs"] for params in load_study("warmup").grid]
    places = [(t.user_attrs["replicate"], t.params["warmup_epochs"]) for t in trials]
    assert places == [(k // len(grid), grid[k % len(grid)]) for k in range(4)]


def test_every_member_has_its_own_heartbeat(tmp_path, tiny_data_dir, monkeypatch):
    monkeypatch.setenv("VAESWEEP_GRACE_SECONDS", "6")  # a beat a second
    results = tmp_path / "results"
    outcome = vaesweep(*run_args(results, tiny_data_dir, 3, "--population", "3"))
    assert outcome.exit_code == 0, outcome.output
    with sqlite3.connect(results / "vaesweep.db") as db:
        beating = {row[0] for row in db.execute("SELECT trial_id FROM trial_heartbeats")}
    assert beating == {t._trial_id for t in stored_trials(results)}


def test_members_of_different_shapes_train_apart(tmp_path, tiny_data_dir):
    study_file = tmp_path / "shapes.toml"
    study_file.write_text(
        'description = "two latent sizes"\nobjectives = ["val_loss"]\n'
        '[search]\nlatent_dim = { type = "categorical", choices = [2, 3] }\n'
    )
    results = tmp_path / "results"
    args = run_args(results, tiny_data_dir, 2, "--population", "2", study=str(study_file))
    outcome = vaesweep(*args)
    assert outcome.exit_code == 0, outcome.output
    assert [t.state.name for t in stored_trials(results, "shapes")] == ["COMPLETE"] * 2
    assert populations(results, "shapes") == [1, 1]


def test_a_diverging_member_fails_alone(tmp_path, tiny_data_dir, monkeypatch):
    import helpers

    monkeypatch.setattr(helpers, "TINY_SETTINGS", (*helpers.TINY_SETTINGS, "--population", "3"))
    outcome, trials, results = run_unstable(tmp_path, tiny_data_dir, 2, "[2e-3, 10.0]")
    assert outcome.exit_code == 0, outcome.output
    assert [t.state.name for t in trials] == ["COMPLETE", "FAIL", "COMPLETE"]
    assert "diverged: loss became NaN" in trials[1].user_attrs["fail_reason"]
    # Trials 0 and 1 trained together; 2 alone, in the one place left.
    assert populations(results, "unstable") == [2, 1]


def test_a_pruned_member_is_pruned_alone(tmp_path, tiny_data_dir):
    study_file = tmp_path / "prunable.toml"
    study_file.write_text(PRUNABLE_STUDY)
    results = tmp_path / "results"
    # With seed 10 the random sampler draws 2e-3, 1e-7, 2e-3, 1e-7: trials 2 and 3 train
    # together, after 0 and 1 completed, and only 3 is worse than their median, by far (a tie
    # would be broken by float rounding, which a population of another size changes).
    args = run_args(
        results, tiny_data_dir, 4, "--population", "2", "--seed", "10", study=str(study_file)
    )
    outcome = vaesweep(*args)
    assert outcome.exit_code == 0, outcome.output
    trials = stored_trials(results, "prunable")
    assert [t.params["lr"] for t in trials] == [2e-3, 1e-7, 2e-3, 1e-7]
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE", "COMPLETE", "PRUNED"]
    assert "worse than the median" in trials[3].user_attrs["prune_reason"]
    assert populations(results, "prunable") == [2, 2, 2, 2]


@pytest.mark.parametrize("value", [0, 65, -1, 2.5, True, "x", "", [2]])
def test_a_bad_population_is_refused(value):
    with pytest.raises(VaesweepError, match="population must be a whole number from 1 to 64"):
        check_population(value, "here")


def test_a_population_is_how_a_study_runs_not_what_it_is():
    raw = {
        "description": "d",
        "objectives": ["val_loss"],
        "search": {"warmup_epochs": {"type": "int", "low": 0, "high": 1}},
    }
    default = parse_study(raw, "p", "p.toml")
    four = parse_study({**raw, "population": 4}, "p", "p.toml")
    assert (default.population, four.population) == ("auto", 4)
    assert four.definition() == default.definition()  # so a resumed run may change it
    assert check_population("8", "--population") == 8


def test_auto_picks_the_smallest_population_near_the_best_throughput():
    assert choose_population({1: 100.0, 2: 190.0, 4: 330.0, 8: 380.0, 16: 385.0}) == 8
    assert choose_population({1: 100.0, 2: 60.0, 4: 55.0}) == 1
    assert decide_population("auto", Compute(torch.device("cpu"), "fp32"), "mlp", 128)[0] == 1
    assert decide_population(5, Compute(torch.device("cpu"), "fp32"), "mlp", 128) == (5, "")


def test_auto_measures_one_trial_on_its_solo_path_and_sizes_until_memory_runs_out(monkeypatch):
    """A lone trial trains on `train.train`'s path (1.8-2x a population of one on the CPU), so
    that is what size 1 is measured on; sizes stop at the first that does not fit."""
    from vaesweep.training import population, precision

    asked: list[int | str] = []

    def solo(arch, name, channels_last, device, seconds, batch_size):
        asked.append(f"solo {arch} {name} {batch_size}")
        return 100.0

    def batched(arch, size, compute, seconds, batch_size):
        asked.append(size)
        if size >= 8:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return 100.0 * size

    monkeypatch.setattr(precision, "training_throughput", solo)
    monkeypatch.setattr(population, "training_throughput", batched)
    cuda = Compute(torch.device("cuda"), "bf16")
    size, why = decide_population("auto", cuda, "conv", 64)
    assert asked == ["solo conv bf16 64", 2, 4, 8] and size == 4
    assert why == (
        "auto: 4; 4 conv trials at once train 4.0x as many samples/s as one on cuda "
        "(measured 1, 2, 4)"
    )

    def no_room(*args):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(precision, "training_throughput", no_room)
    with pytest.raises(VaesweepError, match="one conv trial at batch size 64 does not fit"):
        decide_population("auto", cuda, "conv", 64)


def test_populations_in_parallel_workers_keep_the_exact_count(tmp_path, tiny_data_dir):
    results = tmp_path / "results"
    args = run_args(results, tiny_data_dir, 5, "--population", "2", "--jobs", "2")
    outcome = vaesweep(*args)
    assert outcome.exit_code == 0, outcome.output
    trials = stored_trials(results)
    assert [t.state.name for t in trials] == ["COMPLETE"] * 5
    assert sorted(populations(results)) == [1, 2, 2, 2, 2]  # the fifth place was the last
    assert len({(t.user_attrs["replicate"], t.params["warmup_epochs"]) for t in trials}) == 5


def test_the_run_says_which_population_auto_chose(tmp_path, tiny_data_dir):
    outcome = vaesweep(*run_args(tmp_path / "results", tiny_data_dir, 1))
    assert outcome.exit_code == 0, outcome.output
    assert "population auto: 1, as populations train slower than single trials on a CPU" in (
        outcome.output
    )
