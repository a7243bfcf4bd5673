"""Ctrl-C, SIGTERM and SIGHUP (a closed terminal): the first stops cleanly, a second leaves at
once.

Outside a trial loop, the first signal raises KeyboardInterrupt where the program is. Inside one
(`safe_points_only`), it only records the request: raising in the middle of a storage call can
leave a database connection holding a lock that the failure record then waits on. The trainer
and the trial loop call `stop_if_requested()` between steps, where nothing is half-written, so the
running trial is recorded as failed with the signal's name and the command exits with a short
message. A second signal exits at once. That too is safe: the storage's transactions roll back,
trial folders only ever appear by rename, and the abandoned trial's heartbeat goes stale, so the
next run marks it failed.
"""

from __future__ import annotations

import gc
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing import resource_tracker

EXIT_INTERRUPTED = 130  # the shell's code for death by SIGINT
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# Worker processes to kill on a second signal, so none outlives the command.
children: list[int] = []
_requested: str | None = None  # the first signal's name, once one came
_deferring = False
_program = False  # the `vaesweep` program, not a library call (`as_program`)
_worker = False  # a worker process, whose parent speaks for it


def stop_requested() -> bool:
    """Whether a first signal came (the process is stopping at its next safe point)."""
    return _requested is not None


def stop_if_requested() -> None:
    """A safe point: raise KeyboardInterrupt here if a stop was asked for."""
    if _requested is not None:
        raise KeyboardInterrupt(_requested)


def _leave_now(signum: int, frame) -> None:
    # The workers, and multiprocessing's resource tracker, which would otherwise print a warning
    # about the workers' semaphores after this process has gone.
    tracker = getattr(resource_tracker, "_resource_tracker", None)
    for pid in [*children, getattr(tracker, "_pid", None) if children else None]:
        if pid is None:
            continue
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    os.write(2, b"\ninterrupted again: leaving at once; re-run the same command to continue\n")
    os._exit(EXIT_INTERRUPTED)


STOPPING = (
    b"\nstopping at the next safe point (a training step): the running trials are recorded as "
    b"failed; a second Ctrl-C leaves at once\n"
)


def _first(signum: int, frame) -> None:
    global _requested
    _requested = signal.Signals(signum).name
    for sig in SIGNALS:
        signal.signal(sig, _leave_now)
    # Said at once where the stop takes a while: a safe point may be a step away, and workers
    # first record their trials (a worker's parent speaks for it).
    if (_deferring or children) and not _worker:
        os.write(2, STOPPING)
    if not _deferring:
        stop_if_requested()


@contextmanager
def graceful_interrupts(worker: bool = False) -> Iterator[None]:
    """Within this block, SIGINT, SIGTERM and SIGHUP behave as described above (main thread
    only). A worker process ignores SIGINT and SIGHUP (a Ctrl-C or a closed terminal reaches the
    whole process group) and stops on the one SIGTERM its parent sends."""
    global _requested, _worker
    _requested, _worker = None, worker
    previous = {sig: signal.getsignal(sig) for sig in SIGNALS}
    signal.signal(signal.SIGTERM, _first)
    for sig in (signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN if worker else _first)
    try:
        yield
    finally:
        _requested = None
        for sig, handler in previous.items():
            outermost = handler in (signal.SIG_DFL, signal.default_int_handler)
            signal.signal(sig, signal.SIG_IGN if _program and outermost else handler)


def as_program() -> None:
    """This process is the `vaesweep` program: once its command has finished and said so, a
    signal until the interpreter exits (which takes a moment after torch) no longer stops
    anything, so it is ignored rather than turning a finished command into a death by signal
    with no line. (The outermost `graceful_interrupts` leaves the signals ignored.)"""
    global _program
    _program = True


def skip_final_collection() -> None:
    """Call as a process ends: its objects are then left to the operating system instead of being
    collected one by one, which takes 0.5-0.7 s after torch, matplotlib and pandas (BENCHMARKS.md,
    "Ctrl-C and exit"). atexit handlers still run; nothing of ours waits on a collection."""
    gc.freeze()


def start_resource_tracker() -> None:
    """Start multiprocessing's resource tracker (which the workers share) with SIGHUP ignored:
    it ignores SIGINT and SIGTERM itself, but a closed terminal signals the whole process group,
    and a tracker killed then is relaunched empty, printing a KeyError for each worker semaphore
    it never saw. An ignored signal stays ignored in the program it runs."""
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        resource_tracker.ensure_running()
    finally:
        signal.signal(signal.SIGHUP, previous)


@contextmanager
def safe_points_only() -> Iterator[None]:
    """Within this block a first signal takes effect at the next `stop_if_requested()` only."""
    global _deferring
    stop_if_requested()
    _deferring = True
    try:
        yield
    finally:
        _deferring = False
    stop_if_requested()
