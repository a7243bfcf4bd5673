"""Where each trial goes in a study's design, and its seed."""

from __future__ import annotations

import optuna
from optuna.distributions import FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial

from vaesweep.design import CONFIRM, EXPLORE, GRID, WAIT, Design, next_slot, trial_seed
from vaesweep.studies import parse_study

GRID_STUDY = {
    "description": "t",
    "objectives": ["val_loss"],
    "replicates": 2,
    "search": {"warmup_epochs": {"type": "int", "low": 0, "high": 2}},
}


def placed(value, replicate, state=TrialState.COMPLETE, phase=GRID, loss=1.0, reason=None):
    attrs = {"phase": phase, "replicate": replicate}
    if reason:
        attrs["fail_reason"] = reason
    name, distribution = (
        ("warmup_epochs", IntDistribution(0, 2))
        if phase == GRID
        else ("lr", FloatDistribution(1e-4, 1e-2, log=True))
    )
    return create_trial(
        state=state,
        params={name: value},
        distributions={name: distribution},
        user_attrs=attrs,
        value=loss if state == TrialState.COMPLETE else None,
    )


def test_grid_runs_replicate_zero_of_every_value_before_replicate_one():
    spec = parse_study(GRID_STUDY, "g", "g.toml")
    trials, order = [], []
    for _ in range(7):
        slot = next_slot(spec.design, spec.grid, trials, spec.directions)
        order.append((slot.params["warmup_epochs"], slot.replicate))
        trials.append(placed(slot.params["warmup_epochs"], slot.replicate))
    assert order == [(0, 0), (1, 0), (2, 0), (0, 1), (1, 1), (2, 1), (0, 2)]


def test_an_interrupted_place_is_taken_again_first_and_a_diverged_one_is_not():
    spec = parse_study(GRID_STUDY, "g", "g.toml")
    trials = [
        placed(0, 0),
        placed(1, 0, TrialState.FAIL, reason="interrupted (SIGINT)"),
        placed(2, 0, TrialState.FAIL, reason="diverged: loss became NaN"),
        placed(0, 1),
    ]
    slot = next_slot(spec.design, spec.grid, trials, spec.directions)
    assert (slot.params, slot.replicate) == ({"warmup_epochs": 1}, 0)
    trials.append(placed(1, 0))
    slot = next_slot(spec.design, spec.grid, trials, spec.directions)
    assert (slot.params, slot.replicate) == ({"warmup_epochs": 1}, 1)


def test_search_explores_then_confirms_the_best_with_fresh_replicates():
    design = Design(replicates=2, explore=3, confirm_top=2)
    explored = [
        placed(1e-3, 0, phase=EXPLORE, loss=3.0),
        placed(2e-3, 0, phase=EXPLORE, loss=1.0),
        placed(5e-3, 0, phase=EXPLORE, loss=2.0),
    ]
    assert next_slot(design, None, explored[:2], ["minimize"]).phase == EXPLORE
    running = [*explored[:2], placed(5e-3, 0, TrialState.RUNNING, phase=EXPLORE)]
    assert next_slot(design, None, running, ["minimize"]) is WAIT
    trials = list(explored)
    order = []
    for _ in range(4):
        slot = next_slot(design, None, trials, ["minimize"])
        assert slot.phase == CONFIRM
        order.append((slot.params["lr"], slot.replicate))
        trials.append(placed(slot.params["lr"], slot.replicate, phase=CONFIRM))
    assert order == [(2e-3, 0), (5e-3, 0), (2e-3, 1), (5e-3, 1)]


def test_seeds_follow_configuration_and_replicate_not_trial_order():
    assert trial_seed(0, {"a": 1}, GRID, 0) == trial_seed(0, {"a": 1}, GRID, 0)
    seeds = {trial_seed(0, {"a": a}, phase, r) for a in (1, 2) for phase in (GRID, CONFIRM)
             for r in (0, 1)}  # fmt: skip
    assert len(seeds) == 8
    assert trial_seed(5, {"a": 1}, GRID, 0) == (trial_seed(0, {"a": 1}, GRID, 0) + 5) % 2**32
    assert optuna  # the trials above are Optuna's own FrozenTrials
