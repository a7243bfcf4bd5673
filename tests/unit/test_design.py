"""Where each trial goes in a study's design, and its seed."""

from __future__ import annotations

import re

import optuna
import pytest
from optuna.distributions import FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial

from vaesweep.errors import VaesweepError
from vaesweep.run.places import WAIT, next_place
from vaesweep.spec.design import CONFIRM, EXPLORE, GRID, Design, parse_design
from vaesweep.spec.studies import parse_study
from vaesweep.store.fate import Fate

GRID_STUDY = {
    "description": "t",
    "objectives": ["val_loss"],
    "replicates": 2,
    "search": {"warmup_epochs": {"type": "int", "low": 0, "high": 2}},
}


def placed(value, replicate, state=TrialState.COMPLETE, phase=GRID, loss=1.0, fate=None):
    attrs = {"phase": phase, "replicate": replicate}
    if fate:  # as the trial loop stores it, beside a reason in words
        attrs |= {"fate": str(fate), "fail_reason": f"{fate}: ..."}
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
        place = next_place(spec.design, spec.grid, trials, spec.directions)
        order.append((place.params["warmup_epochs"], place.replicate))
        trials.append(placed(place.params["warmup_epochs"], place.replicate))
    assert order == [(0, 0), (1, 0), (2, 0), (0, 1), (1, 1), (2, 1), (0, 2)]


def test_an_interrupted_place_is_taken_again_first_and_a_diverged_one_is_not():
    spec = parse_study(GRID_STUDY, "g", "g.toml")
    trials = [
        placed(0, 0),
        placed(1, 0, TrialState.FAIL, fate=Fate.INTERRUPTED),
        placed(2, 0, TrialState.FAIL, fate=Fate.DIVERGED),
        placed(0, 1),
    ]
    place = next_place(spec.design, spec.grid, trials, spec.directions)
    assert (place.params, place.replicate) == ({"warmup_epochs": 1}, 0)
    trials.append(placed(1, 0))
    place = next_place(spec.design, spec.grid, trials, spec.directions)
    assert (place.params, place.replicate) == ({"warmup_epochs": 1}, 1)


def test_search_explores_then_confirms_the_best_with_fresh_replicates():
    design = Design(replicates=2, explore=3, confirm_top=2)
    explored = [
        placed(1e-3, 0, phase=EXPLORE, loss=3.0),
        placed(2e-3, 0, phase=EXPLORE, loss=1.0),
        placed(5e-3, 0, phase=EXPLORE, loss=2.0),
    ]
    assert next_place(design, None, explored[:2], ["minimize"]).phase == EXPLORE
    running = [*explored[:2], placed(5e-3, 0, TrialState.RUNNING, phase=EXPLORE)]
    assert next_place(design, None, running, ["minimize"]) is WAIT
    trials = list(explored)
    order = []
    for _ in range(4):
        place = next_place(design, None, trials, ["minimize"])
        assert place.phase == CONFIRM
        order.append((place.params["lr"], place.replicate))
        trials.append(placed(place.params["lr"], place.replicate, phase=CONFIRM))
    assert order == [(2e-3, 0), (5e-3, 0), (2e-3, 1), (5e-3, 1)]


def test_blocked_replicates_share_a_seed_and_unblocked_ones_do_not():
    blocked, unblocked = Design(), Design(blocked=False)
    seed = blocked.seed
    # A block: replicate r of every configuration, in a grid or a confirmation.
    assert seed(0, {"a": 1}, GRID, 0) == seed(0, {"a": 2}, GRID, 0)
    assert seed(0, {"a": 1}, CONFIRM, 1) == seed(0, {"a": 2}, CONFIRM, 1)
    assert len({seed(0, {"a": 1}, phase, r) for phase in (GRID, CONFIRM) for r in (0, 1)}) == 4
    # Explorations, and unblocked designs, seed each configuration apart.
    assert seed(0, {"a": 1}, EXPLORE, 0) != seed(0, {"a": 2}, EXPLORE, 0)
    seeds = {
        unblocked.seed(0, {"a": a}, phase, r)
        for a in (1, 2)
        for phase in (GRID, CONFIRM)
        for r in (0, 1)
    }
    assert len(seeds) == 8
    # Never the trial number or the worker; --seed shifts every seed.
    assert seed(5, {"a": 1}, GRID, 0) == (seed(0, {"a": 1}, GRID, 0) + 5) % 2**32
    assert optuna  # the trials above are Optuna's own FrozenTrials


def test_an_unblocked_replicate_s_seed_is_its_configuration_s_own():
    """Unblocked, a replicate's seed is a hash of its configuration, phase and replicate (sha256),
    so no two configurations share one; a design reads back as it was stored."""
    import hashlib

    own = int.from_bytes(hashlib.sha256(b'{"a": 1}|grid|3').digest()[:4], "big")
    assert Design(blocked=False).seed(0, {"a": 1}, GRID, 3) == own
    unblocked = Design(replicates=2, blocked=False)
    assert Design.from_stored(unblocked.stored()) == unblocked
    assert Design().stored()["blocked"] is True


def test_replicate_r_of_two_configurations_starts_from_identical_weights():
    import torch

    from vaesweep.training.model import build_model

    seed = Design().seed(0, {"warmup_epochs": 0}, GRID, 2)
    assert seed == Design().seed(0, {"warmup_epochs": 4}, GRID, 2)
    a, b = build_model("mlp", 2, seed=seed), build_model("mlp", 2, seed=seed)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    other = build_model("mlp", 2, seed=seed + 1)
    assert not torch.equal(a.encoder[1].weight, other.encoder[1].weight)
    # Another latent size changes only the layers that touch the latent.
    wide = dict(build_model("mlp", 8, seed=seed).named_parameters())
    for name, p in a.named_parameters():
        touches_latent = name.startswith(("to_mu", "to_logvar", "decoder.0"))
        assert touches_latent != torch.equal(p, wide[name]), name


@pytest.mark.parametrize(
    "raw, message",
    [
        (
            {"replicates": 4, "max_blocks": 3},
            "'max_blocks' (3) cannot be below 'replicates' (4)",
        ),
        ({"max_blocks": 1}, "'max_blocks' must be an integer >= 2; got 1"),
        ({"max_blocks": "ten"}, "'max_blocks' must be an integer >= 2; got 'ten'"),
        ({"until_decided": True}, "'until_decided = true' needs 'max_blocks = B'"),
        ({"until_decided": "yes", "max_blocks": 4}, "'until_decided' must be true or false"),
        (
            {"explore": 5, "until_decided": True, "max_blocks": 4},
            "'until_decided' adds seed blocks to a grid or a confirmation",
        ),
    ],
)
def test_growth_settings_are_checked_with_one_line(raw, message):
    with pytest.raises(VaesweepError, match=re.escape(message)):
        parse_design(raw, "study.toml")


def test_a_design_may_grow_to_twice_its_replicates_unless_it_says_otherwise():
    assert parse_design({"replicates": 5}, "s").most_blocks == 10
    grown = parse_design({"replicates": 5, "max_blocks": 8, "until_decided": True}, "s")
    assert grown.most_blocks == 8 and grown.until_decided
    assert "until decided, up to 8" in grown.describe(3)
