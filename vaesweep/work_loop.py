"""One worker's loop: start trials while the study needs more, each in the design's next free
place, and stop at exactly the requested count (on one machine or several)."""

from __future__ import annotations

import fcntl
import time
from dataclasses import dataclass, field
from pathlib import Path

import optuna
import torch
from optuna.trial import FrozenTrial, TrialState

from vaesweep import interrupts
from vaesweep.design import EXPLORE, WAIT, holds_its_slot, next_slot, slot_of
from vaesweep.device import Compute, placed
from vaesweep.errors import VaesweepError, first_line
from vaesweep.objective import Objective
from vaesweep.progress import Progress
from vaesweep.storage import (
    FAIL_REASON_ATTR,
    FINISHED_STATES,
    STORAGE_FAILURES,
    best_trials,
    environment_failure,
    fail_reason,
    grace_seconds,
    open_storage,
    redact,
)
from vaesweep.studies import StudySpec
from vaesweep.train import TrainingDiverged

MAX_FAILURES_IN_A_ROW = 5
WAIT_SECONDS = 2.0  # poll interval while other workers finish the last trials
RECORD_RETRIES = (1.0, 2.0, 4.0, 8.0)  # seconds between attempts to record a failed trial


@dataclass(frozen=True)
class RunRequest:
    """Everything a worker needs (picklable, for worker processes)."""

    spec: StudySpec
    n_trials: int
    results_dir: Path
    storage_url: str
    study_name: str
    data_dir: Path | None
    compute: Compute  # decided once for the run, the same in every worker
    seed: int
    threads: int
    first_trial: int  # the first trial number of this session
    gpus: int = 0  # visible GPUs of a CUDA run: worker i trains on GPU i mod gpus


@dataclass
class WorkerOutcome:
    ran: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)  # workers that ended early, and why

    def merge(self, other: WorkerOutcome) -> None:
        self.ran += other.ran
        self.failed += other.failed
        self.errors += other.errors


class SurplusTrial(Exception):
    """Another worker already started the last trial the study needed, or its place in the
    design."""


def counts(study: optuna.Study) -> tuple[int, int]:
    """(finished, running) trials."""
    states = [t.state for t in study.get_trials(deepcopy=False)]
    return sum(s in FINISHED_STATES for s in states), states.count(TrialState.RUNNING)


def failing_streak(study: optuna.Study, since: int) -> tuple[int, str]:
    """Failed trials in a row at the end of this session's trials (numbered `since` on), across
    all workers, and the last failure's reason. Surplus trials and running ones do not count."""
    streak, reason = 0, ""
    for trial in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number, reverse=True):
        if trial.number < since:
            break
        why = fail_reason(trial)
        if trial.state == TrialState.RUNNING or why.startswith("surplus"):
            continue
        if trial.state != TrialState.FAIL:
            break
        streak, reason = streak + 1, reason or why
    return streak, reason


class _StartLock:
    """Serialises 'count the trials, then start one' among the workers of one machine, so they
    never start more trials than the study needs. Released once the new trial is RUNNING."""

    def __init__(self, path: Path):
        self.path, self.handle = path, None

    def acquire(self) -> None:
        self.handle = open(self.path, "a")  # noqa: SIM115 (held across calls)
        fcntl.flock(self.handle, fcntl.LOCK_EX)

    def release(self) -> None:
        if self.handle is not None:
            fcntl.flock(self.handle, fcntl.LOCK_UN)
            self.handle.close()
            self.handle = None


def work(request: RunRequest, data, progress: Progress, worker: int = 0) -> WorkerOutcome:
    """One worker's loop: start trials while the study needs more, then stop.

    A trial starts only while finished + running trials are fewer than requested, checked under a
    lock shared by the workers of this machine; it takes the design's next free place (queued
    with `enqueue_trial`). Workers on other machines may still race for the last trial or for
    the same place; the storage numbers trials, and one that finds the study already full, or
    its place held (counting only lower-numbered trials), steps aside as a failed 'surplus'
    trial. So the study ends with exactly the requested number of finished trials, on any
    storage, each place in the design filled once.
    """
    torch.set_num_threads(request.threads)
    compute = placed(request.compute, worker, request.gpus)
    if compute.device.type == "cuda":
        torch.cuda.set_device(compute.device)  # what torch puts on "cuda" lands there too
    spec = request.spec
    study = optuna.load_study(
        study_name=request.study_name, storage=open_storage(request.storage_url),
        pruner=spec.make_pruner(),
    )  # fmt: skip
    # A fresh seed per session and worker, so resumed or parallel runs do not replay suggestions.
    study.sampler = spec.make_sampler((request.seed + len(study.trials) + 7919 * worker) % 2**32)
    objective = Objective(
        spec, request.study_name, data, request.results_dir, compute, progress, request.seed
    )
    lock = _StartLock(request.results_dir / f".{request.study_name}.start-lock")
    grid = spec.grid
    outcome = WorkerOutcome()

    current: dict[str, optuna.Trial] = {}  # the trial this worker runs now

    def guarded(trial: optuna.Trial) -> float | list[float]:
        lock.release()  # the trial is RUNNING now, so the next count includes it
        current["trial"] = trial
        trials = study.get_trials(deepcopy=False)
        started = FINISHED_STATES + (TrialState.RUNNING,)
        ahead = [t for t in trials if t.number < trial.number and t.state in started]
        if len(ahead) >= request.n_trials:
            trial.set_user_attr(FAIL_REASON_ATTR, "surplus: the study was already full")
            raise SurplusTrial
        me = slot_of(next(t for t in trials if t.number == trial.number))
        if me is not None and me[0] != EXPLORE:
            if any(slot_of(t) == me and holds_its_slot(t) for t in ahead):
                trial.set_user_attr(FAIL_REASON_ATTR, "surplus: its place was already taken")
                raise SurplusTrial
        try:
            return objective(trial)
        except optuna.TrialPruned:
            raise
        except Exception as err:
            # No failed trial without its reason (the objective names divergence itself).
            failure = environment_failure(err)
            reason = _what_failed(failure) if failure else f"error: {first_line(err)}"
            if FAIL_REASON_ATTR not in _quietly(lambda: trial.user_attrs, {FAIL_REASON_ATTR: 0}):
                _quietly(lambda: trial.set_user_attr(FAIL_REASON_ATTR, reason[:500]))
            raise

    def after_trial(study: optuna.Study, trial: FrozenTrial) -> None:
        if trial.user_attrs.get(FAIL_REASON_ATTR, "").startswith("surplus"):
            return
        outcome.ran += 1
        outcome.failed += trial.state == TrialState.FAIL
        best = {t.number for t in best_trials(study)}
        progress.trial_finished(trial, counts(study)[0], best)

    with interrupts.safe_points_only():
        while failing_streak(study, request.first_trial)[0] < MAX_FAILURES_IN_A_ROW:
            interrupts.stop_if_requested()
            lock.acquire()
            try:
                finished, running = counts(study)
                if finished >= request.n_trials:
                    break
                slot = WAIT
                if finished + running < request.n_trials:
                    trials = study.get_trials(deepcopy=False)
                    slot = next_slot(spec.design, grid, trials, spec.directions)
                if slot is WAIT:
                    lock.release()
                    # The last trials run elsewhere; if their worker died, its heartbeat stops
                    # and the trial is failed after the grace period, and this worker takes over.
                    optuna.storages.fail_stale_trials(study)
                    time.sleep(WAIT_SECONDS)
                    continue
                current.clear()  # the trial about to start, once it has
                study.enqueue_trial(slot.params or {}, user_attrs=slot.user_attrs())
                try:
                    study.optimize(
                        guarded, n_trials=1, catch=(TrainingDiverged, SurplusTrial),
                        callbacks=[after_trial],
                    )  # fmt: skip
                except (ValueError, optuna.exceptions.UpdateFinishedTrialError):
                    # This worker was stopped (SIGSTOP, a suspended laptop) past the grace
                    # period, and the heartbeat check failed its trial meanwhile: that is the
                    # normal outcome, not an error. Anything else is.
                    if "trial" not in current or not _failed_while_away(study, current["trial"]):
                        raise
                except Exception as err:
                    if (failure := environment_failure(err)) is None:
                        raise
                    running = current.get("trial")
                    raise _environment_error(failure, study, running, request) from None
            finally:
                lock.release()
    return outcome


def _what_failed(failure: BaseException) -> str:
    if isinstance(failure, OSError):
        where = f" {failure.filename}" if failure.filename else ""
        return f"could not write{where}: {failure.strerror or first_line(failure)}"
    return f"the storage failed: {first_line(failure.__cause__ or failure)}"


def _environment_error(
    failure: BaseException, study: optuna.Study, running: optuna.Trial | None, request: RunRequest
) -> VaesweepError:
    """One line for a storage or disk that failed during a trial, with that trial recorded as
    failed if the storage answers within RECORD_RETRIES (a restarting database); otherwise the
    heartbeat check fails it once the grace period has passed."""
    recorded = running is None
    for delay in (0.0, *RECORD_RETRIES) if running is not None else ():
        time.sleep(delay)
        try:
            stored = next(t for t in study.get_trials(deepcopy=False) if t.number == running.number)
            if stored.state == TrialState.RUNNING:
                if FAIL_REASON_ATTR not in stored.user_attrs:
                    running.set_user_attr(FAIL_REASON_ATTR, _what_failed(failure))
                study.tell(running, state=TrialState.FAIL)
            recorded = True
            break
        except (*STORAGE_FAILURES, ValueError, optuna.exceptions.UpdateFinishedTrialError):
            continue
    trial = f"trial {running.number}" if running is not None else "the run"
    outcome = f"{trial} was recorded as failed"
    if not recorded:
        outcome = f"{trial} stays running until its heartbeat lapses ({grace_seconds()} s)"
    if isinstance(failure, OSError):
        what = f"{trial} {_what_failed(failure)}"
        again = "re-running resumes once there is room"
    else:
        what = f"storage {redact(request.storage_url)} failed during {trial}: "
        what += first_line(failure.__cause__ or failure)
        again = "re-running resumes once it works again"
    return VaesweepError(f"{what}; {outcome}; finished trials are kept; {again}")


def _quietly(call, otherwise=None):
    """`call()`, or `otherwise` where the storage fails (it is already failing: say so once)."""
    try:
        return call()
    except STORAGE_FAILURES:
        return otherwise


def _failed_while_away(study: optuna.Study, running: optuna.Trial) -> bool:
    trial = next((t for t in study.get_trials(deepcopy=False) if t.number == running.number), None)
    return trial is not None and trial.state == TrialState.FAIL
