"""A running trial is judged dead by whether its heartbeat changes, over the checker's own time:
never by comparing two machines' clocks, and a trial with no heartbeat at all is no exception."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import optuna
import pytest

from vaesweep.store.heartbeats import Liveness
from vaesweep.store.storage import STALE_REASON, default_storage_url, open_storage

from helpers import finish, start, trials_of


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _running_trial(results: Path, beat: str | None) -> int:
    """A RUNNING trial made by plain Optuna, with its heartbeat row set to the SQLite time
    expression `beat` (None: no row, as a crash before the first beat leaves it)."""
    storage = optuna.storages.RDBStorage(default_storage_url(results))
    study = optuna.load_study(study_name="warmup", storage=storage)
    trial = study.ask()
    if beat is not None:
        with sqlite3.connect(results / "vaesweep.db") as db:
            db.execute(
                f"INSERT INTO trial_heartbeats (trial_id, heartbeat) VALUES (?, {beat})",
                (trial._trial_id,),
            )
    return trial.number


def _set_beat(results: Path, number: int, beat: str) -> None:
    with sqlite3.connect(results / "vaesweep.db") as db:
        db.execute(
            f"UPDATE trial_heartbeats SET heartbeat = {beat} WHERE trial_id = "
            "(SELECT trial_id FROM trials WHERE number = ?)",
            (number,),
        )


@pytest.fixture
def one_trial_study(tmp_path, tiny_data_dir, monkeypatch) -> Path:
    """A results folder whose warmup study has one finished trial."""
    monkeypatch.setenv("VAESWEEP_GRACE_SECONDS", "3")
    results = tmp_path / "results"
    code, output = finish(start(results, tiny_data_dir, 1, "--set", "epochs=1"))
    assert code == 0, output
    return results


@pytest.mark.parametrize(
    "beat", [None, "datetime('now', '+1 hour')"], ids=["no heartbeat", "heartbeat in the future"]
)
def test_a_silent_running_trial_is_failed_after_the_grace_period_and_the_wait_is_said(
    beat, one_trial_study, tiny_data_dir
):
    results = one_trial_study
    silent = _running_trial(results, beat)
    # The study wants 2 finished trials: 1 finished + 1 running fill it until the silent one
    # fails; a grace period long enough for the wait to be said.
    process = start(results, tiny_data_dir, 2, "--set", "epochs=1", grace="8")
    code, output = finish(process, timeout=120)
    assert code == 0, output
    assert f"waiting for running trial {silent} (no new heartbeat for" in output
    stored = {t.number: t for t in trials_of(results)}
    assert stored[silent].state.name == "FAIL"
    assert stored[silent].user_attrs["fail_reason"] == STALE_REASON
    assert sum(t.state.name == "COMPLETE" for t in stored.values()) == 2


def test_a_beat_behind_the_checkers_clock_is_alive_while_it_changes(one_trial_study):
    """A worker whose clock is two hours behind the checker's keeps its trial while it beats;
    once its beats stop, the trial is failed after the grace period of the checker's time."""
    results = one_trial_study
    number = _running_trial(results, "datetime('now', '-2 hours')")
    storage = open_storage(default_storage_url(results))
    clock = FakeClock()
    liveness = Liveness(storage, optuna.load_study(study_name="warmup", storage=storage), 3, clock)
    assert liveness.fail_dead() == []
    for seconds in (10, 20, 30):  # beats, each 10 s later by the worker's own clock
        clock.now += 5
        _set_beat(results, number, f"datetime('now', '-2 hours', '+{seconds} seconds')")
        assert liveness.fail_dead() == []
    clock.now += 2.9  # silent, but not yet for the grace period
    assert liveness.fail_dead() == []
    clock.now += 0.2
    assert liveness.fail_dead() == [number]
    trial = next(t for t in trials_of(results) if t.number == number)
    assert trial.state.name == "FAIL" and trial.user_attrs["fail_reason"] == STALE_REASON
