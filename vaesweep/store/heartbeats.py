"""Which running trials are alive: each running trial beats, and a trial whose beat has stopped
is failed so that its place can be trained again.

Optuna fails a trial whose last beat is older than the grace period by the checking process's
database clock. On SQLite that is each machine's own clock, so a clock ahead fails live trials
and a clock behind (or a beat written "in the future") never fails a dead one; and a trial with no
beat at all (a crash before its first beat, a trial made by plain Optuna) is never failed. Here a
trial is dead once its stored beat has not changed for the grace period of the checker's own
monotonic time: no two clocks are compared, and a missing beat is a beat that never changes.

Optuna's heartbeat thread and table are internals: store/optuna_private.py starts the thread
and reads the table.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import optuna

from vaesweep.store import optuna_private
from vaesweep.store.fate import FATE_ATTR, Fate
from vaesweep.store.storage import FAIL_REASON_ATTR, STALE_REASON


@contextlib.contextmanager
def beating(storage: optuna.storages.BaseStorage, study: optuna.Study, number: int) -> Iterator:
    """Trial `number` beats while inside this block (every sixth of the grace period)."""
    with optuna_private.beating(storage, study, number):
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
            stale = {FAIL_REASON_ATTR: STALE_REASON, FATE_ATTR: Fate.STALE}
            with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError, KeyError):
                if optuna_private.fail_trial(self.storage, self.study, number, stale):
                    failed.append(number)
            self.seen.pop(number, None)
        return failed

    def _beats(self) -> dict[int, object]:
        return optuna_private.running_heartbeats(self.storage, self.study)


def describe_wait(silent: dict[int, float], grace: float) -> str:
    """What a worker with nothing to start waits for, in a line."""
    if not silent:
        return "waiting for the study's last trials to be recorded"
    # A running trial beats every sixth of the grace period: two beats' time is not silence.
    if all(quiet < grace / 3 for quiet in silent.values()):
        numbers = ", ".join(str(number) for number in sorted(silent))
        if len(silent) == 1:
            return f"waiting for running trial {numbers} to finish (it is alive: it beats)"
        return f"waiting for running trials {numbers} to finish (they are alive: they beat)"
    parts = [
        f"trial {number} (no new heartbeat for {quiet:.0f} s of {grace:.0f})"
        for number, quiet in sorted(silent.items())
    ]
    return "waiting for running " + ", ".join(parts) + "; a silent trial is failed and retrained"
