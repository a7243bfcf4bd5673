"""Where a trial's time goes: its seconds per phase, each second counted once, so the next
slowness shows without a profiler (`phase_seconds` in trial.json and the trial's record, and the
study's totals at the end of a run)."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

# waiting: for the design's next place or the start lock, from the worker's previous trial;
# start-up: the trial's settings; data: its splits; training: the epochs, validation included;
# evaluation: the final metrics; storage: the trial's record and folder.
PHASES = ("waiting", "start-up", "data", "training", "evaluation", "storage")


class PhaseClock:
    """Seconds per phase. A phase entered inside another (a storage write during training)
    pauses the outer one, so the phases add up to the time clocked."""

    def __init__(self, waited: float = 0.0) -> None:
        self.seconds = dict.fromkeys(PHASES, 0.0)
        self.seconds["waiting"] = waited
        self._inside: list[str] = []
        self._since = time.perf_counter()

    @contextmanager
    def __call__(self, phase: str) -> Iterator[None]:
        self._switch()
        self._inside.append(phase)
        try:
            yield
        finally:
            self._switch()
            self._inside.pop()

    def _switch(self) -> None:
        now = time.perf_counter()
        if self._inside:
            self.seconds[self._inside[-1]] += now - self._since
        self._since = now

    def rounded(self) -> dict[str, float]:
        return {phase: round(seconds, 3) for phase, seconds in self.seconds.items()}


def totals_line(per_trial: list[Mapping[str, float]]) -> str | None:
    """The phases' totals over trials, largest first, as shares: "time per phase, 12 trials:
    training 81% (9 min 2 s), evaluation 12%, ..."; None without any."""
    if not per_trial:
        return None
    total = {p: sum(float(t.get(p, 0.0)) for t in per_trial) for p in PHASES}
    whole = sum(total.values())
    if whole <= 0:
        return None
    parts = [
        f"{phase} {seconds / whole:.0%} ({_duration(seconds)})"
        for phase, seconds in sorted(total.items(), key=lambda kv: -kv[1])
        if seconds >= 0.005 * whole
    ]
    trials = f"{len(per_trial)} trial" + ("" if len(per_trial) == 1 else "s")
    return f"time per phase, {trials}: {', '.join(parts)}"


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s"
