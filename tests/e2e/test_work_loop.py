"""The exact-count guarantee across machines: a worker whose trial another machine's worker
overtook (the study already full, or its place in the design already taken) steps aside.

Workers on one machine never race (they share a lock), so the race is staged here: between this
worker's count and the start of its trial, "another machine" records a trial in the storage."""

from __future__ import annotations

import optuna
import pytest
import torch
from optuna.distributions import IntDistribution

from vaesweep.run.progress import Progress
from vaesweep.run.work_loop import RunRequest, work
from vaesweep.spec.studies import parse_study
from vaesweep.store.storage import open_storage
from vaesweep.training.device import Compute

STUDY = {
    "description": "two warm-ups, one replicate",
    "objectives": ["val_loss"],
    "search": {"warmup_epochs": {"type": "int", "low": 0, "high": 1}},
    "fixed": {"arch": "mlp", "epochs": 1, "val_size": 100, "precision": "fp32"},
}


def _run_racing(tmp_path, tiny_data, n_trials: int, overtaker: optuna.trial.FrozenTrial):
    """Run one worker's loop; the first time it queues a trial, `overtaker` is recorded first."""
    spec = parse_study(STUDY, "race", "race.toml")
    url = f"sqlite:///{tmp_path / 'race.db'}"
    study = optuna.create_study(storage=open_storage(url), study_name="race")
    original, raced = optuna.Study.enqueue_trial, []

    def enqueue_after_the_other_machine(self, *args, **kwargs):
        if not raced:  # the other machine counted the same trials and started first
            raced.append(optuna.load_study(study_name="race", storage=url).add_trial(overtaker))
        return original(self, *args, **kwargs)

    request = RunRequest(
        spec,
        n_trials,
        tmp_path,
        url,
        "race",
        None,
        Compute(torch.device("cpu"), "fp32"),
        seed=0,
        threads=1,
        first_trial=0,
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(optuna.Study, "enqueue_trial", enqueue_after_the_other_machine)
        outcome = work(request, tiny_data, Progress())
    return outcome, study.get_trials(deepcopy=False)


def _finished_by_other_machine(**attrs) -> optuna.trial.FrozenTrial:
    return optuna.trial.create_trial(
        params={"warmup_epochs": 0},
        distributions={"warmup_epochs": IntDistribution(0, 1)},
        value=500.0,
        user_attrs=attrs,
    )


def test_a_trial_started_after_the_study_filled_up_elsewhere_steps_aside(tmp_path, tiny_data):
    outcome, trials = _run_racing(tmp_path, tiny_data, 1, _finished_by_other_machine())
    assert [t.state.name for t in trials] == ["COMPLETE", "FAIL"]
    assert trials[1].user_attrs["fail_reason"] == "surplus: the study was already full"
    assert outcome.ran == 0  # nothing trained here: the study has exactly its one trial


def test_a_trial_whose_place_another_machine_took_steps_aside(tmp_path, tiny_data):
    other = _finished_by_other_machine(phase="grid", replicate=0)
    outcome, trials = _run_racing(tmp_path, tiny_data, 2, other)
    assert [t.state.name for t in trials] == ["COMPLETE", "FAIL", "COMPLETE"]
    assert trials[1].user_attrs["fail_reason"] == "surplus: its place was already taken"
    # Each place of the grid filled once: warm-up 0 elsewhere, warm-up 1 here.
    assert [t.params["warmup_epochs"] for t in trials if t.state.name == "COMPLETE"] == [0, 1]
    assert outcome.ran == 1


class Said(Progress):
    def __init__(self) -> None:
        self.lines: list[str] = []

    def waiting(self, text: str) -> None:
        self.lines.append(text)


def test_a_start_lock_held_by_a_stopped_worker_is_waited_for_aloud(tmp_path, monkeypatch):
    """Another worker of this machine holds the start lock (stopped, say): the wait is said."""
    import subprocess
    import sys
    import time

    from filelock import FileLock

    from vaesweep.run import work_loop

    monkeypatch.setattr(work_loop, "SAY_WAIT_AFTER", 0.5)
    path = tmp_path / ".race.start-lock"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_FOR_2_S, str(path)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout.readline().strip() == "held"
    said, started = Said(), time.monotonic()
    with work_loop._holding(FileLock(path), said):
        assert time.monotonic() - started > 1.5  # acquired once the holder let go, not before
    holder.wait(timeout=10)
    assert said.lines and said.lines[0].startswith(
        "waiting for another worker of this machine to start its trials"
    )


HOLD_FOR_2_S = """
import sys, time
from filelock import FileLock
with FileLock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(2)
"""


def test_a_queued_place_that_ask_could_not_see_is_started_later_never_left(tmp_path, tiny_data):
    """Optuna's trial cache can miss a place another machine queued: `ask` then makes a fresh
    trial, which steps aside, and the queued place is started next, so nothing waits for ever."""
    original, blinded = optuna.Study.ask, []

    def ask_blind_once(self, *args, **kwargs):
        if not blinded:  # as a stale cache does: a fresh trial, the queued place left waiting
            blinded.append(True)
            return optuna.Trial(self, self._storage.create_new_trial(self._study_id))
        return original(self, *args, **kwargs)

    spec = parse_study(STUDY, "race", "race.toml")
    url = f"sqlite:///{tmp_path / 'race.db'}"
    study = optuna.create_study(storage=open_storage(url), study_name="race")
    request = RunRequest(
        spec, 2, tmp_path, url, "race", None, Compute(torch.device("cpu"), "fp32"), 0, 1, 0
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(optuna.Study, "ask", ask_blind_once)
        outcome = work(request, tiny_data, Progress())
    trials = study.get_trials(deepcopy=False)
    assert trials[1].user_attrs["fail_reason"].startswith("surplus: not one of the design's")
    # Every queued place was started or, once the study was full, failed as surplus: none waits.
    assert all(
        t.state.name == "COMPLETE" or t.user_attrs["fail_reason"].startswith("surplus")
        for t in trials
    )
    assert sorted(t.params["warmup_epochs"] for t in trials if t.state.name == "COMPLETE") == [0, 1]
    assert outcome.ran == 2
