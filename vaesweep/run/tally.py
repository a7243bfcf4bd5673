"""How a study's trials stand: finished and running, and a failing streak (torch-free, so a run
with nothing to train answers without importing torch)."""

from __future__ import annotations

import optuna
from optuna.trial import TrialState

from vaesweep.store.fate import Fate, fate_of
from vaesweep.store.storage import FINISHED_STATES, fail_reason

MAX_FAILURES_IN_A_ROW = 5


def counts(study: optuna.Study) -> tuple[int, int]:
    """(finished, running) trials."""
    states = [t.state for t in study.get_trials(deepcopy=False)]
    return sum(s in FINISHED_STATES for s in states), states.count(TrialState.RUNNING)


def failing_streak(study: optuna.Study, since: int) -> tuple[int, str]:
    """Failed trials in a row at the end of this session's trials (numbered `since` on), across
    all workers, and the last failure's reason. Surplus trials and running ones do not count."""
    streak, reason = 0, ""
    for trial in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number, reverse=True):
        if trial.number < since:
            break
        why = fail_reason(trial)
        if trial.state == TrialState.RUNNING or fate_of(trial) == Fate.SURPLUS:
            continue
        if trial.state != TrialState.FAIL:
            break
        streak, reason = streak + 1, reason or why
    return streak, reason
