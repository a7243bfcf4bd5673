"""One worker's loop: start trials while the study needs more, each in the design's next free
place, and stop at exactly the requested count (on one machine or several)."""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import filelock
import optuna
import torch
from filelock import FileLock
from optuna.trial import FrozenTrial, TrialState

from vaesweep import interrupts
from vaesweep.errors import VaesweepError, first_line, visible
from vaesweep.run.objective import Objective
from vaesweep.run.places import WAIT, holds_its_place, next_place, place_of
from vaesweep.run.progress import Progress
from vaesweep.run.tally import MAX_FAILURES_IN_A_ROW, counts, failing_streak
from vaesweep.spec.design import Phase
from vaesweep.spec.studies import StudySpec
from vaesweep.store.artifact_store import ArtifactStoreFailed
from vaesweep.store.fate import FATE_ATTR, Fate
from vaesweep.store.heartbeats import Liveness, beating, describe_wait
from vaesweep.store.optuna_private import fail_trial, waiting_trials
from vaesweep.store.storage import (
    FAIL_REASON_ATTR,
    FINISHED_STATES,
    PHASE_ATTR,
    grace_seconds,
    open_storage,
    redact,
)
from vaesweep.store.waiting import STORAGE_FAILURES, environment_failure
from vaesweep.training.device import Compute, placed
from vaesweep.training.train import TrainingDiverged

WAIT_SECONDS = 2.0  # poll interval while other workers finish the last trials
SAY_WAIT_AFTER = 5.0  # a wait longer than this says what it waits for ...
SAY_WAIT_EVERY = 15.0  # ... and says it again this often
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
    population: int = 1  # trials each worker starts at once and trains together
    artifacts: str | None = None  # an artifact store that also keeps each trial's folder


@dataclass
class WorkerOutcome:
    ran: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)  # workers that ended early, and why

    def merge(self, other: WorkerOutcome) -> None:
        self.ran += other.ran
        self.failed += other.failed
        self.errors += other.errors


def work(request: RunRequest, data, progress: Progress, worker: int = 0) -> WorkerOutcome:
    """One worker's loop: start trials while the study needs more, then stop.

    Trials start only while finished + running trials are fewer than requested, counted under a
    lock shared by the workers of this machine; each takes the design's next free place (queued
    with `enqueue_trial`), up to `request.population` at a time, trained together. Workers on
    other machines may still race for the last trial or for the same place; the storage numbers
    trials, and one that finds the study already full, or its place held (counting only
    lower-numbered trials), steps aside as a failed 'surplus' trial. So the study ends with
    exactly the requested number of finished trials, on any storage, each place in the design
    filled once.
    """
    spec = request.spec
    storage, study, objective = _session(request, data, progress, worker)
    liveness = Liveness(storage, study, grace_seconds())
    waited = _Wait(progress, liveness)
    # Serialises "count the trials, then start some" among this machine's workers, so they never
    # start more trials than the study needs; held until the new trials are RUNNING.
    lock = FileLock(request.results_dir / f".{request.study_name}.start-lock")
    grid = spec.grid, spec.nuisance_grid  # enumerated once, not at every start
    outcome = WorkerOutcome()

    def told(trial: FrozenTrial) -> None:
        outcome.ran += 1
        outcome.failed += trial.state == TrialState.FAIL
        progress.trial_finished(trial, counts(study)[0])

    idle_since = time.perf_counter()  # a trial's "waiting": since its worker's previous one
    with interrupts.safe_points_only():
        while failing_streak(study, request.first_trial)[0] < MAX_FAILURES_IN_A_ROW:
            interrupts.stop_if_requested()
            untold: list[optuna.Trial] = []  # started here and not yet told: failed if we fail
            try:
                with _holding(lock, progress):
                    _fail_dead(liveness, study, outcome, progress)
                    finished, running = counts(study)
                    if finished >= request.n_trials:
                        _fail_leftover_queue(storage, study)
                        break
                    room = min(request.population, request.n_trials - finished - running)
                    placed_any = _start_trials(study, spec, grid, request.n_trials, room, untold)
                if not placed_any:
                    # The last trials run elsewhere; if their worker dies, its heartbeat stops,
                    # the trial is failed after the grace period, and this worker takes over.
                    waited.sleep()
                    continue
                waited.reset()
                if untold:
                    idle = time.perf_counter() - idle_since
                    _run_together(storage, study, objective, untold, told, idle)
                    idle_since = time.perf_counter()
            except BaseException as err:
                failure = environment_failure(err) if isinstance(err, Exception) else None
                if failure is not None:
                    raise _environment_error(failure, study, untold, request) from None
                for trial in untold:
                    _tell_failed(study, trial, err)
                raise
    return outcome


def _session(
    request: RunRequest, data, progress: Progress, worker: int
) -> tuple[optuna.storages.BaseStorage, optuna.Study, Objective]:
    """This worker's device and threads, its storage and study (with a sampler of its own), and
    the objective that trains its trials."""
    torch.set_num_threads(request.threads)
    compute = placed(request.compute, worker, request.gpus)
    if compute.device.type == "cuda":
        torch.cuda.set_device(compute.device)  # what torch puts on "cuda" lands there too
    spec = request.spec
    storage = open_storage(request.storage_url)
    study = optuna.load_study(
        study_name=request.study_name, storage=storage, pruner=spec.make_pruner()
    )
    # A fresh seed per session and worker, so resumed or parallel runs do not replay suggestions.
    study.sampler = spec.make_sampler((request.seed + len(study.trials) + 7919 * worker) % 2**32)
    objective = Objective(
        spec,
        request.study_name,
        data,
        request.results_dir,
        compute,
        progress,
        request.seed,
        request.artifacts,
    )
    return storage, study, objective


def _fail_dead(
    liveness: Liveness, study: optuna.Study, outcome: WorkerOutcome, progress: Progress
) -> None:
    """A trial whose worker died (its heartbeat stopped) is failed, its place free: counted and
    named here, where it was failed."""
    numbers = set(liveness.fail_dead())
    for trial in study.get_trials(deepcopy=False) if numbers else ():
        if trial.number in numbers:
            outcome.failed += 1
            progress.trial_finished(trial, counts(study)[0])


@contextlib.contextmanager
def _holding(lock: FileLock, progress: Progress):
    """`lock`, held: another worker of this machine holds it only while it starts trials, but a
    worker stopped meanwhile (SIGSTOP, a debugger) holds it until it goes on; say so."""
    while True:
        try:
            lock.acquire(timeout=SAY_WAIT_AFTER)
            break
        except filelock.Timeout:
            progress.waiting(
                f"waiting for another worker of this machine to start its trials (it holds "
                f"{visible(lock.lock_file)}; a stopped worker holds it until it goes on)"
            )
    try:
        yield
    finally:
        lock.release()


class _Wait:
    """Sleeps between checks while other trials run, and says what it waits for once the wait
    has lasted a few seconds, and again every so often (no silent wait)."""

    def __init__(self, progress: Progress, liveness: Liveness):
        self.progress, self.liveness = progress, liveness
        self.reset()

    def reset(self) -> None:
        self.started: float = time.monotonic()
        self.said: float | None = None

    def sleep(self) -> None:
        time.sleep(WAIT_SECONDS)
        waited = time.monotonic() - self.started
        due = self.said is None or waited - self.said >= SAY_WAIT_EVERY
        if waited >= SAY_WAIT_AFTER and due:
            self.progress.waiting(describe_wait(self.liveness.silent(), self.liveness.grace))
            self.said = waited


@contextlib.contextmanager
def _as_optimize_does():
    """Optuna warns that heartbeats are meant for `study.optimize`, and that failing stale
    trials is experimental; this loop does what `optimize` does for each trial, so it silences
    them as `optimize` does."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Heartbeat of storage", UserWarning)
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield


def _start_trials(
    study: optuna.Study,
    spec: StudySpec,
    grid: tuple[list | None, list],
    n_trials: int,
    room: int,
    started: list[optuna.Trial],
) -> bool:
    """Start up to `room` trials, each in the design's next free place, onto `started`; whether
    any place was free. A trial that another machine overtook steps aside (told as surplus). A
    place queued but never started (its worker crashed between the two, or another machine's
    `ask` could not see it) holds its place: it is started here, as the next free place."""
    for _ in range(room):
        trials = study.get_trials(deepcopy=False)
        place = next_place(spec.design, grid[0], trials, spec.directions, grid[1])
        if place is not WAIT:
            study.enqueue_trial(place.params or {}, user_attrs=place.user_attrs())
        elif not any(t.state == TrialState.WAITING for t in trials):
            return bool(started)
        with _as_optimize_does():
            trial = study.ask()
        if surplus := _surplus(study, trial, n_trials) or _unplaced(trial):
            trial.set_user_attr(FAIL_REASON_ATTR, surplus)
            trial.set_user_attr(FATE_ATTR, Fate.SURPLUS)
            study.tell(trial, state=TrialState.FAIL)
            return True  # counted again before the next start
        started.append(trial)
    return room > 0


def _unplaced(trial: optuna.Trial) -> str | None:
    """Why a trial that `ask` made afresh steps aside: it should have taken a queued place, but
    Optuna's trial cache may not see a place another machine queued (its id is below one it has
    already seen finished); that place is then failed by `_fail_leftover_queue`."""
    if trial.user_attrs.get(PHASE_ATTR) is None:
        return "surplus: not one of the design's places (a queued place was out of sight)"
    return None


def _fail_leftover_queue(storage: optuna.storages.BaseStorage, study: optuna.Study) -> None:
    """Fail the queued places no worker started before the study was full, so nothing waits in
    the storage for ever. Read from the storage itself: Optuna's trial cache may not see them."""
    why = "surplus: the study was full before it started"
    surplus = {FAIL_REASON_ATTR: why, FATE_ATTR: Fate.SURPLUS}
    for trial in waiting_trials(storage, study):
        with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
            fail_trial(storage, study, trial.number, surplus)


def _surplus(study: optuna.Study, trial: optuna.Trial, n_trials: int) -> str | None:
    """Why `trial` must step aside, if another machine's trials already fill the study or its
    place in the design (trials numbered before it count; the storage numbers them)."""
    trials = study.get_trials(deepcopy=False)
    started = FINISHED_STATES + (TrialState.RUNNING,)
    ahead = [t for t in trials if t.number < trial.number and t.state in started]
    if len(ahead) >= n_trials:
        return "surplus: the study was already full"
    me = place_of(next(t for t in trials if t.number == trial.number))
    if me is not None and not Phase(me[0]).sampled:
        if any(place_of(t) == me and holds_its_place(t) for t in ahead):
            return "surplus: its place was already taken"
    return None


def _run_together(
    storage: optuna.storages.BaseStorage,
    study: optuna.Study,
    objective: Objective,
    untold: list[optuna.Trial],
    told: Callable[[FrozenTrial], None],
    waited: float,
) -> None:
    """Train the started trials together and tell each its outcome, removing it from `untold`:
    complete, pruned, or failed with its reason. Every trial is told before a failure that is
    not the trial's own (not a divergence) is raised again. `waited`: the seconds the worker
    waited for them."""
    with contextlib.ExitStack() as heartbeats:
        for trial in untold:  # each trial its own heartbeat, as `study.optimize` gives it
            heartbeats.enter_context(beating(storage, study, trial.number))
        runs = [objective.start(trial, waited) for trial in untold]
        results = objective.train(runs)
        fatal: Exception | None = None
        for run, result in zip(runs, results, strict=True):
            trial = run.trial
            frozen: FrozenTrial | None
            try:
                if isinstance(result, optuna.TrialPruned):
                    frozen = study.tell(trial, state=TrialState.PRUNED)
                elif isinstance(result, BaseException):
                    raise result
                else:
                    frozen = study.tell(trial, objective.finish(run, result))
            except Exception as err:
                if _failed_while_away(study, trial):
                    # This worker was stopped (SIGSTOP, a suspended laptop) past the grace
                    # period, and the heartbeat check failed its trial meanwhile: the normal
                    # outcome, not an error.
                    untold.remove(trial)
                    continue
                if environment_failure(err) is not None:
                    raise
                frozen = _tell_failed(study, trial, err)
                if not isinstance(err, TrainingDiverged):
                    fatal = fatal or err
            untold.remove(trial)
            if frozen is not None:
                told(frozen)
        if fatal is not None:
            raise fatal


def _fate(err: BaseException) -> Fate:
    if isinstance(err, TrainingDiverged):
        return Fate.DIVERGED
    if isinstance(err, ArtifactStoreFailed):
        return Fate.UNSTORED
    return Fate.INTERRUPTED if isinstance(err, KeyboardInterrupt) else Fate.ERROR


def _reason(err: BaseException) -> str:
    """A failed trial's stored reason."""
    if isinstance(err, TrainingDiverged):
        return f"diverged: {err}"
    if isinstance(err, KeyboardInterrupt):
        return f"interrupted ({err or 'SIGINT'})"
    failure = environment_failure(err) if isinstance(err, Exception) else None
    return _what_failed(failure) if failure else f"error: {first_line(err)}"


def _tell_failed(
    study: optuna.Study, trial: optuna.Trial, err: BaseException
) -> FrozenTrial | None:
    """Record `trial` as failed with its reason (no failed trial without one), where the storage
    answers; a trial already finished (failed while this worker was away) stays as it is."""
    attrs = _quietly(lambda: trial.user_attrs, {FAIL_REASON_ATTR: None})
    if FAIL_REASON_ATTR not in attrs:
        _quietly(lambda: trial.set_user_attr(FAIL_REASON_ATTR, _reason(err)[:500]))
        _quietly(lambda: trial.set_user_attr(FATE_ATTR, _fate(err)))
    return _quietly(lambda: study.tell(trial, state=TrialState.FAIL, skip_if_finished=True))


def _what_failed(failure: BaseException) -> str:
    if isinstance(failure, OSError):
        where = f" {failure.filename}" if failure.filename else ""
        return f"could not write{where}: {failure.strerror or first_line(failure)}"
    return f"the storage failed: {first_line(failure.__cause__ or failure)}"


def _environment_error(
    failure: BaseException, study: optuna.Study, running: list[optuna.Trial], request: RunRequest
) -> VaesweepError:
    """One line for a storage or disk that failed during trials, with those trials recorded as
    failed if the storage answers within RECORD_RETRIES (a restarting database); otherwise the
    heartbeat check fails them once the grace period has passed."""
    left = list(running)
    for delay in (0.0, *RECORD_RETRIES) if left else ():
        time.sleep(delay)
        try:
            stored = {t.number: t for t in study.get_trials(deepcopy=False)}
            for trial in list(left):
                if stored[trial.number].state == TrialState.RUNNING:
                    if FAIL_REASON_ATTR not in stored[trial.number].user_attrs:
                        trial.set_user_attr(FAIL_REASON_ATTR, _what_failed(failure))
                        trial.set_user_attr(FATE_ATTR, Fate.ERROR)
                    study.tell(trial, state=TrialState.FAIL)
                left.remove(trial)
            break
        except (*STORAGE_FAILURES, ValueError, optuna.exceptions.UpdateFinishedTrialError):
            continue
    numbers = [trial.number for trial in running]
    trials = _named(numbers)
    were = "was" if len(numbers) == 1 else "were"
    outcome = f"{trials} {were} recorded as failed"
    if left:
        its = "its heartbeat lapses" if len(numbers) == 1 else "their heartbeats lapse"
        outcome = f"{_named([t.number for t in left])} stay{'s' * (len(left) == 1)} running "
        outcome += f"until {its} ({grace_seconds()} s)"
    if isinstance(failure, OSError):
        what = f"{trials} {_what_failed(failure)}"
        again = "re-running resumes once there is room"
    else:
        what = f"storage {redact(request.storage_url)} failed during {trials}: "
        what += first_line(failure.__cause__ or failure)
        again = "re-running resumes once it works again"
    if not numbers:
        outcome = "no trial was running"
    return VaesweepError(f"{what}; {outcome}; finished trials are kept; {again}")


def _named(numbers: list[int]) -> str:
    if not numbers:
        return "the run"
    if len(numbers) == 1:
        return f"trial {numbers[0]}"
    return "trials " + ", ".join(map(str, numbers))


def _quietly(call, otherwise=None):
    """`call()`, or `otherwise` where the storage fails (it is already failing: say so once)."""
    try:
        return call()
    except STORAGE_FAILURES:
        return otherwise


def _failed_while_away(study: optuna.Study, running: optuna.Trial) -> bool:
    stored = _quietly(lambda: study.get_trials(deepcopy=False), [])
    trial = next((t for t in stored if t.number == running.number), None)
    return trial is not None and trial.state == TrialState.FAIL
