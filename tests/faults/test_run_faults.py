"""What goes wrong during a run (a crash's leftovers, another storage's folders, a failing,
locked or absent storage, a full disk) is one line, and nothing finished is lost."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import optuna
import pytest

from vaesweep.store.storage import default_storage_url

from helpers import (
    run_args,
    snapshot,
    stored_trials,
    vaesweep,
)

LOCK_FOR_8_S = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(8)
db.execute("COMMIT")
"""


def test_what_a_crash_leaves_is_cleaned_up_by_the_next_run(study_with_two_trials, tiny_data_dir):
    import socket

    results = study_with_two_trials
    study = optuna.load_study(study_name="warmup", storage=default_storage_url(results))
    # A trial whose folder was renamed into place but never recorded (then failed by the
    # heartbeat check): its trial.json carries the record's folder id.
    crashed = study.ask()
    crashed.set_user_attr("folder_id", "f" * 32)
    study.tell(crashed, state=optuna.trial.TrialState.FAIL)
    leftover = results / "warmup" / f"trial-{crashed.number:04d}"
    shutil.copytree(results / "warmup" / "trial-0000", leftover)
    stamp = json.loads((leftover / "trial.json").read_text())
    stamp |= {"number": crashed.number, "folder_id": "f" * 32}
    (leftover / "trial.json").write_text(json.dumps(stamp))
    # Staging folders: this machine's, of a process that is gone (removed at once), and another
    # machine's, still fresh (kept: its writer may be alive).
    staging = results / "warmup" / f".trial-0099.partial-{socket.gethostname()}-999999"
    elsewhere = results / "warmup" / ".trial-0098.partial-other-host-999999"
    staging.mkdir()
    elsewhere.mkdir()
    outcome = vaesweep(*run_args(results, tiny_data_dir, 2))
    assert outcome.exit_code == 0, outcome.output
    assert not leftover.exists() and not staging.exists() and elsewhere.is_dir()
    assert f"removed {leftover}" in outcome.output
    assert (results / "warmup" / "trial-0000" / "model.pt").is_file()  # finished ones stay


def test_a_failed_trial_s_folder_number_holding_anything_else_is_never_removed(
    study_with_two_trials, tiny_data_dir
):
    results = study_with_two_trials
    study = optuna.load_study(study_name="warmup", storage=default_storage_url(results))
    crashed = study.ask()  # failed before it wrote a folder: no folder id of its own
    study.tell(crashed, state=optuna.trial.TrialState.FAIL)
    unreadable = results / "warmup" / f"trial-{crashed.number:04d}"
    unreadable.mkdir()
    (unreadable / "notes.txt").write_text("a researcher's")
    outcome = vaesweep(*run_args(results, tiny_data_dir, 3))
    assert outcome.exit_code == 0, outcome.output
    assert (unreadable / "notes.txt").is_file() and "removed" not in outcome.output


def test_two_storages_sharing_a_results_folder_never_touch_each_other_s_folders(
    study_with_two_trials, tiny_data_dir, tmp_path
):
    results = study_with_two_trials  # its own SQLite storage: trials 0 and 1 completed
    other = f"sqlite:///{tmp_path / 'other.db'}"
    # The other storage holds the same study: trial 0 completed elsewhere, trial 1 failed by an
    # interrupt (the case that once removed this results folder's trial 0).
    elsewhere = tmp_path / "elsewhere"
    made = vaesweep(*run_args(elsewhere, tiny_data_dir, 1, "--storage", other))
    assert made.exit_code == 0, made.output
    study = optuna.load_study(study_name="warmup", storage=other)
    interrupted = study.ask()
    interrupted.set_user_attr("fail_reason", "interrupted (SIGINT)")
    study.tell(interrupted, state=optuna.trial.TrialState.FAIL)
    before = snapshot(results)
    other_before = [(t.number, t.state, t.user_attrs) for t in study.get_trials()]

    outcome = vaesweep(*run_args(results, tiny_data_dir, 3, "--storage", other))
    assert outcome.exit_code == 1
    assert outcome.output.strip().splitlines() == [
        f"Error: {results / 'warmup'} holds trial folders this storage did not write "
        "(trial-0000, trial-0001); give each storage its own --results, or this study another "
        "--name"
    ]
    assert snapshot(results) == before
    after = optuna.load_study(study_name="warmup", storage=other).get_trials()
    assert [(t.number, t.state, t.user_attrs) for t in after] == other_before

    # The other storage's completed trial 0 is never drawn from this folder's trial 0.
    out = tmp_path / "out"
    shown = vaesweep(
        "report",
        "--results",
        str(results),
        "--storage",
        other,
        "--out",
        str(out),
        "--data-dir",
        str(tiny_data_dir),
    )
    assert shown.exit_code == 0, shown.output
    assert "trial 0: its folder" in shown.output and "another storage's trial" in shown.output
    assert not (out / "warmup" / "trial-0000").exists()
    assert snapshot(results) == before


def test_a_storage_failing_during_a_run_is_one_line(
    study_with_two_trials, tiny_data_dir, monkeypatch
):
    import sqlalchemy.exc

    calls = {"n": 0}
    real = optuna.storages.RDBStorage.set_trial_intermediate_value

    def failing(self, *args, **kwargs):  # the database goes away after some epochs
        calls["n"] += 1
        if calls["n"] > 3:
            raise sqlalchemy.exc.OperationalError("UPDATE", {}, Exception("server closed"))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(optuna.storages.RDBStorage, "set_trial_intermediate_value", failing)
    unstable = study_with_two_trials.parent / "loss.toml"
    unstable.write_text(
        'description = "d"\nobjectives = ["val_loss"]\n'
        '[search]\nlatent_dim = { type = "categorical", choices = [2, 3] }\n'
    )
    args = run_args(study_with_two_trials, tiny_data_dir, 4)
    args[args.index("warmup")] = str(unstable)
    outcome = vaesweep(*args)
    assert outcome.exit_code == 1
    last = outcome.output.strip().splitlines()[-1]
    assert last.startswith("Error: storage sqlite:///") and "failed during trial 1: " in last
    assert "finished trials are kept; re-running resumes" in last
    assert "Traceback" not in outcome.output


def test_a_database_locked_by_another_process_is_waited_for_aloud(
    study_with_two_trials, tiny_data_dir
):
    import subprocess
    import sys

    holder = subprocess.Popen(
        [sys.executable, "-c", LOCK_FOR_8_S, str(study_with_two_trials / "vaesweep.db")],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "locked"
    outcome = vaesweep(*run_args(study_with_two_trials, tiny_data_dir, 3))
    holder.wait(timeout=30)
    assert outcome.exit_code == 0, outcome.output
    said = "storage locked by another process (database is locked); waiting for up to 60 s"
    assert outcome.output.count(said) == 1, outcome.output
    assert [t.state.name for t in stored_trials(study_with_two_trials)] == ["COMPLETE"] * 3


def _storage_down_after(monkeypatch, writes: int, seconds: float) -> None:
    """Every storage call fails for `seconds` once a trial's attributes were written `writes`
    times (its seed, folder id, then its epochs: a database restarting mid-trial), heartbeats
    included."""
    import time

    import sqlalchemy.exc

    storage = optuna.storages.RDBStorage
    state = {"reports": 0, "until": 0.0}

    def wrap(name, method):
        def failing(self, *args, **kwargs):
            if name == "set_trial_user_attr":
                state["reports"] += 1
                if state["reports"] == writes + 1:
                    state["until"] = time.time() + seconds
            if time.time() < state["until"]:
                raise sqlalchemy.exc.OperationalError(name, {}, Exception("server closed"))
            return method(self, *args, **kwargs)

        return failing

    for name in dir(storage):
        if not name.startswith("_") and callable(getattr(storage, name)):
            monkeypatch.setattr(storage, name, wrap(name, getattr(storage, name)))


@pytest.mark.parametrize(("outage", "recorded"), [(1.5, True), (60.0, False)])
def test_a_storage_away_during_a_trial_is_one_line_and_the_trial_recorded_when_it_returns(
    outage, recorded, study_with_two_trials, tiny_data_dir, monkeypatch
):
    from vaesweep.run import work_loop

    monkeypatch.setattr(work_loop, "RECORD_RETRIES", (1.0, 1.0))
    monkeypatch.setenv("VAESWEEP_GRACE_SECONDS", "6")  # a heartbeat every second, into the outage
    _storage_down_after(monkeypatch, writes=3, seconds=outage)
    outcome = vaesweep(*run_args(study_with_two_trials, tiny_data_dir, 3))
    monkeypatch.undo()
    assert outcome.exit_code == 1
    lines = outcome.output.strip().splitlines()
    assert "Traceback" not in outcome.output and lines[-1].startswith("Error: storage sqlite:///")
    assert "failed during trial 2: " in lines[-1] and "finished trials are kept" in lines[-1]
    trial = stored_trials(study_with_two_trials)[2]
    if recorded:
        assert "trial 2 was recorded as failed" in lines[-1]
        assert trial.state.name == "FAIL"
        assert trial.user_attrs["fail_reason"].startswith("the storage failed: ")
    else:
        assert "trial 2 stays running until its heartbeat lapses (6 s)" in lines[-1]
        assert trial.state.name == "RUNNING"


def test_no_failed_trial_is_left_without_its_reason(
    study_with_two_trials, tiny_data_dir, monkeypatch
):
    def unforeseen(*args, **kwargs):
        raise RuntimeError("cannot convert float infinity to integer")

    monkeypatch.setattr("vaesweep.run.objective.evaluate", unforeseen)
    outcome = vaesweep(*run_args(study_with_two_trials, tiny_data_dir, 3))
    assert outcome.exit_code == 1 and "unexpected failure: cannot convert" in outcome.output
    trial = stored_trials(study_with_two_trials)[2]
    assert trial.state.name == "FAIL"
    assert trial.user_attrs["fail_reason"] == "error: cannot convert float infinity to integer"


@pytest.mark.parametrize("full_at", ["latents.npz", "model.pt"])
def test_a_full_disk_during_a_trial_is_one_line_and_leaves_no_partial_folder(
    full_at, study_with_two_trials, tiny_data_dir, monkeypatch
):
    import numpy as np

    from vaesweep.store import artifacts

    real_savez, real_write_bytes = np.savez, Path.write_bytes

    def savez_onto_a_full_disk(path, **arrays):  # the kernel's own ENOSPC
        with open("/dev/full", "wb") as full:
            real_savez(full, **arrays)

    def write_bytes(path, data):
        return real_write_bytes(Path("/dev/full") if path.name == full_at else path, data)

    if full_at == "latents.npz":
        monkeypatch.setattr(artifacts.np, "savez", savez_onto_a_full_disk)
    else:  # the weights' bytes: torch's own writer once said "unexpected pos" here
        monkeypatch.setattr(Path, "write_bytes", write_bytes)
    outcome = vaesweep(*run_args(study_with_two_trials, tiny_data_dir, 3))
    monkeypatch.undo()
    assert outcome.exit_code == 1
    last = outcome.output.strip().splitlines()[-1]
    assert last.startswith("Error: trial 2 could not write ") and "No space left on device" in last
    assert "trial 2 was recorded as failed" in last and "resumes once there is room" in last
    trial = stored_trials(study_with_two_trials)[2]
    assert trial.state.name == "FAIL" and "No space left" in trial.user_attrs["fail_reason"]
    assert not list((study_with_two_trials / "warmup").glob(".trial-*"))
    assert not (study_with_two_trials / "warmup" / "trial-0002").exists()
    again = vaesweep(*run_args(study_with_two_trials, tiny_data_dir, 3))
    assert again.exit_code == 0, again.output


def test_a_worker_whose_trial_was_failed_while_it_was_stopped_goes_on(
    tmp_path, tiny_data_dir, monkeypatch
):
    from vaesweep.run.objective import Objective

    real = Objective._on_epoch

    def stopped_past_the_grace_period(self, run, record, model):
        real(self, run, record, model)
        if run.trial.number == 0 and record["epoch"] == 0:
            # What another worker's heartbeat check does while this one is stopped (SIGSTOP).
            storage = run.trial.study._storage
            storage.set_trial_state_values(run.trial._trial_id, optuna.trial.TrialState.FAIL)

    monkeypatch.setattr(Objective, "_on_epoch", stopped_past_the_grace_period)
    results = tmp_path / "results"
    outcome = vaesweep(*run_args(results, tiny_data_dir, 2))
    assert outcome.exit_code == 0, outcome.output
    states = [t.state.name for t in stored_trials(results)]
    assert states[0] == "FAIL" and states.count("COMPLETE") == 2
