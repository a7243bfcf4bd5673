"""How a trial ended, stored with it: what counts as data, what frees its place, what is a
failure of the run. Read with `fate_of`, never from the text of its reason (`fail_reason`, which
says it in words for people)."""

from __future__ import annotations

from enum import StrEnum

from optuna.trial import FrozenTrial, TrialState

from vaesweep.store.storage import FAIL_REASON_ATTR

FATE_ATTR = "fate"  # trial: its Fate's value, set before a failed trial is told


class Fate(StrEnum):
    COMPLETED = "completed"  # trained its whole protocol
    PRUNED = "pruned"  # stopped early by the pruner (explorations only)
    DIVERGED = "diverged"  # its loss became non-finite: its seed would diverge again, so data
    SURPLUS = "surplus"  # stepped aside: the study was full, or its place taken
    STALE = "stale"  # failed by liveness: its worker stopped beating (killed or stopped)
    INTERRUPTED = "interrupted"  # a signal stopped it (Ctrl-C, SIGTERM, SIGHUP)
    # trained and evaluated, but the artifact store failed to take its folder: the folder is
    # kept where it was written (never cleaned up as a crash's debris)
    UNSTORED = "unstored"
    ERROR = "error"  # anything else: the storage, the disk, a bug

    @property
    def holds_its_place(self) -> bool:
        """Whether the trial fills its place in the design: a diverged one does (its seed is
        fixed, so a re-run would diverge again); interrupted, stale and failed ones do not."""
        return self in (Fate.COMPLETED, Fate.PRUNED, Fate.DIVERGED)


def fate_of(trial: FrozenTrial) -> Fate | None:
    """A finished trial's fate (None while it runs or waits). A failed trial without one was
    failed by something other than vaesweep's trial loop: by its reason's absence, Optuna's own
    heartbeat check (STALE); else an error."""
    if trial.state == TrialState.COMPLETE:
        return Fate.COMPLETED
    if trial.state == TrialState.PRUNED:
        return Fate.PRUNED
    if trial.state != TrialState.FAIL:
        return None
    try:
        return Fate(trial.user_attrs[FATE_ATTR])
    except (KeyError, ValueError):
        return Fate.ERROR if trial.user_attrs.get(FAIL_REASON_ATTR) else Fate.STALE
