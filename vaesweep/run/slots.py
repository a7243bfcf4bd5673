"""Which place in its study's design the next trial takes, read from the stored trials: the
first that no finished, running or queued trial holds (see design.py for the designs)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from optuna.trial import FrozenTrial, TrialState

from vaesweep.errors import VaesweepError
from vaesweep.spec.design import CONFIRM, EXPLORE, GRID, Design, config_key
from vaesweep.store.optuna_private import queued_params
from vaesweep.store.storage import FAIL_REASON_ATTR, PHASE_ATTR, REPLICATE_ATTR


@dataclass(frozen=True)
class Slot:
    """What the next trial trains: `params` None means the sampler chooses (exploration)."""

    phase: str  # a Phase, or "wait"
    replicate: int
    params: dict[str, Any] | None = None

    def user_attrs(self) -> dict[str, Any]:
        # Plain strings only: the record is JSON, and Optuna's cache must hold what it stores.
        return {PHASE_ATTR: str(self.phase), REPLICATE_ATTR: self.replicate}


WAIT = Slot("wait", -1)  # exploration still running elsewhere: confirmation cannot choose yet


def slot_of(trial: FrozenTrial) -> tuple[str, str, int] | None:
    """(phase, configuration, replicate) of a trial that a design placed; None for others."""
    phase = trial.user_attrs.get(PHASE_ATTR)
    if phase is None:
        return None
    return phase, config_key(queued_params(trial)), int(trial.user_attrs.get(REPLICATE_ATTR, 0))


def holds_its_slot(trial: FrozenTrial) -> bool:
    """Whether a trial fills its place in the design: finished, running or queued, or failed by
    divergence (its seed is fixed, so a re-run would diverge again). Interrupted trials do not."""
    if trial.state != TrialState.FAIL:
        return True
    return trial.user_attrs.get(FAIL_REASON_ATTR, "").startswith("diverged")


def next_slot(
    design: Design,
    grid: list[dict[str, Any]] | None,
    trials: Sequence[FrozenTrial],
    directions: Sequence[str],
) -> Slot:
    """The first place in the design that no trial holds."""
    taken = {slot_of(t) for t in trials if holds_its_slot(t)}
    if grid is not None:
        for index in itertools.count():
            replicate, params = divmod(index, len(grid))[0], grid[index % len(grid)]
            if (GRID, config_key(params), replicate) not in taken:
                return Slot(GRID, replicate, params)
    explorations = [
        t for t in trials if t.user_attrs.get(PHASE_ATTR) == EXPLORE and holds_its_slot(t)
    ]
    if len(explorations) < design.explore or not design.confirm_top:
        return Slot(EXPLORE, 0)
    if any(t.state == TrialState.RUNNING for t in explorations):
        return WAIT
    chosen = confirmed_configurations(explorations, design.confirm_top, directions)
    if not chosen:
        raise VaesweepError(
            "no exploration trial completed its full budget, so there is nothing to confirm"
        )
    for replicate in itertools.count():
        for params in chosen:
            if (CONFIRM, config_key(params), replicate) not in taken:
                return Slot(CONFIRM, replicate, params)
    raise AssertionError("unreachable")


def confirmed_configurations(
    explorations: Sequence[FrozenTrial], top: int, directions: Sequence[str]
) -> list[dict[str, Any]]:
    """The `top` best distinct configurations among completed explorations: by Pareto rank
    (one front after another), then by the first objective."""
    complete = [t for t in explorations if t.state == TrialState.COMPLETE]
    signs = [1.0 if d == "minimize" else -1.0 for d in directions]
    losses = [[s * v for s, v in zip(signs, t.values, strict=True)] for t in complete]

    def dominated(a: list[float], b: list[float]) -> bool:
        return all(y <= x for x, y in zip(a, b, strict=True)) and b != a

    rank: dict[int, int] = {}
    remaining, front_index = set(range(len(complete))), 0
    while remaining:
        front = {
            i for i in remaining if not any(dominated(losses[i], losses[j]) for j in remaining)
        }
        rank |= dict.fromkeys(front, front_index)
        remaining -= front
        front_index += 1
    ordered = sorted(range(len(complete)), key=lambda i: (rank[i], losses[i][0], i))
    chosen: dict[str, dict[str, Any]] = {}
    for i in ordered:
        chosen.setdefault(config_key(complete[i].params), dict(complete[i].params))
    return list(chosen.values())[:top]
