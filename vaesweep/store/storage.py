"""Where trial records live: SQLite in the results folder by default, any Optuna RDB URL, or
Optuna's journal file (`journal:///PATH`, store/journal.py)."""

from __future__ import annotations

import logging
import os
import socket
import sys
import urllib.parse
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy.exc
import tenacity
from optuna.trial import FrozenTrial, TrialState

from vaesweep.errors import VaesweepError, first_line, shown, visible
from vaesweep.store.journal import JournalFile, check_journal_url, journal_file
from vaesweep.store.layout import DEFAULT_DB_NAME
from vaesweep.store.optuna_private import (
    BeatingGrpcStorage,
    BeatingJournalStorage,
    ReconnectingStorage,
    close,
)
from vaesweep.store.waiting import STORAGE_FAILURES, locked, waiting

# SQLite waits this long inside a call for another writer's lock; then vaesweep says so and waits
# on (store/waiting.py), so no wait for a lock is silent.
SQLITE_BUSY_SECONDS = 5

# What vaesweep keeps in Optuna's records. Pruned trials count as finished: the study learned
# what it needed from them, and they keep their folders like completed ones.
FINISHED_STATES = (TrialState.COMPLETE, TrialState.PRUNED)
DEFINITION_ATTR = "vaesweep_definition"  # study: search space, fixed settings, objectives
DESCRIPTION_ATTR = "vaesweep_description"  # study: the one-line description
ANALYSIS_ATTR = "vaesweep_analysis"  # study: equivalence margins (the latest run's file)
ANSWER_ATTR = "vaesweep_answer"  # study: the answer, for Optuna's tools (answer/publish.py)
LOOKS_ATTR = "vaesweep_looks"  # study: the blocks each shown answer saw (the error spent)
LAST_RUN_ATTR = "vaesweep_last_run"  # study: when a run last started (written first: a probe)
WARNINGS_ATTR = "vaesweep_warnings"  # study: what the latest run warned of the study itself
PRECISION_ATTR = "vaesweep_precision"  # study: what precision "auto" chose at its first run
FOLDER_ATTR = "folder"  # trial: its folder, relative to the results folder
FOLDER_ID_ATTR = "folder_id"  # trial: a random id, the same in its folder's trial.json
METRICS_ATTR = "metrics"  # trial: the final validation and test metrics
PHASE_ATTR = "phase"  # trial: where the design placed it (design.Phase, as its string)
PHASE_SECONDS_ATTR = "phase_seconds"  # trial: its seconds per phase (run/phases.py)
REPLICATE_ATTR = "replicate"  # trial: its replicate index within its configuration and phase
FAIL_REASON_ATTR = "fail_reason"
PRUNE_REASON_ATTR = "prune_reason"
SEED_ATTR = "seed"  # trial: its seed (settings: the study's definition, the params and this)
EPOCHS_DONE_ATTR = "epochs_done"  # trial: epochs trained so far (updated every epoch)
# Optuna fails a trial whose heartbeat stopped without letting anyone annotate it afterwards
# (a finished trial takes no attributes), so a failed trial without a reason is that case.
STALE_REASON = "no heartbeat for the grace period: its worker was stopped or killed"


def fail_reason(trial: FrozenTrial) -> str:
    return trial.user_attrs.get(FAIL_REASON_ATTR) or STALE_REASON


# A running trial records a heartbeat this often; one silent for the grace period (its worker was
# killed) is marked failed by the next worker that looks. VAESWEEP_GRACE_SECONDS changes the
# grace period (the heartbeat follows at a sixth of it), e.g. for tests or slow shared storage.
DEFAULT_GRACE_SECONDS = 60
SCHEMA_ATTEMPTS = 5  # processes creating a fresh storage at once: the losers retry
PROXY_SECONDS = 10  # a storage proxy that does not answer within this is not there


def default_storage_url(results_dir: Path) -> str:
    return f"sqlite:///{(results_dir / DEFAULT_DB_NAME).resolve()}"


def grace_seconds() -> int:
    raw = os.environ.get("VAESWEEP_GRACE_SECONDS", str(DEFAULT_GRACE_SECONDS))
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= 86_400:
        raise VaesweepError(
            "VAESWEEP_GRACE_SECONDS must be a whole number of seconds from 1 to 86400; "
            f"got {shown(raw)}"
        )
    return value


def check_url(url: str) -> None:
    """Refuse what cannot be a lasting Optuna storage, before anything is written."""
    if "://" not in url:
        raise VaesweepError(
            f"storage {shown(redact(url))} is not a URL (e.g. sqlite:///path/study.db, "
            "postgresql://user:password@host/dbname or journal:///path/study.log)"
        )
    if url.startswith("sqlite") and (url.split("://", 1)[1] in ("", "/") or ":memory:" in url):
        raise VaesweepError(
            f"storage {shown(url)} is an in-memory SQLite database, which vanishes with the "
            "command; give a file: sqlite:///path/study.db"
        )
    if url.startswith("journal"):
        check_journal_url(url)
    if url.startswith("grpc"):
        proxy_address(url)


@contextmanager
def storage_errors(url: str, during: bool = False, reading: bool = False) -> Iterator[None]:
    """A storage that fails (read-only, locked past the busy timeout, full, gone, damaged) is one
    line: `during` a run, finished trials are kept and re-running resumes; `reading` (a report,
    the results API), nothing stored was changed."""
    try:
        yield
    except STORAGE_FAILURES as err:
        cause = first_line(err.__cause__ or err)
        what = "cannot be read" if reading else "failed"
        kept = "finished trials are kept" if during else "nothing was trained"
        kept = "nothing stored was changed" if reading else kept
        again = "re-running resumes once it works again"
        if "malformed" in cause:  # SQLite's word for a damaged file: waiting will not mend it
            again = "its file is damaged: restore it from a copy"
        elif reading:
            again = "try again once it works"
        raise VaesweepError(f"storage {redact(url)} {what}: {cause}; {kept}; {again}") from None


def sqlite_file(url: str) -> Path | None:
    """The file of an SQLite storage URL (its path also in the URI form, `file:PATH?mode=ro`
    with `uri=true`); None for another database."""
    from sqlalchemy.engine import make_url

    if not url.startswith("sqlite"):
        return None
    database = make_url(url).database or ""
    if database.startswith("file:"):
        database = database.removeprefix("file:").split("?", 1)[0]
    return Path(database)


def check_writable_storage(url: str) -> None:
    """A run writes its storage: a journal file, or the folder it is to be made in (and its lock
    beside it), that cannot be written is refused before anything is made."""
    path = journal_file(url)
    if path is None:
        return  # a database says so at the run's first write, before any work
    folder = path.parent
    if os.statvfs(folder).f_flag & os.ST_RDONLY:
        why = "Read-only file system"
    elif not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        why = "Permission denied"
    else:
        return
    raise VaesweepError(
        f"storage {visible(url)} cannot be written: {why}; nothing was trained (reading it, "
        "with report or the Python API, still works)"
    )


def storage_file(url: str) -> Path | None:
    """The file an SQLite or journal storage keeps its records in; None for a server's."""
    return sqlite_file(url) or journal_file(url)


def _create_whole(url: str, engine: dict[str, Any], grace: int) -> None:
    """Make a new SQLite database where no other process can see it empty: its schema is
    written to a file beside it, which is then linked into place only if none is there yet
    (a process that loses that race uses the winner's). So an empty file at a database's path
    is never one that vaesweep is making: it was cut short (a crash, a full disk, a copy)."""
    from sqlalchemy.engine import make_url

    path = sqlite_file(url)
    uri = (make_url(url).database or "").startswith("file:")  # ?mode=ro and such: as given
    if path is None or str(path) in ("", ".", ":memory:") or uri or path.exists():
        return
    if not path.parent.is_dir():
        return  # SQLite's own error names it
    making = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.making")
    try:
        close(_connect(f"sqlite:///{making}", engine, grace))  # before the file is linked
        try:
            os.link(making, path)
        except FileExistsError:
            pass  # another process made it first
    except OSError as err:
        raise VaesweepError(f"cannot create storage {path}: {err.strerror or err}") from None
    finally:
        for leftover in (making, making.with_name(making.name + "-journal")):
            leftover.unlink(missing_ok=True)


def _check_not_emptied(url: str) -> None:
    """Refuse an SQLite file of 0 bytes: vaesweep never shows a database empty while making it
    (`_create_whole`), and Optuna would write a fresh schema into it, so the trial folders
    beside it would then seem another storage's."""
    path = sqlite_file(url)
    if path is None:
        return
    try:
        info = path.stat()
    except (OSError, ValueError):
        return
    if info.st_size == 0:
        raise VaesweepError(
            f"storage {path} is an empty file (0 bytes), not an Optuna database: restore it "
            "from a copy, or move it away to start a new one"
        )


def open_storage(url: str, reading: bool = False) -> optuna.storages.BaseStorage:
    """Connect (creating tables, or a journal's file, if needed); any failure becomes one clear
    line. `reading`: a storage file that does not exist is an error, not made."""
    check_url(url)
    grace = grace_seconds()
    path = storage_file(url)
    if reading and path is not None and not path.exists():
        raise VaesweepError(f"storage {visible(url)}: there is no file {visible(path)}")
    if (journal := journal_file(url)) is not None:
        return _open_journal(url, journal, grace)
    if url.startswith("grpc"):
        return _open_proxy(url, grace)
    # Several workers may write at once: SQLite waits for its lock instead of failing at once
    # (SQLITE_BUSY_SECONDS, then `reconnect` waits on, saying so).
    # A server's pooled connections are checked before use, so a restart costs no failed call.
    engine: dict[str, Any] = (
        {"connect_args": {"timeout": SQLITE_BUSY_SECONDS}}
        if url.startswith("sqlite")
        else {"pool_pre_ping": True}
    )
    if url.startswith("sqlite"):
        _check_not_emptied(url)
    try:
        if url.startswith("sqlite"):
            _create_whole(url, engine, grace)
        return waiting(locked)(_connect, url, engine, grace)  # a lock at the schema check too
    except VaesweepError:
        raise
    except ModuleNotFoundError as err:
        raise VaesweepError(
            f"storage {redact(url)}: its database driver is missing ({err})"
        ) from None
    except Exception as err:  # SQLAlchemy's URL, connection and schema errors
        raise VaesweepError(f"cannot open storage {redact(url)}: {first_line(err)}") from None


def _open_journal(url: str, path: Path, grace: int) -> optuna.storages.BaseStorage:
    try:
        return BeatingJournalStorage(JournalFile(path), heartbeat_interval=max(1, grace // 6))
    except STORAGE_FAILURES as err:
        raise VaesweepError(f"cannot open storage {visible(url)}: {first_line(err)}") from None
    except (KeyError, TypeError, ValueError, AttributeError):  # JSON lines, but not Optuna's
        raise VaesweepError(
            f"cannot open storage {visible(url)}: {visible(path)} is not an Optuna journal "
            "(its lines are not the operations Optuna writes): restore it from a copy, or give "
            "another file"
        ) from None


def proxy_address(url: str) -> tuple[str, int]:
    """(host, port) of a `grpc://HOST:PORT` URL: the address `vaesweep serve-storage` listens on."""
    try:
        parsed = urllib.parse.urlsplit(url)
        host, port = parsed.hostname, parsed.port
    except ValueError:
        host, port = None, None
    if parsed.scheme != "grpc" or not host or not port or parsed.path not in ("", "/"):
        raise VaesweepError(
            f"storage {visible(url)}: a storage proxy is grpc://HOST:PORT, the address "
            "'vaesweep serve-storage' listens on (e.g. grpc://10.0.0.5:13000)"
        )
    return host, port


def _open_proxy(url: str, grace: int) -> optuna.storages.BaseStorage:
    """A client of the proxy at `url`, once it answers as one; nothing listening there is an
    error at once, and a wait past a second is said."""
    host, port = proxy_address(url)
    try:
        _reach(url, host, port)
    except OSError as err:
        raise VaesweepError(
            f"cannot open storage {visible(url)}: nothing answers at {visible(host)} port {port} "
            f"({err.strerror or err}); start the proxy there with 'vaesweep serve-storage URL "
            f"--host {visible(host)} --port {port}'"
        ) from None
    storage = BeatingGrpcStorage(host, port, heartbeat_interval=max(1, grace // 6))
    try:
        storage.wait_server_ready(timeout=PROXY_SECONDS)
    except ConnectionError:
        storage.close()
        raise VaesweepError(
            f"cannot open storage {visible(url)}: {visible(host)} port {port} answers, but not as "
            f"a storage proxy within {PROXY_SECONDS} s"
        ) from None
    return storage


def _reach(url: str, host: str, port: int) -> None:
    """Connect to the proxy's port once (refused: at once), saying so if it takes a while."""
    try:
        socket.create_connection((host, port), timeout=1).close()
    except TimeoutError:
        print(
            f"storage proxy {visible(url)} is slow to answer; waiting up to {PROXY_SECONDS} s",
            file=sys.stderr,
        )
        socket.create_connection((host, port), timeout=PROXY_SECONDS).close()


def _schema_race(err: BaseException) -> bool:
    """Another process created the schema at the same moment (a duplicate version row, or a
    table that "already exists"): it is there now, so trying again succeeds."""
    return isinstance(err, sqlalchemy.exc.IntegrityError) or (
        isinstance(err, sqlalchemy.exc.DBAPIError) and "already exists" in str(err)
    )


@tenacity.retry(
    retry=tenacity.retry_if_exception(_schema_race),
    stop=tenacity.stop_after_attempt(SCHEMA_ATTEMPTS),
    wait=tenacity.wait_incrementing(start=0.2, increment=0.2),
    reraise=True,
)
def _connect(url: str, engine: dict[str, Any] | None, grace: int) -> optuna.storages.BaseStorage:
    with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna 5
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return ReconnectingStorage(
            url, engine_kwargs=engine, heartbeat_interval=max(1, grace // 6), grace_period=grace
        )


# Query keys that carry a secret in a SQLAlchemy URL (password=, sslpassword=, passwd=, ...).
_SECRET_KEYS = ("pass", "pwd", "secret", "token")


def redact(url: str) -> str:
    """The URL with every credential hidden, for messages and pages: the password of
    `user:password@host` and any password-like query value (`?password=...`)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        # Not a URL SQLAlchemy reads (refused elsewhere): keep the scheme and host alone.
        scheme, sep, rest = url.partition("://")
        rest = rest if sep else url
        hidden = "***@" if "@" in rest or "?" in rest else ""
        return f"{scheme + sep if sep else ''}{hidden}{rest.rpartition('@')[2].partition('?')[0]}"
    secret = [key for key in parsed.query if any(word in key.lower() for word in _SECRET_KEYS)]
    if parsed.password is None and not secret:
        return url  # nothing to hide: shown exactly as given (SQLAlchemy would quote a path)
    shown = parsed.set(query={}).render_as_string(hide_password=True)
    pairs = [
        f"{key}={'***' if key in secret else value}"
        for key, values in parsed.query.items()
        for value in (values if isinstance(values, tuple) else (values,))
    ]
    return f"{shown}?{'&'.join(pairs)}" if pairs else shown


def best_trials(study: optuna.Study) -> list[FrozenTrial]:
    """The best trial, or the Pareto front of a multi-objective study; empty before any."""
    try:
        return study.best_trials if len(study.directions) > 1 else [study.best_trial]
    except ValueError:
        return []


def quiet_optuna() -> None:
    """vaesweep's own progress replaces Optuna's per-trial log lines and experimental notes."""
    optuna.logging.set_verbosity(logging.ERROR)  # failed trials are reported with their reasons
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    # But a journal's lock held by another process is waited for aloud: Optuna says so after
    # 10 s (and frees a lock left by a killed process after 30), its path made visible.
    journal_lock = logging.getLogger(JOURNAL_LOCK_LOGGER)
    journal_lock.setLevel(logging.WARNING)
    if not any(isinstance(f, _VisibleMessage) for f in journal_lock.filters):
        journal_lock.addFilter(_VisibleMessage())


JOURNAL_LOCK_LOGGER = "optuna.storages.journal._file"  # Optuna's lock waits, logged there


class _VisibleMessage(logging.Filter):
    """A log record's message with its control characters written as escapes."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = visible(record.getMessage()), ()
        return True
