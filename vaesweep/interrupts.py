"""Ctrl-C and SIGTERM: the first stops cleanly, a second leaves at once.

The first signal raises KeyboardInterrupt wherever the program is: Optuna records the running
trial as failed (with the reason the objective adds), and the command exits with a short message.
A second signal exits immediately. That too is safe: the storage's transactions roll back, trial
folders only ever appear by rename, and the abandoned trial's heartbeat goes stale, so the next run
marks it failed.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager

EXIT_INTERRUPTED = 130  # the shell's code for death by SIGINT
# Worker processes to kill on a second signal, so none outlives the command.
children: list[int] = []


def _leave_now(signum: int, frame) -> None:
    for pid in children:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    os.write(2, b"\ninterrupted again: leaving at once; re-run the same command to continue\n")
    os._exit(EXIT_INTERRUPTED)


def _first(signum: int, frame) -> None:
    signal.signal(signal.SIGINT, _leave_now)
    signal.signal(signal.SIGTERM, _leave_now)
    raise KeyboardInterrupt(signal.Signals(signum).name)


@contextmanager
def graceful_interrupts(worker: bool = False) -> Iterator[None]:
    """Within this block, SIGINT and SIGTERM behave as described above (main thread only).
    A worker process ignores SIGINT (a Ctrl-C reaches the whole process group) and stops on the
    one SIGTERM its parent sends."""
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGTERM, _first)
    signal.signal(signal.SIGINT, signal.SIG_IGN if worker else _first)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
