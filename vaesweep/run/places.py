"""Which place in its study's design the next trial takes, read from the stored trials: the
first that no finished, running or queued trial holds (see design.py for the designs)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from optuna.trial import FrozenTrial, TrialState

from vaesweep.errors import VaesweepError, shown
from vaesweep.spec.design import CONFIRM, EXPLORE, GRID, TUNE, Design, config_key
from vaesweep.store.fate import fate_of
from vaesweep.store.optuna_private import queued_params
from vaesweep.store.storage import PHASE_ATTR, REPLICATE_ATTR


@dataclass(frozen=True)
class Place:
    """What the next trial trains: `params` None means the sampler chooses (exploration)."""

    phase: str  # a Phase, or "wait"
    replicate: int
    params: dict[str, Any] | None = None

    def user_attrs(self) -> dict[str, Any]:
        # Plain strings only: the record is JSON, and Optuna's cache must hold what it stores.
        return {PHASE_ATTR: str(self.phase), REPLICATE_ATTR: self.replicate}


WAIT = Place("wait", -1)  # exploration still running elsewhere: confirmation cannot choose yet


def place_of(trial: FrozenTrial) -> tuple[str, str, int] | None:
    """(phase, configuration, replicate) of a trial that a design placed; None for others."""
    phase = trial.user_attrs.get(PHASE_ATTR)
    if phase is None:
        return None
    return phase, config_key(queued_params(trial)), int(trial.user_attrs.get(REPLICATE_ATTR, 0))


def holds_its_place(trial: FrozenTrial) -> bool:
    """Whether a trial fills its place in the design: finished, running or queued, or failed by
    divergence (its seed is fixed, so a re-run would diverge again). Interrupted trials do not."""
    fate = fate_of(trial)
    return fate is None or fate.holds_its_place


def next_place(
    design: Design,
    grid: list[dict[str, Any]] | None,
    trials: Sequence[FrozenTrial],
    directions: Sequence[str],
    nuisance: Sequence[dict[str, Any]] = (),
) -> Place:
    """The first place in the design that no trial holds."""
    taken = {place_of(t) for t in trials if holds_its_place(t)}
    if grid is not None and nuisance:
        return _next_tuned(design, grid, nuisance, trials, taken, directions)
    if grid is not None:
        for index in itertools.count():
            replicate, params = divmod(index, len(grid))[0], grid[index % len(grid)]
            if (GRID, config_key(params), replicate) not in taken:
                return Place(GRID, replicate, params)
    explorations = [
        t for t in trials if t.user_attrs.get(PHASE_ATTR) == EXPLORE and holds_its_place(t)
    ]
    if len(explorations) < design.explore or not design.confirm_top:
        return Place(EXPLORE, 0)
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
                return Place(CONFIRM, replicate, params)
    raise AssertionError("unreachable")


def _next_tuned(
    design: Design,
    grid: Sequence[dict[str, Any]],
    nuisance: Sequence[dict[str, Any]],
    trials: Sequence[FrozenTrial],
    taken: set,
    directions: Sequence[str],
) -> Place:
    """A tuned grid: every configuration at every nuisance point, a seed block at a time (point-
    major within a block, so an interrupted tuning stays balanced), then each configuration
    confirmed at its own best point once its tuning has finished, replicate-major."""
    for replicate in range(design.tune_replicates):
        for point in nuisance:
            for params in grid:
                if (TUNE, config_key({**params, **point}), replicate) not in taken:
                    return Place(TUNE, replicate, {**params, **point})
    tunings = tuning_trials(grid, trials)
    waiting = False
    for replicate in itertools.count():
        for params, tuned in zip(grid, tunings, strict=True):
            if any(t.state in (TrialState.RUNNING, TrialState.WAITING) for t in tuned):
                waiting = True  # its best point is not known yet
                continue
            best = best_point(tuned, directions)
            if not best:
                raise VaesweepError(
                    f"no tuning trial of {shown(config_key(params))} completed its budget, so it "
                    "has no nuisance value to be confirmed at: narrow the nuisance range"
                )
            if (CONFIRM, config_key(best[0]), replicate) not in taken:
                return Place(CONFIRM, replicate, best[0])
        if waiting:
            return WAIT
    raise AssertionError("unreachable")


def tuning_trials(
    grid: Sequence[dict[str, Any]], trials: Sequence[FrozenTrial]
) -> list[list[FrozenTrial]]:
    """Per configuration of a tuned grid, its tuning trials that hold their place."""
    index = {config_key(params): i for i, params in enumerate(grid)}
    tunings: list[list[FrozenTrial]] = [[] for _ in grid]
    for trial in trials:
        if trial.user_attrs.get(PHASE_ATTR) == TUNE and holds_its_place(trial):
            scientific = {k: v for k, v in queued_params(trial).items() if k in grid[0]}
            if (i := index.get(config_key(scientific))) is not None:
                tunings[i].append(trial)
    return tunings


def best_point(tuning: Sequence[FrozenTrial], directions: Sequence[str]) -> list[dict[str, Any]]:
    """A configuration's best tuning point, as a one-item list (empty where none completed):
    each point's mean values over its completed tuning blocks, ranked as the explorations a
    search confirms are."""
    points: dict[str, list[FrozenTrial]] = {}
    for trial in tuning:
        if trial.state == TrialState.COMPLETE:
            points.setdefault(config_key(trial.params), []).append(trial)
    means = [
        (
            trials[0].params,
            [float(np.mean(v)) for v in zip(*(t.values for t in trials), strict=True)],
        )
        for trials in points.values()
    ]
    return _ranked(means, directions)[:1]


def confirmed_configurations(
    explorations: Sequence[FrozenTrial], top: int, directions: Sequence[str]
) -> list[dict[str, Any]]:
    """The `top` best distinct configurations among completed explorations."""
    complete = [(t.params, t.values) for t in explorations if t.state == TrialState.COMPLETE]
    chosen: dict[str, dict[str, Any]] = {}
    for params in _ranked(complete, directions):
        chosen.setdefault(config_key(params), dict(params))
    return list(chosen.values())[:top]


def _ranked(
    candidates: Sequence[tuple[dict[str, Any], Sequence[float]]], directions: Sequence[str]
) -> list[dict[str, Any]]:
    """The candidates' params, best first: by Pareto rank (one front after another), then by
    the first objective, then in the given order."""
    signs = [1.0 if d == "minimize" else -1.0 for d in directions]
    losses = [[s * v for s, v in zip(signs, values, strict=True)] for _, values in candidates]

    def dominated(a: list[float], b: list[float]) -> bool:
        return all(y <= x for x, y in zip(a, b, strict=True)) and b != a

    rank: dict[int, int] = {}
    remaining, front_index = set(range(len(candidates))), 0
    while remaining:
        front = {
            i for i in remaining if not any(dominated(losses[i], losses[j]) for j in remaining)
        }
        rank |= dict.fromkeys(front, front_index)
        remaining -= front
        front_index += 1
    ordered = sorted(range(len(candidates)), key=lambda i: (rank[i], losses[i][0], i))
    return [candidates[i][0] for i in ordered]
