"""Every use of Optuna beyond its public API, each with why, so that a release that changes
one of them breaks this module alone (tests/e2e/test_package.py keeps them here; the tests of
bindings, liveness and storage faults exercise each).

Optuna documents its storage classes' methods as library-internal: a study's public API has no
way to fail a trial that another process abandoned, to keep the heartbeats of trials run by
ask and tell, or to wait out a lost database connection, so those few uses live here.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import optuna
import sqlalchemy
from optuna.artifacts._protocol import ArtifactStore  # a type: Optuna exports the stores alone
from optuna.storages._heartbeat import BaseHeartbeat, get_heartbeat_thread
from optuna.storages.journal import JournalFileBackend
from optuna.storages.journal._file import get_lock_file
from optuna.trial import FrozenTrial, TrialState

from vaesweep.store.waiting import STORAGE_FAILURES, waiting_for

T = TypeVar("T")

__all__ = [
    "ArtifactStore",
    "BeatingGrpcStorage",
    "BeatingJournalStorage",
    "ReconnectingStorage",
    "append_whole_lines",
    "beating",
    "close",
    "fail_trial",
    "queued_params",
    "running_heartbeats",
    "waiting_trials",
]

# Each running trial's last stored heartbeat, read from Optuna's RDB tables: the public API
# offers only `fail_stale_trials`, which compares the beat with this machine's wall clock, so a
# clock set wrong on one machine would fail another's live trial (store/heartbeats.py).
RUNNING_BEATS = sqlalchemy.text(
    "SELECT t.number, h.heartbeat FROM trials t "
    "LEFT JOIN trial_heartbeats h ON h.trial_id = t.trial_id "
    "WHERE t.study_id = :study AND t.state = 'RUNNING'"
)


class ReconnectingStorage(optuna.storages.RDBStorage):
    """Optuna's RDB storage, for a study that outlives a database restart.

    Every storage call (the `get_`, `set_` and `create_` methods, rewrapped below) waits out a
    lost server connection or a locked SQLite file (store/waiting.py). The heartbeat thread
    outlives a missed beat instead of dying with a traceback: the next beat may get through,
    and a trial whose beats stop is judged by store/heartbeats.py."""

    def record_heartbeat(self, trial_id: int) -> None:
        try:
            super().record_heartbeat(trial_id)
        except STORAGE_FAILURES:
            pass

    def running_heartbeats(self, study_id: int) -> dict[int, object]:
        """Running trial number -> its last stored heartbeat (None before its first), read
        through the storage's own SQLAlchemy engine."""

        def read() -> dict[int, object]:
            with self.engine.connect() as connection:
                rows = connection.execute(RUNNING_BEATS, {"study": study_id}).all()
            return {int(number): beat for number, beat in rows}

        return self.reconnect(read)

    def reconnect(self, method: Callable[..., T], *args, **kwargs) -> T:
        """`method(*args, **kwargs)`, waiting out what this storage's URL may wait for."""
        return waiting_for(self.url)(method, *args, **kwargs)


# A running trial's last beat on a storage without a heartbeat table (a journal, the gRPC proxy):
# a system attribute, written by Optuna's own heartbeat thread.
BEAT_ATTR = "vaesweep_heartbeat"


class _AttributeBeats(BaseHeartbeat, optuna.storages.BaseStorage):
    """Heartbeats for a storage that has none (a mixin before that storage's class, which gives
    the BaseStorage methods used here): taking `BaseHeartbeat` makes Optuna's heartbeat
    thread (`beating`) run for it, and each beat is stored as the trial's system attribute
    BEAT_ATTR (a journal line, or a proxy call, a beat). Which trials are dead is judged by
    store/heartbeats.py from whether that value changes, as for RDB storages."""

    heartbeat_interval: int

    def record_heartbeat(self, trial_id: int) -> None:
        try:
            self.set_trial_system_attr(trial_id, BEAT_ATTR, time.time())
        except (*STORAGE_FAILURES, optuna.exceptions.UpdateFinishedTrialError):
            pass  # a missed beat (the next may get through), or the trial just finished

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        return []  # Optuna's clock-based judgement is not used (store/heartbeats.py)

    def get_heartbeat_interval(self) -> int:
        return self.heartbeat_interval

    def get_heartbeat_stale_trial_callback(self) -> None:
        return None

    def running_heartbeats(self, study_id: int) -> dict[int, object]:
        """Running trial number -> its last beat (None before its first)."""
        running = self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,))
        return {t.number: t.system_attrs.get(BEAT_ATTR) for t in running}


class BeatingJournalStorage(_AttributeBeats, optuna.storages.JournalStorage):
    """Optuna's journal storage, whose running trials beat (`_AttributeBeats`)."""

    def __init__(self, backend: Any, heartbeat_interval: int) -> None:
        optuna.storages.JournalStorage.__init__(self, backend)
        self.heartbeat_interval = heartbeat_interval


class BeatingGrpcStorage(_AttributeBeats, optuna.storages.GrpcStorageProxy):
    """Optuna's gRPC storage proxy client, whose running trials beat (`_AttributeBeats`)."""

    def __init__(self, host: str, port: int, heartbeat_interval: int) -> None:
        optuna.storages.GrpcStorageProxy.__init__(self, host=host, port=port)
        self.heartbeat_interval = heartbeat_interval


def append_whole_lines(backend: JournalFileBackend, logs: list[dict[str, Any]]) -> None:
    """Optuna's `JournalFileBackend.append_logs`, but a write that fails (a full disk) cuts the
    file back to where it was: Optuna's would leave a partial line, which the next write would
    join into one line that is not JSON, and every later read of the journal would fail."""
    data = ("\n".join(json.dumps(log, separators=(",", ":")) for log in logs) + "\n").encode()
    with get_lock_file(backend._lock):
        fd = os.open(backend._file_path, os.O_WRONLY | os.O_APPEND)
        try:
            size = os.fstat(fd).st_size
            try:
                rest = memoryview(data)
                while rest:
                    rest = rest[os.write(fd, rest) :]
                os.fsync(fd)
            except OSError:
                os.ftruncate(fd, size)
                raise
        finally:
            os.close(fd)


def _reconnecting(name: str):
    """The storage method `name` (the base class's, looked up at each call), waiting out a lost
    connection or a locked file (see `ReconnectingStorage`)."""

    def call(self: ReconnectingStorage, *args, **kwargs):
        return self.reconnect(getattr(super(ReconnectingStorage, self), name), *args, **kwargs)

    return call


for _name in (
    *(n for n in dir(optuna.storages.BaseStorage) if n.startswith(("get_", "set_", "create_"))),
    "delete_study",
):
    setattr(ReconnectingStorage, _name, _reconnecting(_name))


def close(storage: optuna.storages.BaseStorage) -> None:
    """Close every connection of an RDB storage's engine (Optuna has no public close), or a
    proxy client's channel."""
    if isinstance(storage, optuna.storages.RDBStorage):
        storage.engine.dispose()
    elif isinstance(storage, optuna.storages.GrpcStorageProxy):
        storage.close()


def running_heartbeats(storage: optuna.storages.BaseStorage, study: optuna.Study) -> dict:
    """Running trial number -> its last stored heartbeat; {} for a storage that is not
    vaesweep's (nothing beats there, so nothing is judged by its beat)."""
    if not isinstance(storage, ReconnectingStorage | _AttributeBeats):
        return {}
    return storage.running_heartbeats(storage.get_study_id_from_name(study.study_name))


def _trial_id(storage: optuna.storages.BaseStorage, study: optuna.Study, number: int) -> int:
    study_id = storage.get_study_id_from_name(study.study_name)
    return storage.get_trial_id_from_study_id_trial_number(study_id, number)


def beating(storage: optuna.storages.BaseStorage, study: optuna.Study, number: int) -> Any:
    """The thread `study.optimize` starts to beat for a trial, for trial `number`: a run that
    asks and tells has no public way to keep its trials' heartbeats, and without one a killed
    worker's trial stays RUNNING for ever. A context manager."""
    with warnings.catch_warnings():  # "meant for study.optimize": this loop does what it does
        warnings.filterwarnings("ignore", "Heartbeat of storage", UserWarning)
        return get_heartbeat_thread(_trial_id(storage, study, number), storage)


def fail_trial(
    storage: optuna.storages.BaseStorage,
    study: optuna.Study,
    number: int,
    attrs: Mapping[str, Any],
) -> bool:
    """Fail trial `number` of `study` with its user attributes `attrs` (its fate and reason),
    set first; whether this call failed it. A study can tell only the trials this process
    asked for, and these were started (or queued) by another process."""
    trial_id = _trial_id(storage, study, number)
    for key, value in attrs.items():
        storage.set_trial_user_attr(trial_id, key, value)
    return storage.set_trial_state_values(trial_id, TrialState.FAIL)


def waiting_trials(storage: optuna.storages.BaseStorage, study: optuna.Study) -> list[FrozenTrial]:
    """The study's queued trials, read from the storage itself: Optuna's trial cache may not
    see a trial another process queued."""
    study_id = storage.get_study_id_from_name(study.study_name)
    return storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.WAITING,))


def queued_params(trial: FrozenTrial) -> dict[str, Any]:
    """The parameters of a trial: asked, its own; queued by `enqueue_trial` and not yet asked,
    the ones it was queued with, which Optuna keeps only as the system attribute
    "fixed_params" (a design must see the places it queued as taken)."""
    return trial.params or dict(trial.system_attrs.get("fixed_params", {}))
