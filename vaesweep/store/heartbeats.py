"""Which running trials are alive: each running trial beats, and a trial whose beat has stopped
is failed so that its place can be trained again.

Optuna fails a trial whose last beat is older than the grace period by the checking process's
database clock. On SQLite that is each machine's own clock, so a clock ahead fails live trials
and a clock behind (or a beat written "in the future") never fails a dead one; and a trial with no
beat at all (a crash before its first beat, a trial made by plain Optuna) is never failed. Here a
trial is dead once its stored beat has not changed for the grace period of the checker's own
monotonic time: no two clocks are compared, and a missing beat is a beat that never changes.

Optuna's heartbeat thread and table are internals (store/optuna_private.py): this module starts
the thread, and `storage._Storage.running_heartbeats` reads the table.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import optuna
from optuna.trial import TrialState

from vaesweep.store.fate import FATE_ATTR, Fate
from vaesweep.store.optuna_private import heartbeat_thread
from vaesweep.store.storage import FAIL_REASON_ATTR, STALE_REASON


@contextlib.contextmanager
def beating(storage: optuna.storages.BaseStorage, study: optuna.Study, number: int) -> Iterator:
    """Trial `number` beats while inside this block (every sixth of the grace period)."""
    study_id = storage.get_study_id_from_name(study.study_name)
    trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, number)
    with warnings.catch_warnings():  # "meant for study.optimize": this loop does what it does
        warnings.filterwarnings("ignore", "Heartbeat of storage", UserWarning)
        thread = heartbeat_thread(trial_id, storage)
    with thread:  # a context manager, though Optuna annotates it as a thread
        yield


@dataclass
class Liveness:
    """Watches a study's running trials from one worker, across its checks."""

    storage: optuna.storages.BaseStorage
    study: optuna.Study
    grace: float
    clock: Callable[[], float] = time.monotonic  # the checker's own time (a fake one in tests)
    seen: dict[int, tuple[object, float]] = field(default_factory=dict)  # beat, unchanged since

    def silent(self) -> dict[int, float]:
        """Running trials -> seconds (of this checker's time) their beat has not changed."""
        now = self.clock()
        seen = {}
        for number, beat in self._beats().items():
            last_beat, since = self.seen.get(number, (None, now))
            seen[number] = (beat, since if number in self.seen and last_beat == beat else now)
        self.seen = seen
        return {number: now - since for number, (_, since) in seen.items()}

    def fail_dead(self) -> list[int]:
        """Fail every running trial silent for the grace period (with its reason); their
        numbers. A trial another worker failed or finished meanwhile is left as it is."""
        failed = []
        for number, quiet in self.silent().items():
            if quiet < self.grace:
                continue
            with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError, KeyError):
                trial_id = self._id_of(number)
                self.storage.set_trial_user_attr(trial_id, FAIL_REASON_ATTR, STALE_REASON)
                self.storage.set_trial_user_attr(trial_id, FATE_ATTR, Fate.STALE)
                if self.storage.set_trial_state_values(trial_id, TrialState.FAIL):
                    failed.append(number)
            self.seen.pop(number, None)
        return failed

    def _beats(self) -> dict[int, object]:
        read = getattr(self.storage, "running_heartbeats", None)
        if read is None:  # not vaesweep's storage: nothing beats, nothing is judged by its beat
            return {}
        return read(self.storage.get_study_id_from_name(self.study.study_name))

    def _id_of(self, number: int) -> int:
        study_id = self.storage.get_study_id_from_name(self.study.study_name)
        return self.storage.get_trial_id_from_study_id_trial_number(study_id, number)


def describe_wait(silent: dict[int, float], grace: float) -> str:
    """What a worker with nothing to start waits for, in a line."""
    if not silent:
        return "waiting for the study's last trials to be recorded"
    parts = [
        f"trial {number} (no new heartbeat for {quiet:.0f} s of {grace:.0f})"
        for number, quiet in sorted(silent.items())
    ]
    return "waiting for running " + ", ".join(parts) + "; a silent trial is failed and retrained"
