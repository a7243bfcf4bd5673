"""Nuisance hyperparameters tuned for each compared value: the design, the answer and the edge
warning, through the real study, design, storage and answer code. A synthetic response surface
stands in for training where the test needs known best learning rates."""

from __future__ import annotations

import json
import math
import re
import tomllib

import numpy as np
import optuna
import pytest

from vaesweep import results
from vaesweep.errors import VaesweepError
from vaesweep.run import objective
from vaesweep.run.places import best_point
from vaesweep.spec.search_space import ParamSpec
from vaesweep.spec.studies import parse_study
from vaesweep.training.model import build_model
from vaesweep.training.train import TrainResult

from helpers import TINY_SETTINGS, stored_trials, vaesweep

LR = ParamSpec("lr", "float", low=5e-4, high=1.6e-2, log=True)
POINTS = LR.points(5)  # 5e-4, 1.19e-3, 2.83e-3, 6.73e-3, 1.6e-2
# Each warm-up's best learning rate and its peak 5-NN accuracy: warm-up 4 is the better one,
# at a learning rate four times warm-up 0's.
BEST = {0: (POINTS[1], 0.70), 4: (POINTS[3], 0.72)}
STUDY = """description = "synthetic: each warm-up has its own best learning rate"
objectives = ["val_knn_accuracy"]
replicates = {replicates}
equivalence = 0.005
{extra}
[search]
warmup_epochs = {{ type = "int", low = 0, high = 4, step = 4 }}
[fixed]
iwae_samples = 0
{fixed}
"""


def surface(warmup: int, lr: float, seed: int) -> float:
    """A peak per warm-up, falling with the squared log distance from its best lr, plus noise:
    a part its seed block shares (as a block's initial weights are) and a part of its own."""
    best_lr, peak = BEST[warmup]
    shared = np.random.default_rng(seed).normal(0, 0.002)
    own = np.random.default_rng([seed, warmup, round(lr * 1e6)]).normal(0, 0.002)
    return peak - 0.02 * math.log(lr / best_lr) ** 2 + shared + own


@pytest.fixture
def synthetic(monkeypatch):
    """Training replaced by an untrained network, and the objective by `surface`."""
    real_evaluate = objective.evaluate

    def train(config, splits, compute, on_epoch):
        model = build_model(config.arch, config.latent_dim, seed=config.seed)
        record = {"epoch": 0, "beta": 1.0, "lr": config.lr, "loss": 1.0, "val_elbo": 1.0}
        return TrainResult(model.eval(), [record], 0, "max_epochs")

    def evaluate(model, splits, config, compute, progress):
        metrics, means = real_evaluate(model, splits, config, compute, progress)
        value = surface(config.warmup_epochs, config.lr, config.seed)
        return {**metrics, "val_knn_accuracy": value}, means

    monkeypatch.setattr(objective, "train", train)
    monkeypatch.setattr(objective, "evaluate", evaluate)


def write_study(tmp_path, name: str, extra: str = "", fixed: str = "", replicates=4) -> str:
    path = tmp_path / f"{name}.toml"
    path.write_text(STUDY.format(extra=extra, fixed=fixed, replicates=replicates))
    return str(path)


def run(tmp_path, data_dir, study: str, trials: int, *extra: str):
    args = ["run", "--study", study, "--trials", str(trials), "--results", str(tmp_path / "r")]
    outcome = vaesweep(*args, "--data-dir", str(data_dir), *TINY_SETTINGS, *extra)
    assert outcome.exit_code == 0, outcome.output
    return outcome


TUNED = '[nuisance]\nlr = { type = "float", low = 5e-4, high = 1.6e-2, log = true }\n'


def test_tuning_spreads_points_over_the_range_both_ends_included():
    assert POINTS == (5e-4, 0.00119, 0.00283, 0.00673, 1.6e-2)
    assert ParamSpec("e", "int", low=0, high=10).points(3) == (0, 5, 10)
    assert ParamSpec("l", "categorical", choices=("mse", "bce")).points(5) == ("mse", "bce")
    assert [LR.position(v) for v in (POINTS[0], POINTS[-1])] == [0.0, 1.0]


def test_a_fixed_lr_ranks_the_warmups_wrongly_and_a_tuned_design_rightly(
    tmp_path, tiny_data_dir, synthetic
):
    fixed = write_study(tmp_path, "fixed", fixed=f"lr = {POINTS[1]}")
    answer = run(tmp_path, tiny_data_dir, fixed, 8).output
    assert "best warmup_epochs = 0: val 5-NN accuracy" in answer  # the lr suits warm-up 0

    tuned = write_study(tmp_path, "warmup-tuned", extra=f"tune = 5\n{TUNED}")
    answer = run(tmp_path, tiny_data_dir, tuned, 18).output
    assert f"best warmup_epochs = 4 (tuned lr = {POINTS[3]:.4g}): val 5-NN accuracy" in answer
    assert "of its range" not in answer
    both = vaesweep("compare", "fixed", "warmup-tuned", "--results", str(tmp_path / "r"))
    assert f"lr: {POINTS[1]:g} (fixed), tuned per configuration (warmup-tuned)" in both.output

    table = results.trials("warmup-tuned", results=tmp_path / "r")
    tuning, confirmed = table[table["phase"] == "tune"], table[table["phase"] == "confirm"]
    assert len(tuning) == 10 and not tuning["in_answer"].any()  # explorations never answer
    assert confirmed["in_answer"].all() and len(confirmed) == 8
    chosen = confirmed.groupby("warmup_epochs")["lr"].unique().map(list).to_dict()
    assert chosen == {0: [POINTS[1]], 4: [POINTS[3]]}
    seeds: dict[str, set[int]] = {"tune": set(), "confirm": set()}
    for trial in stored_trials(tmp_path / "r", "warmup-tuned"):
        seeds[trial.user_attrs["phase"]].add(trial.user_attrs["seed"])
    # One seed block of tuning; four fresh blocks of confirmation.
    assert len(seeds["tune"]) == 1 and len(seeds["confirm"]) == 4
    assert not seeds["tune"] & seeds["confirm"]


def test_a_chosen_value_at_the_edge_of_its_range_is_warned(tmp_path, tiny_data_dir, synthetic):
    narrow = TUNED.replace("high = 1.6e-2", f"high = {POINTS[2]}")
    note = 'note = "tuned: each warm-up at its own lr"\n'
    study = write_study(tmp_path, "edge", extra=f"{note}tune = 3\n{narrow}")
    lines = run(tmp_path, tiny_data_dir, study, 14).output.splitlines()
    warned = [line for line in lines if "of its range" in line]
    assert warned == [
        f"warning: lr for warmup_epochs = 4 is at the top of its range ({POINTS[2]:g}; chosen "
        f"{POINTS[2]:.3g}): widen the range"
    ]
    page = vaesweep("report", "--results", str(tmp_path / "r"), "--data-dir", str(tiny_data_dir))
    assert page.exit_code == 0, page.output
    html = (tmp_path / "r" / "report" / "index.html").read_text()
    assert "is at the top of its range" in html and "edge/tuning-lr.png" in html
    assert "<b>Note:</b> tuned: each warm-up at its own lr" in html


def test_a_resumed_tuned_study_continues_where_it_stopped_and_two_workers_agree(
    tmp_path, tiny_data_dir
):
    tuned = f"tune = 2\ntune_replicates = 2\n{TUNED}"  # 2 x 2 points x 2 blocks, then 2 x 1
    study = write_study(tmp_path, "resumed", extra=tuned, replicates=1)
    places = {}
    for jobs, steps in (("1", (3, 10)), ("2", (10,))):
        folder = tmp_path / f"jobs{jobs}"
        for trials in steps:
            outcome = vaesweep(
                "run", "--study", study, "--trials", str(trials), "--results", str(folder),
                "--data-dir", str(tiny_data_dir), *TINY_SETTINGS, "--set", "epochs=1",
                "--jobs", jobs,
            )  # fmt: skip
            assert outcome.exit_code == 0, outcome.output
        trials = stored_trials(folder, "resumed")
        assert all(t.state.name == "COMPLETE" for t in trials)
        places[jobs] = sorted(
            (t.user_attrs["phase"], t.user_attrs["replicate"], sorted(t.params.items()))
            for t in trials
        )
    assert places["1"] == places["2"] and len(places["1"]) == 10
    tuning = [p for p in places["1"] if p[0] == "tune"]
    assert sorted({p[1] for p in tuning}) == [0, 1] and len(tuning) == 8


def test_a_configuration_is_confirmed_at_the_best_mean_of_its_tuning_blocks():
    def tuned(lr: float, value: float):
        return optuna.trial.create_trial(
            params={"warmup_epochs": 0, "lr": lr},
            distributions={
                "warmup_epochs": optuna.distributions.IntDistribution(0, 4),
                "lr": optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True),
            },
            value=value,
        )

    # 1e-3 has the single best trial, 2e-3 the better mean over the two blocks.
    blocks = [tuned(1e-3, 0.70), tuned(1e-3, 0.60), tuned(2e-3, 0.66), tuned(2e-3, 0.66)]
    assert best_point(blocks, ["maximize"]) == [{"warmup_epochs": 0, "lr": 2e-3}]
    assert best_point(blocks[:1] + blocks[2:3], ["maximize"]) == [{"warmup_epochs": 0, "lr": 1e-3}]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("tune = 3", "needs both a [nuisance] table"),
        (TUNED, "needs both a [nuisance] table"),
        (f"tune = 1\n{TUNED}", "'tune' must be an integer >= 2"),
        (f"tune = 3\nexplore = 4\n{TUNED}", "[nuisance] tunes each configuration of a grid"),
        (
            "tune = 3\n[nuisance]\nwarmup_epochs = { type = 'int', low = 0, high = 2 }",
            "both searched (compared) and a nuisance",
        ),
        ("tune = 3\n[nuisance]\nval_size = { type = 'int', low = 10, high = 20 }", "val_size"),
        ("note = 3", "'note' must be a string"),
        ("tune_replicates = 2", "needs both a [nuisance] table"),
        (f"tune = 3\ntune_replicates = 0\n{TUNED}", "'tune_replicates' must be a positive integer"),
    ],
)
def test_a_bad_tuned_study_is_refused_with_one_line(extra, message):
    raw = tomllib.loads(STUDY.format(extra=extra, fixed="", replicates=4))
    with pytest.raises(VaesweepError, match=re.escape(message)):
        parse_study(raw, "bad", "bad.toml")


def test_a_nuisance_setting_cannot_be_set_from_the_command_line():
    raw = tomllib.loads(STUDY.format(extra=f"tune = 3\n{TUNED}", fixed="", replicates=4))
    with pytest.raises(VaesweepError, match="'lr' is tuned for each configuration"):
        parse_study(raw, "t", "t.toml").with_overrides({"lr": 1e-3})


def test_a_tuned_study_trains_its_places_in_populations_as_alone(tmp_path, tiny_data_dir):
    study = write_study(tmp_path, "together", extra=f"tune = 2\n{TUNED}", replicates=1)
    stored = {}
    for population in ("1", "2"):
        folder = tmp_path / f"population{population}"
        outcome = vaesweep(
            "run", "--study", study, "--trials", "6", "--results", str(folder),
            "--data-dir", str(tiny_data_dir), *TINY_SETTINGS, "--set", "epochs=1",
            "--population", population,
        )  # fmt: skip
        assert outcome.exit_code == 0, outcome.output
        trials = stored_trials(folder, "together")
        stamps = [
            json.loads((folder / t.user_attrs["folder"] / "trial.json").read_text()) for t in trials
        ]
        assert {s["population"] for s in stamps} == {int(population)}  # trained together
        stored[population] = {
            (t.user_attrs["phase"], t.user_attrs["replicate"], tuple(sorted(t.params.items()))): t
            for t in trials
        }
    assert stored["1"].keys() == stored["2"].keys() and len(stored["1"]) == 6
    for place, alone in stored["1"].items():
        together = stored["2"][place]
        assert together.state.name == alone.state.name == "COMPLETE"
        assert together.user_attrs["metrics"]["val_loss"] == pytest.approx(
            alone.user_attrs["metrics"]["val_loss"], rel=1e-3
        )
