"""What a failing storage raises, and which failures are waited out: a database server away
(restarting, a network blip) or an SQLite file another process holds locked is retried, saying
so once, for up to RECONNECT_SECONDS; anything else (a read-only or full disk, a damaged file)
fails at once, since waiting would not mend it."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable

import grpc
import optuna
import sqlalchemy.exc
import tenacity

from vaesweep.errors import first_line, visible

# Waited for this long, call by call, before a lost server or a locked file counts as a failure;
# a dropped pooled connection is replaced (SQLAlchemy's pre-ping).
RECONNECT_SECONDS = 60

# What failing storage or disk raises, wherever it surfaces (see `environment_failure`): a
# database's, a journal file's (store/journal.py) or a storage proxy's.
STORAGE_FAILURES = (
    optuna.exceptions.StorageInternalError,
    sqlalchemy.exc.SQLAlchemyError,
    grpc.RpcError,
)


def environment_failure(err: BaseException) -> BaseException | None:
    """The storage or disk failure behind `err`, if any: Optuna's own bookkeeping, failing in
    turn, can replace it with an unrelated error (an unbound local, "Should not reach")."""
    seen = set()
    cause: BaseException | None = err
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, (*STORAGE_FAILURES, OSError)):
            return cause
        cause = cause.__cause__ or cause.__context__
    return None


def waiting(waited_for: Callable[[BaseException], bool]) -> tenacity.Retrying:
    """Retries while `waited_for(error)`, for up to RECONNECT_SECONDS, saying so once."""
    return tenacity.Retrying(
        retry=tenacity.retry_if_exception(waited_for),
        stop=tenacity.stop_after_delay(RECONNECT_SECONDS),
        wait=tenacity.wait_exponential(multiplier=0.5, max=5),
        before_sleep=_say_reconnecting,
        reraise=True,
    )


def waiting_for(url: str) -> tenacity.Retrying:
    """What a storage at `url` waits out: a locked SQLite file, or a lost server connection."""
    return waiting(locked if url.startswith("sqlite") else lost_connection)


def _driver_error(err: BaseException) -> sqlalchemy.exc.DBAPIError | None:
    cause = environment_failure(err)
    while cause is not None and not isinstance(cause, sqlalchemy.exc.DBAPIError):
        cause = cause.__cause__
    return cause


def lost_connection(err: BaseException) -> bool:
    """A failure that reconnecting can cure: the server closed or refused the connection."""
    cause = _driver_error(err)
    return cause is not None and (
        cause.connection_invalidated
        or isinstance(cause, (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError))
    )


def locked(err: BaseException) -> bool:
    """SQLite's busy timeout ran out: another process holds the file locked."""
    cause = _driver_error(err)
    return cause is not None and "database is locked" in str(cause.orig)


_said_reconnecting = [-math.inf]  # when it was last said: once an outage, not once a call


def _say_reconnecting(state: tenacity.RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome is not None else None
    if error is not None and time.monotonic() - _said_reconnecting[0] > RECONNECT_SECONDS:
        _said_reconnecting[0] = time.monotonic()
        cause = visible(first_line(_driver_error(error) or error))
        what = (
            f"storage locked by another process ({cause}); waiting"
            if locked(error)
            else f"storage connection lost ({cause}); reconnecting"
        )
        print(f"{what} for up to {RECONNECT_SECONDS} s", file=sys.stderr)
