"""A trial's fate is an enum stored with it, never read back from its reason's words."""

from __future__ import annotations

import re
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from vaesweep.store.fate import FATE_ATTR, Fate, fate_of
from vaesweep.store.storage import FAIL_REASON_ATTR


def _trial(state: TrialState, **attrs) -> optuna.trial.FrozenTrial:
    study = optuna.create_study()
    trial = study.ask()
    for key, value in attrs.items():
        trial.set_user_attr(key, value)
    study.tell(trial, 1.0 if state == TrialState.COMPLETE else None, state=state)
    return study.trials[0]


@pytest.mark.parametrize("fate", list(Fate)[2:])
def test_a_failed_trial_s_fate_is_what_was_stored_whatever_its_reason_says(fate):
    # The reason says "diverged" in words; only the stored fate counts.
    trial = _trial(TrialState.FAIL, **{FATE_ATTR: str(fate), FAIL_REASON_ATTR: "diverged: x"})
    assert fate_of(trial) is fate
    assert fate.holds_its_place == (fate is Fate.DIVERGED)


def test_finished_states_and_failures_from_elsewhere():
    assert fate_of(_trial(TrialState.COMPLETE)) is Fate.COMPLETED
    assert fate_of(_trial(TrialState.PRUNED)) is Fate.PRUNED
    # Failed without a word (Optuna's own heartbeat check), or by something else.
    assert fate_of(_trial(TrialState.FAIL)) is Fate.STALE
    assert fate_of(_trial(TrialState.FAIL, **{FAIL_REASON_ATTR: "diverged: nan"})) is Fate.ERROR
    assert fate_of(_trial(TrialState.FAIL, **{FATE_ATTR: "no such fate"})) is Fate.STALE


def test_no_fate_is_read_from_a_reason_s_text():
    package = Path(__file__).resolve().parents[2] / "vaesweep"
    words = "|".join(f.value for f in Fate)
    pattern = re.compile(rf"startswith\(\s*\(?\s*[\"'](?:{words})")
    for path in package.rglob("*.py"):
        assert not pattern.search(path.read_text()), path
