"""Optuna's journal storage as vaesweep opens it: its URL, its failures as one storage error,
its running trials' beats, and a failed write that leaves the journal as it was."""

from __future__ import annotations

import errno
import os
import time

import optuna
import pytest

from vaesweep.errors import VaesweepError
from vaesweep.store import optuna_private
from vaesweep.store.heartbeats import Liveness, beating
from vaesweep.store.journal import journal_file
from vaesweep.store.storage import (
    JOURNAL_LOCK_LOGGER,
    open_storage,
    quiet_optuna,
    storage_errors,
)


def _url(path) -> str:
    return f"journal:///{path}"


def test_its_url_is_sqlites_three_slashes_then_a_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert journal_file("journal:///runs/s.log") == tmp_path.joinpath("runs/s.log").relative_to(
        tmp_path
    )
    assert str(journal_file("journal:////abs/s.log")) == "/abs/s.log"
    assert journal_file("sqlite:///s.db") is None
    for bad in ("journal://s.log", "journal:///", "journal:///runs/"):
        with pytest.raises(VaesweepError, match="a journal storage is a file, journal:///PATH"):
            open_storage(bad)
    assert not any(tmp_path.iterdir())  # nothing was made


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"op_code": 0}\n', "is not an Optuna journal"),
        (
            '{"op_code": 0, "worker_id": "w", "study_name": "s", "directions": [1]}\nno\n{}\n',
            "is malformed",
        ),
        ("[1, 2]\n", "is not an Optuna journal"),
    ],
)
def test_a_file_that_is_not_optunas_journal_is_one_line_and_left_as_it_was(
    tmp_path, content, message
):
    path = tmp_path / "s.log"
    path.write_text(content)
    with pytest.raises(VaesweepError, match=message):
        open_storage(_url(path))
    assert path.read_text() == content


def test_a_missing_file_or_folder_is_named_and_reading_makes_nothing(tmp_path):
    with pytest.raises(VaesweepError, match="there is no folder"):
        open_storage(_url(tmp_path / "nowhere" / "s.log"))
    with pytest.raises(VaesweepError, match="there is no file"):
        open_storage(_url(tmp_path / "s.log"), reading=True)
    with pytest.raises(VaesweepError, match="is a folder, not a file"):
        open_storage(_url(tmp_path))
    assert not any(tmp_path.iterdir())


def test_a_write_that_fails_midway_leaves_the_journal_whole(tmp_path, monkeypatch):
    """A full disk cuts a write short: the partial line is taken back, so later writes and
    reads go on (Optuna's own append would leave it, to be joined with the next line)."""
    url = _url(tmp_path / "s.log")
    study = optuna.create_study(study_name="s", storage=open_storage(url))
    study.tell(study.ask(), 1.0)
    before = (tmp_path / "s.log").read_bytes()
    real_write = os.write

    def disk_full(fd, data):
        real_write(fd, bytes(data[: len(data) // 2]))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", disk_full)
    with pytest.raises(VaesweepError, match="No space left on device"), storage_errors(url):
        study.tell(study.ask(), 2.0)
    assert (tmp_path / "s.log").read_bytes() == before
    monkeypatch.setattr(os, "write", real_write)
    study.tell(study.ask(), 3.0)
    again = optuna.load_study(study_name="s", storage=open_storage(url, reading=True))
    assert [t.value for t in again.get_trials() if t.value is not None] == [1.0, 3.0]


def test_a_running_trial_beats_and_one_whose_beat_stopped_is_failed(tmp_path, monkeypatch):
    """A journal has no heartbeat table: the beat is a stored value, judged as an RDB beat is,
    by whether it changes within the grace period of the checker's own clock."""
    monkeypatch.setenv("VAESWEEP_GRACE_SECONDS", "6")  # a beat a second
    storage = open_storage(_url(tmp_path / "s.log"))
    study = optuna.create_study(study_name="s", storage=storage)
    alive, dead = study.ask(), study.ask()
    with beating(storage, study, dead.number):
        time.sleep(1.5)
    now = [0.0]
    liveness = Liveness(storage, study, grace=6, clock=lambda: now[0])
    with beating(storage, study, alive.number):
        assert set(liveness.silent()) == {alive.number, dead.number}
        time.sleep(2.5)  # two beats
        now[0] = 7.0
        assert liveness.fail_dead() == [dead.number]
    states = {t.number: t.state.name for t in study.get_trials()}
    assert states == {alive.number: "RUNNING", dead.number: "FAIL"}
    beats = optuna_private.running_heartbeats(storage, study)
    assert list(beats) == [alive.number] and isinstance(beats[alive.number], float)


def test_a_wait_for_the_journals_lock_is_said_with_its_path_made_visible():
    """Optuna logs a lock held past 10 s (another process's, or a killed one's, which it frees
    after 30); vaesweep keeps that line while silencing Optuna's others, control characters
    escaped."""
    import logging

    quiet_optuna()
    heard: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: heard.append(record.getMessage())  # type: ignore[method-assign]
    lock, optunas = logging.getLogger(JOURNAL_LOCK_LOGGER), logging.getLogger("optuna")
    optunas.addHandler(handler)  # where Optuna's own handler hears its loggers
    try:
        lock.warning(
            "It is taking longer than 10 seconds to acquire the lock file: %s", "a\x1b[2Jb"
        )
        logging.getLogger("optuna.study").warning("a per-trial line")
    finally:
        optunas.removeHandler(handler)
    assert heard == ["It is taking longer than 10 seconds to acquire the lock file: a\\x1b[2Jb"]
