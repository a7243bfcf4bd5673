"""Run a study until it has the requested number of finished trials."""

from __future__ import annotations

import fcntl
import multiprocessing
import os
import queue
import re
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import optuna
import torch
from optuna.trial import FrozenTrial, TrialState

from vaesweep import interrupts
from vaesweep.artifacts import clean_debris
from vaesweep.config import TrainConfig
from vaesweep.data import load_fashion_mnist, make_splits
from vaesweep.design import EXPLORE, WAIT, holds_its_slot, next_slot, slot_of
from vaesweep.errors import VaesweepError
from vaesweep.interrupts import graceful_interrupts
from vaesweep.layout import check_writable
from vaesweep.objective import Objective
from vaesweep.progress import Progress
from vaesweep.storage import (
    DEFINITION_ATTR,
    DESCRIPTION_ATTR,
    FAIL_REASON_ATTR,
    FINISHED_STATES,
    LAST_RUN_ATTR,
    best_trials,
    check_url,
    default_storage_url,
    first_line,
    grace_seconds,
    open_storage,
    quiet_optuna,
    storage_errors,
)
from vaesweep.studies import StudySpec
from vaesweep.study_data import collect
from vaesweep.train import TrainingDiverged, resolve_device

MAX_FAILURES_IN_A_ROW = 5
WAIT_SECONDS = 2.0  # poll interval while other workers finish the last trials


@dataclass
class RunSummary:
    study_name: str
    storage_url: str
    results_dir: Path
    target: int
    finished: int
    ran: int
    failed: int
    answers: list[str]  # one sentence per objective, from the comparable trials


NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def check_name(name: str) -> str:
    """A study's name becomes a folder under --results: a plain name, never a path."""
    if not NAME.fullmatch(name):
        raise VaesweepError(
            f"study name {name!r} is not a plain name: use 1-100 letters, digits, '.', '_' or "
            "'-', starting with a letter or digit"
        )
    return name


def _check_definition(study: optuna.Study, spec: StudySpec, results_dir: Path) -> None:
    """A stored study of this name must have been created from the same definition."""
    # Trials first: a trial only ever exists after its study's definition was stored, so a
    # worker starting beside another never takes that study for a foreign one.
    has_trials = bool(study.get_trials(deepcopy=False))
    stored = study.user_attrs.get(DEFINITION_ATTR)
    wanted = spec.definition()
    if stored is None:
        if has_trials:
            raise VaesweepError(
                f"study '{study.study_name}' exists in this storage but was not made by vaesweep; "
                "choose another --name"
            )
        folder = results_dir / study.study_name
        if folder.is_dir() and any(folder.glob("trial-*")):
            raise VaesweepError(
                f"{folder} holds trial folders of a study this storage does not know; "
                "move them away or choose another --results or --name"
            )
        study.set_user_attr(DEFINITION_ATTR, wanted)
        study.set_user_attr(DESCRIPTION_ATTR, spec.description)
        study.set_metric_names(list(spec.objectives))  # so dashboards name the values
        return
    for part in ("search", "fixed", "objectives", "design"):
        if stored.get(part) != wanted[part]:
            raise VaesweepError(
                f"study '{study.study_name}' in this storage was created with different {part} "
                f"({_difference(stored.get(part), wanted[part])}); use another --name to keep both"
            )


def _difference(stored, wanted) -> str:
    """The keys that differ between two settings tables, or both values when not tables."""
    if not isinstance(stored, dict) or not isinstance(wanted, dict):
        return f"{stored} vs now {wanted}"
    keys = sorted(k for k in stored.keys() | wanted.keys() if stored.get(k) != wanted.get(k))
    return ", ".join(f"{k}: {stored.get(k, 'unset')} vs now {wanted.get(k, 'unset')}" for k in keys)


@dataclass(frozen=True)
class RunRequest:
    """Everything a worker needs (picklable, for worker processes)."""

    spec: StudySpec
    n_trials: int
    results_dir: Path
    storage_url: str
    study_name: str
    data_dir: Path | None
    device: str
    seed: int
    threads: int
    first_trial: int  # the first trial number of this session


@dataclass
class WorkerOutcome:
    ran: int = 0
    failed: int = 0

    def merge(self, other: WorkerOutcome) -> None:
        self.ran += other.ran
        self.failed += other.failed


class SurplusTrial(Exception):
    """Another worker already started the last trial the study needed, or its place in the
    design."""


def run_study(
    spec: StudySpec,
    n_trials: int,
    results_dir: Path,
    progress: Progress,
    storage_url: str | None = None,
    study_name: str | None = None,
    data_dir: Path | None = None,
    device: str = "auto",
    seed: int = 0,
    jobs: int = 1,
    warn: Callable[[str], None] = lambda message: None,
) -> RunSummary:
    """Run trials until `n_trials` are finished (completed or pruned); resumes where it stopped.
    With `jobs` > 1, that many worker processes share the study and the cores."""
    if n_trials < 1:
        raise VaesweepError(f"--trials must be at least 1; got {n_trials}")
    cores = os.cpu_count() or 1
    if not 1 <= jobs <= cores:
        raise VaesweepError(f"--jobs must be between 1 and {cores} (the cores here); got {jobs}")
    if not 0 <= seed < 2**32:
        raise VaesweepError(f"--seed must be between 0 and {2**32 - 1}; got {seed}")
    name = check_name(study_name or spec.name)
    url = storage_url or default_storage_url(results_dir)
    check_url(url)  # before anything is written, a folder included
    check_writable(results_dir)
    storage = open_storage(url)
    resolve_device(device)
    data = load_fashion_mnist(data_dir)
    defaults = TrainConfig.from_mapping(spec.fixed, spec.name)
    make_splits(data, defaults.val_size, defaults.train_subset)  # too little data: fail now

    with storage_errors(url):
        study = optuna.create_study(
            storage=storage, study_name=name, directions=spec.directions, load_if_exists=True
        )
        _check_definition(study, spec, results_dir)
        # Probe for writing before any work: a read-only storage fails here, not mid-trial.
        study.set_user_attr(LAST_RUN_ATTR, time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    if warning := spec.beta_warning():
        warn(warning)
    failed = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))}
    for path in clean_debris(results_dir / name, failed, older_than=grace_seconds()):
        warn(f"removed {path}: left by a run that crashed before recording it")
    request = RunRequest(
        spec,
        n_trials,
        results_dir,
        url,
        name,
        data_dir,
        device,
        seed,
        max(1, cores // jobs),
        first_trial=len(study.trials),
    )
    progress.start(name, spec.objectives, n_trials, _counts(study)[0])
    try:
        with storage_errors(url, during=True):
            if jobs == 1:
                outcome = work(request, data, progress)
            else:
                outcome = _run_workers(request, jobs, progress)
    finally:
        progress.stop()
    streak, reason = failing_streak(study, request.first_trial)
    if streak >= MAX_FAILURES_IN_A_ROW:
        raise VaesweepError(f"{streak} trials in a row failed (last: {reason}); stopped the study")
    return RunSummary(
        study_name=name, storage_url=url, results_dir=results_dir, target=n_trials,
        finished=_counts(study)[0], ran=outcome.ran, failed=outcome.failed,
        answers=[a.sentence for a in collect(study, results_dir).answers],
    )  # fmt: skip


def _counts(study: optuna.Study) -> tuple[int, int]:
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
        why = trial.user_attrs.get(FAIL_REASON_ATTR, "")
        if trial.state == TrialState.RUNNING or why.startswith("surplus"):
            continue
        if trial.state != TrialState.FAIL:
            break
        streak, reason = streak + 1, reason or why or "see the trial records"
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
    spec = request.spec
    study = optuna.load_study(
        study_name=request.study_name, storage=open_storage(request.storage_url),
        pruner=spec.make_pruner(),
    )  # fmt: skip
    # A fresh seed per session and worker, so resumed or parallel runs do not replay suggestions.
    study.sampler = spec.make_sampler((request.seed + len(study.trials) + 7919 * worker) % 2**32)
    objective = Objective(
        spec, request.study_name, data, request.results_dir, resolve_device(request.device),
        progress, request.seed,
    )  # fmt: skip
    lock = _StartLock(request.results_dir / f".{request.study_name}.start-lock")
    grid = spec.grid
    outcome = WorkerOutcome()

    current: dict[str, int] = {}

    def guarded(trial: optuna.Trial) -> float | list[float]:
        lock.release()  # the trial is RUNNING now, so the next count includes it
        current["number"] = trial.number
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
        return objective(trial)

    def after_trial(study: optuna.Study, trial: FrozenTrial) -> None:
        if trial.user_attrs.get(FAIL_REASON_ATTR, "").startswith("surplus"):
            return
        outcome.ran += 1
        outcome.failed += trial.state == TrialState.FAIL
        best = {t.number for t in best_trials(study)}
        progress.trial_finished(trial, _counts(study)[0], best)

    with interrupts.safe_points_only():
        while failing_streak(study, request.first_trial)[0] < MAX_FAILURES_IN_A_ROW:
            interrupts.stop_if_requested()
            lock.acquire()
            try:
                finished, running = _counts(study)
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
                    if not _failed_while_away(study, current.get("number")):
                        raise
            finally:
                lock.release()
    return outcome


def _failed_while_away(study: optuna.Study, number: int | None) -> bool:
    if number is None:
        return False
    trial = next((t for t in study.get_trials(deepcopy=False) if t.number == number), None)
    return trial is not None and trial.state == TrialState.FAIL


def _end_with_parent(parent: int) -> None:
    """A worker whose parent died (kill -9) stops as if the parent had asked: its running trial
    is recorded as failed at the next safe point, and it starts no other."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os.kill(os.getpid(), signal.SIGTERM)


def _worker_main(request: RunRequest, worker: int, events) -> None:
    """Entry point of a worker process: run the loop, report through the event queue."""
    from vaesweep.progress import QueueProgress

    quiet_optuna()
    threading.Thread(target=_end_with_parent, args=(os.getppid(),), daemon=True).start()
    try:
        with graceful_interrupts(worker=True), storage_errors(request.storage_url, during=True):
            data = load_fashion_mnist(request.data_dir)
            outcome = work(request, data, QueueProgress(events, worker), worker)
        events.put(("done", worker, outcome))
    except KeyboardInterrupt:  # the parent's SIGTERM: the running trial is recorded as failed
        events.put(("interrupted", worker))
    except VaesweepError as err:
        events.put(("error", worker, str(err)))
    except Exception as err:  # reported by the parent as one line
        events.put(("error", worker, f"worker {worker} failed: {first_line(err)}"))


def _run_workers(request: RunRequest, jobs: int, progress: Progress) -> WorkerOutcome:
    """Start `jobs` worker processes; relay their events to the live progress."""
    context = multiprocessing.get_context("spawn")  # no forking of a process that runs torch
    events = context.Queue()
    workers = [
        context.Process(target=_worker_main, args=(request, w, events), daemon=True)
        for w in range(jobs)
    ]
    for process in workers:
        process.start()
        interrupts.children.append(process.pid)
    try:
        outcome, interrupted, errors = _relay(workers, events, progress)
    except KeyboardInterrupt:
        # Ask every worker to stop at its next safe point: each records its running trial as
        # failed, then exits. Keep draining their events meanwhile: a worker exits only once
        # everything it queued has reached this process.
        for process in workers:
            if process.is_alive():
                process.terminate()
        _relay(workers, events, progress)
        raise
    finally:
        interrupts.children.clear()
    if interrupted:
        raise KeyboardInterrupt("SIGTERM")
    if errors:
        raise VaesweepError(errors[0])
    return outcome


def _relay(workers: list, events, progress: Progress) -> tuple[WorkerOutcome, bool, list[str]]:
    """Pass the workers' events to the progress view until every worker has stopped; then
    (their summed outcome, whether any was interrupted, their errors)."""
    outcome, errors, running = WorkerOutcome(), [], set(range(len(workers)))
    interrupted = False
    while running:
        try:
            kind, worker, *payload = events.get(timeout=1.0)
        except queue.Empty:
            multiprocessing.active_children()  # reaps workers that have ended: no zombies
            for w in list(running):
                if workers[w].exitcode not in (None, 0):
                    errors.append(f"worker {w} exited with code {workers[w].exitcode}")
                    running.discard(w)
            continue
        if kind == "done":
            outcome.merge(payload[0])
            running.discard(worker)
        elif kind == "error":
            errors.append(payload[0])
            running.discard(worker)
        elif kind == "interrupted":
            interrupted = True
            running.discard(worker)
        else:
            getattr(progress, kind)(*payload)
    for process in workers:
        process.join()
    return outcome, interrupted, errors
