"""Run a study until it has the requested number of finished trials, in two steps: `plan_run`
checks and decides everything and writes nothing; `execute` opens the study and hands the work
to one loop in this process or to worker processes, then answers."""

from __future__ import annotations

import dataclasses
import functools
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import TrialState

from vaesweep.errors import VaesweepError, counted, shown
from vaesweep.run.phases import totals_line
from vaesweep.run.progress import Progress
from vaesweep.run.tally import MAX_FAILURES_IN_A_ROW, counts, failing_streak
from vaesweep.spec.design import Design
from vaesweep.spec.metric_names import label
from vaesweep.spec.studies import StudySpec
from vaesweep.store.artifact_store import make_store_folder, open_store
from vaesweep.store.binding import clean_debris, foreign_folders
from vaesweep.store.fate import Fate, fate_of
from vaesweep.store.layout import check_study_name, check_writable, make_folder
from vaesweep.store.storage import (
    ANALYSIS_ATTR,
    DEFINITION_ATTR,
    DESCRIPTION_ATTR,
    LAST_RUN_ATTR,
    PHASE_ATTR,
    PHASE_SECONDS_ATTR,
    PRECISION_ATTR,
    REPLICATE_ATTR,
    WARNINGS_ATTR,
    check_url,
    check_writable_storage,
    default_storage_url,
    grace_seconds,
    open_storage,
    storage_errors,
    storage_file,
)

if TYPE_CHECKING:
    from vaesweep.answer import StudyAnswer
    from vaesweep.run.work_loop import RunRequest, WorkerOutcome
    from vaesweep.training.precision import Compute


@dataclass(frozen=True)
class RunOptions:
    """What a run is asked for beyond its study (the CLI's option types check each)."""

    n_trials: int  # finished trials (completed or pruned) the study should have
    results_dir: Path
    storage_url: str | None = None  # None: SQLite in results_dir
    study_name: str | None = None  # None: the study's own name
    data_dir: Path | None = None
    device: str = "auto"
    seed: int = 0
    jobs: int | None = 1  # None: one per GPU on CUDA, else one per core, at most 4
    artifacts: str | None = None  # an artifact store that also keeps each trial's folder


@dataclass(frozen=True)
class Training:
    """How a run trains: decided once, the same in every worker."""

    data: Any  # training.data.FashionMNIST, loaded once and shared with the workers
    compute: Compute
    population: int
    gpus: int
    jobs: int
    threads: int  # each worker's


@dataclass(frozen=True)
class RunPlan:
    """A run, checked and decided (`plan_run`), ready to `execute`."""

    spec: StudySpec  # as it runs: a study stored unblocked resumes unblocked
    options: RunOptions
    name: str
    url: str
    finished: int = 0  # trials the study has already
    training: Training | None = None  # None: it has its trials; nothing to train
    warnings: tuple[str, ...] = ()


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
    next_trials: int | None = None  # the --trials of the next step, if there is one
    next_step: str = ""  # what running to `next_trials` does
    phases: str | None = None  # the study's seconds per phase, over its trials that have them


def _resumable(study: optuna.Study, spec: StudySpec) -> StudySpec:
    """The spec to run on a stored study of this name, which must have been made by vaesweep from
    the same definition (a study stored unblocked, by an earlier version or by its file, resumes
    unblocked unless the file now says `blocked = true`). Reads only."""
    # Trials first: a trial only ever exists after its study's definition was stored, so a
    # worker starting beside another never takes that study for a foreign one.
    has_trials = bool(study.get_trials(deepcopy=False))
    stored = study.user_attrs.get(DEFINITION_ATTR)
    if stored is None:
        if has_trials:
            raise VaesweepError(
                f"study '{study.study_name}' exists in this storage but was not made by vaesweep; "
                "choose another --name"
            )
        return spec
    stored, wanted = dict(stored), spec.definition()
    if isinstance(stored.get("design"), dict):
        try:
            design = Design.from_stored(stored["design"])
        except TypeError:
            design = None  # keys this version does not know: a mismatch, named below
        if design is not None:
            stored["design"] = design.stored()
            if spec.design.blocked is None and not design.shares_seeds:
                unblocked = dataclasses.replace(spec.design, blocked=False)
                spec = dataclasses.replace(spec, design=unblocked)
                wanted = spec.definition()
    for part in ("search", "fixed", "objectives", "design"):
        if stored.get(part) != wanted[part]:
            raise VaesweepError(
                f"study '{study.study_name}' in this storage was created with different {part} "
                f"({_difference(stored.get(part), wanted[part])}); use another --name to keep both"
            )
    return spec


def _define(study: optuna.Study, spec: StudySpec) -> None:
    """Stores the definition on a study that has none yet (a new one)."""
    if DEFINITION_ATTR in study.user_attrs:
        return
    study.set_user_attr(DEFINITION_ATTR, spec.definition())
    study.set_user_attr(DESCRIPTION_ATTR, spec.description)
    with warnings.catch_warnings():  # experimental in Optuna, and what dashboards read
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(list(spec.objectives))  # so dashboards name the values


def _check_data(spec: StudySpec, n_images: int) -> None:
    """Room in the data for every combination a trial may draw, before anything is stored."""
    from vaesweep.training.data import check_sizes

    for corner in spec.corners():
        config = spec.config_for(corner, seed=0)
        try:
            check_sizes(n_images, config.val_size, config.train_subset)
        except VaesweepError as err:
            if config.train_subset == spec.base.train_subset:
                raise
            raise VaesweepError(f"{err} (searched: train_subset = {config.train_subset})") from None


def _clean_debris(study: optuna.Study, results_dir: Path, warn: Callable[[str], None]) -> None:
    failed = study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
    failed = [t for t in failed if fate_of(t) != Fate.UNSTORED]  # kept: the store lost them
    for path in clean_debris(results_dir / study.study_name, failed, older_than=grace_seconds()):
        warn(f"removed {path}: left by a run that crashed before recording it")


def _difference(stored, wanted) -> str:
    """The keys that differ between two settings tables, or both values when not tables."""
    if not isinstance(stored, dict) or not isinstance(wanted, dict):
        return f"{stored} vs now {wanted}"
    keys = sorted(k for k in stored.keys() | wanted.keys() if stored.get(k) != wanted.get(k))
    return ", ".join(f"{k}: {stored.get(k, 'unset')} vs now {wanted.get(k, 'unset')}" for k in keys)


def _run_and_answer(
    request: RunRequest,
    data,
    jobs: int,
    progress: Progress,
    study: optuna.Study,
    warn: Callable[[str], None],
) -> tuple[WorkerOutcome, StudyAnswer]:
    """Train until the request's trials are finished, then answer (a look)."""
    from vaesweep.run.work_loop import work
    from vaesweep.run.workers import run_workers

    progress.start(request.study_name, request.spec.objectives, request.n_trials, counts(study)[0])
    try:
        with storage_errors(request.storage_url, during=True):
            if jobs == 1:
                outcome = work(request, data, progress)
            else:
                outcome = run_workers(request, data, jobs, progress)
    finally:
        progress.stop()
    with storage_errors(request.storage_url, during=True):
        return outcome, answer_and_record(study, request.results_dir, warn)


def answer_and_record(
    study: optuna.Study, results_dir: Path, warn: Callable[[str], None]
) -> StudyAnswer:
    """The answer a run ends with: recorded as a look, and published for Optuna's tools."""
    from vaesweep.answer import answer, record_look
    from vaesweep.answer.publish import publish
    from vaesweep.answer.stored import read

    result = answer(read(study, results_dir))
    if refused := record_look(result):
        warn(f"warning: {refused}")
    publish(result)
    return result


def plan_run(spec: StudySpec, options: RunOptions) -> RunPlan:
    """Every check and decision of a run, nothing trained and nothing written: where it stores,
    what the storage holds of the study, the data, the device, precision, population and
    workers. A study that has its trials already is planned without PyTorch or the data."""
    name = check_study_name(options.study_name or spec.name)
    url = options.storage_url or default_storage_url(options.results_dir)
    check_url(url)  # before anything is written, a folder included
    check_writable_storage(url)
    check_writable(options.results_dir)
    if options.artifacts is not None:
        open_store(options.artifacts, writing=True)
    plan = RunPlan(spec=spec, options=options, name=name, url=url)
    stored, mismatch = _stored_study(url, name), None
    if stored is not None:
        with storage_errors(url):
            try:
                resumed = _resumable(stored, spec)
                plan = dataclasses.replace(plan, spec=resumed, finished=counts(stored)[0])
            except VaesweepError as err:
                mismatch = err  # said after the data's checks, as a run that trains would
            done = plan.finished >= growth_target(stored, plan.spec, options.n_trials)
            if done and not may_grow(stored, plan.spec):
                return plan
    # torch, and the data, only now that there is training to do.
    from vaesweep.training.data import load_fashion_mnist

    data = load_fashion_mnist(options.data_dir)
    _check_data(spec, len(data.train_x))
    if mismatch is not None:
        raise mismatch
    warnings = []
    if plan.spec.design.shares_seeds != spec.design.shares_seeds:
        warnings.append(_RESUMED_UNBLOCKED.format(name=name))
    spec = plan.spec
    _check_foreign_folders(options.results_dir / name, url, stored)
    kept = stored.user_attrs.get(PRECISION_ATTR) if stored is not None else None
    training, decided = _decide_training(spec, options, data, plan.finished, kept)
    warnings += decided
    warnings += [_growth_plan(spec)] if spec.design.until_decided else []
    return dataclasses.replace(plan, spec=spec, training=training, warnings=tuple(warnings))


def _growth_plan(spec: StudySpec) -> str:
    """How a design `until_decided` and `--trials` relate, said as the run starts."""
    design, tuning = spec.design, len(spec.nuisance_grid)

    def trials(blocks: int) -> int:
        return dataclasses.replace(design, replicates=blocks).trials_to_complete(
            spec.compared, tuning
        )

    first, most = trials(design.replicates), trials(design.most_blocks)
    per_block = trials(design.replicates + 1) - first
    return (
        f"until decided: the design's {design.replicates} seed blocks take {first} trials (a "
        f"smaller --trials stops sooner); then each look adds a block ({per_block} trials) until "
        f"every configuration is decided or max_blocks = {design.most_blocks} ({most} trials)"
    )


_RESUMED_UNBLOCKED = (
    "study '{name}' was stored with independent seeds per configuration (blocked = false): "
    "it resumes so, and is compared unpaired"
)


def _stored_study(url: str, name: str) -> optuna.Study | None:
    """The stored study of this name, read only; None where there is none (or no SQLite or
    journal file: a run refused later leaves no storage)."""
    if (path := storage_file(url)) is not None and not path.is_file():
        return None
    storage = open_storage(url)
    with storage_errors(url):
        if name not in optuna.get_all_study_names(storage):
            return None
        return optuna.load_study(study_name=name, storage=storage)


def _check_foreign_folders(folder: Path, url: str, study: optuna.Study | None) -> None:
    """A folder another storage wrote is never taken over (with no study stored, every trial
    folder is another storage's)."""
    with storage_errors(url):
        foreign = foreign_folders(folder, lambda: study.get_trials(deepcopy=False) if study else [])
    if foreign:
        names = ", ".join(f.name for f in foreign[:3]) + (", ..." if len(foreign) > 3 else "")
        raise VaesweepError(
            f"{folder} holds trial folders this storage did not write ({names}); give each "
            "storage its own --results, or this study another --name"
        )


def _decide_training(
    spec: StudySpec, options: RunOptions, data, finished: int, kept_precision: str | None = None
) -> tuple[Training, list[str]]:
    """Device and precision, population, workers and their threads; and what to say of them."""
    from vaesweep.training.device import resolve_device, visible_gpus
    from vaesweep.training.population import decide_population
    from vaesweep.training.precision import decide

    base = spec.base
    device = resolve_device(options.device)
    gpus, cores = visible_gpus(device), os.cpu_count() or 1
    # On a CPU 'auto' is one trial at a time, so the workers' threads are known before precision
    # is measured at them; on a GPU threads do not change the measurement.
    planned = spec.population if isinstance(spec.population, int) else 1
    threads = max(1, cores // _jobs(options, finished, gpus, cores, planned))
    compute = decide(
        device.type, base.precision, base.arch, base.batch_size, kept_precision, threads
    )
    population, population_why = decide_population(
        spec.population, compute, base.arch, base.batch_size
    )
    jobs = _jobs(options, finished, gpus, cores, population)
    warnings = [w for w in (spec.beta_warning(),) if w]
    warnings += [f"precision {compute.why}"] if compute.why else []
    warnings += [f"population {population_why}"] if population_why else []
    training = Training(
        data=data,
        compute=compute,
        population=population,
        gpus=gpus,
        jobs=jobs,
        threads=max(1, cores // jobs),
    )
    return training, warnings


def _jobs(options: RunOptions, finished: int, gpus: int, cores: int, population: int) -> int:
    """--jobs, or for auto no more workers than trials to run, so none idles with its cores."""
    from vaesweep.training.device import auto_jobs

    if options.jobs is not None:
        return options.jobs
    missing = options.n_trials - finished
    return max(1, min(auto_jobs(gpus, cores), -(-missing // population)))


def execute(
    plan: RunPlan,
    progress: Progress,
    warn: Callable[[str], None] = lambda message: None,
) -> RunSummary:
    """Carry out a plan: train until the study has its trials (completed or pruned), resuming
    where it stopped, then answer. With more than one job, worker processes share the study and
    the cores; on CUDA, worker i trains on GPU i mod the GPUs. The answer (`vaesweep.answer`) is
    recorded as a look and published for Optuna's tools.
    A design `until_decided` then adds a seed block at a time until every configuration is
    decided or `max_blocks` is reached."""
    if plan.training is None:
        return _answer_finished(plan, warn)
    make_folder(plan.options.results_dir)
    make_store_folder(plan.options.artifacts)
    study, spec = _open_study(plan)
    for warning in plan.warnings:
        warn(warning)
    _clean_debris(study, plan.options.results_dir, warn)
    request = _request(plan, spec, first_trial=len(study.trials))
    with storage_errors(plan.url):
        target = growth_target(study, spec, request.n_trials)
    request = dataclasses.replace(request, n_trials=target)
    outcome, answered, request = _train_until_decided(plan, request, progress, study, warn)
    with storage_errors(plan.url, during=True):
        streak, reason = failing_streak(study, request.first_trial)
        finished = counts(study)[0]
    if streak >= MAX_FAILURES_IN_A_ROW:
        raise VaesweepError(f"{streak} trials in a row failed (last: {reason}); stopped the study")
    if outcome.errors:
        if finished < request.n_trials:
            raise VaesweepError(outcome.errors[0])
        for error in outcome.errors:  # the other workers finished the study meanwhile
            warn(f"warning: {error}; the other workers finished the study")
    return _summary(plan, request.n_trials, finished, answered, outcome)


def growth_target(study: optuna.Study, spec: StudySpec, n_trials: int) -> int:
    """The trials a run must finish: `--trials`, or, for a design `until_decided`, at least every
    seed block it has started, so that a run interrupted while the study grew completes the
    block it was in (its next look then decides whether to grow further)."""
    design = spec.design
    if not design.until_decided:
        return n_trials
    grown = dataclasses.replace(design, replicates=_blocks_started(study, design))
    return max(n_trials, grown.trials_to_complete(spec.compared, len(spec.nuisance_grid)))


def may_grow(study: optuna.Study, spec: StudySpec) -> bool:
    """Whether a design `until_decided` may still add a block: only its answer can say it is
    done, so a run of it is never "nothing to run" before `max_blocks`."""
    design = spec.design
    return design.until_decided and _blocks_started(study, design) < design.most_blocks


def _blocks_started(study: optuna.Study, design: Design) -> int:
    """The seed blocks the answer's phase has placed a trial in (finished or not), at least the
    design's and at most `max_blocks`."""
    phase = str(design.answer_phase)
    started = [
        t.user_attrs.get(REPLICATE_ATTR)
        for t in study.get_trials(deepcopy=False)
        if t.user_attrs.get(PHASE_ATTR) == phase
    ]
    blocks = 1 + max((r for r in started if isinstance(r, int)), default=-1)
    return min(max(blocks, design.replicates), design.most_blocks)


def _answer_finished(plan: RunPlan, warn: Callable[[str], None]) -> RunSummary:
    """A study that has its trials already: its answer (a look), nothing trained."""
    warn(
        f"study {shown(plan.name)} has {counted(plan.finished, 'finished trial')} already: "
        "nothing to run "
        "(a larger --trials adds more)"
    )
    with storage_errors(plan.url):
        study = optuna.load_study(study_name=plan.name, storage=open_storage(plan.url))
        _clean_debris(study, plan.options.results_dir, warn)
        answered = answer_and_record(study, plan.options.results_dir, warn)
    if plan.spec.design.until_decided and answered.blocks:
        warn(_stopped(answered))  # where a growing study stands
    return _summary(plan, plan.options.n_trials, plan.finished, answered)


def _sentences(answered: StudyAnswer) -> list[str]:
    """What a run ends with: each objective's answer, and a tuned value at its range's edge."""
    return [a.sentence for a in answered.answers] + list(answered.range_warnings)


def _look(answered: StudyAnswer) -> str:
    """A look at a growing study in a line: its blocks and each objective's verdict, named."""
    heads = "; ".join(f"{label(a.objective)}: {a.headline}" for a in answered.answers)
    return f"until decided: look at {answered.blocks} seed blocks: {heads}"


def _stopped(answered: StudyAnswer) -> str:
    why = "every configuration decided" if answered.decided else "max_blocks reached"
    return f"until decided: stopped after seed block {answered.blocks} ({why})"


def _summary(
    plan: RunPlan,
    target: int,
    finished: int,
    answered: StudyAnswer,
    outcome: WorkerOutcome | None = None,
) -> RunSummary:
    next_trials, next_step = _next_step(answered, finished)
    return RunSummary(
        study_name=plan.name,
        storage_url=plan.url,
        results_dir=plan.options.results_dir,
        target=target,
        finished=finished,
        ran=outcome.ran if outcome else 0,
        failed=outcome.failed if outcome else 0,
        answers=_sentences(answered),
        next_trials=next_trials,
        next_step=next_step,
        phases=totals_line(
            [
                e.trial.user_attrs[PHASE_SECONDS_ATTR]
                for e in answered.study.entries
                if isinstance(e.trial.user_attrs.get(PHASE_SECONDS_ATTR), dict)
            ]
        ),
    )


def _next_step(answered: StudyAnswer, finished: int) -> tuple[int | None, str]:
    """The `--trials` a researcher would run next, and why: to decide every configuration at
    the noise seen, or else to complete the design."""
    design = answered.study.design
    decide = answered.trials_to_decide
    if decide is not None and decide > finished and not design.until_decided:
        return decide, "this would decide every configuration at the noise seen"
    complete = answered.trials_to_answer
    if complete <= finished:
        return None, ""
    if design.samples and design.confirm_top and not design.tune:
        starts = f"the confirmation phase starts after {design.explore} exploration trials"
        return complete, f"{starts}; this completes it"
    return complete, "this completes the design"


def _open_study(plan: RunPlan) -> tuple[optuna.Study, StudySpec]:
    """The study, created with its definition if new; checked again (another worker may have
    made it since the plan); this run's start, margins and warnings stored on it."""
    spec = plan.spec
    with storage_errors(plan.url):
        study = optuna.create_study(
            storage=open_storage(plan.url),
            study_name=plan.name,
            directions=spec.directions,
            load_if_exists=True,
        )
        spec = _resumable(study, spec)
        _define(study, spec)
        # Probe for writing before any work: a read-only storage fails here, not mid-trial.
        study.set_user_attr(LAST_RUN_ATTR, time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        analysis = {
            "equivalence": dict(spec.equivalence),
            "note": spec.note,
            "overridden": [list(change) for change in spec.overridden],
        }
        study.set_user_attr(ANALYSIS_ATTR, analysis)
        # What this run warns of the study itself, for the report's page to say again.
        warned = [w.removeprefix("warning: ") for w in [spec.beta_warning()] if w]
        study.set_user_attr(WARNINGS_ATTR, warned)
        if PRECISION_ATTR not in study.user_attrs and plan.training is not None:
            study.set_user_attr(PRECISION_ATTR, plan.training.compute.precision)
    return study, spec


def _request(plan: RunPlan, spec: StudySpec, first_trial: int) -> RunRequest:
    from vaesweep.run.work_loop import RunRequest

    training = plan.training
    assert training is not None
    return RunRequest(
        spec=spec,
        n_trials=plan.options.n_trials,
        results_dir=plan.options.results_dir,
        storage_url=plan.url,
        study_name=plan.name,
        data_dir=plan.options.data_dir,
        compute=training.compute,
        seed=plan.options.seed,
        threads=training.threads,
        first_trial=first_trial,
        gpus=training.gpus,
        population=training.population,
        artifacts=plan.options.artifacts,
    )


def _train_until_decided(
    plan: RunPlan,
    request: RunRequest,
    progress: Progress,
    study: optuna.Study,
    warn: Callable[[str], None],
) -> tuple[WorkerOutcome, StudyAnswer, RunRequest]:
    """The request's trials, then (a design `until_decided`) a seed block at a time."""
    training = plan.training
    assert training is not None
    run = functools.partial(_run_and_answer, data=training.data, jobs=training.jobs, warn=warn)
    outcome, answered = run(request, progress=progress, study=study)
    design = request.spec.design
    while design.until_decided and not outcome.errors:
        blocks = answered.blocks or 0
        if blocks >= design.replicates:
            warn(_look(answered))
        if blocks < design.replicates:  # the design itself is not complete yet
            break
        if answered.decided or blocks >= design.most_blocks:
            warn(_stopped(answered))
            break
        grown = dataclasses.replace(design, replicates=blocks + 1)
        n_more = grown.trials_to_complete(request.spec.compared, len(request.spec.nuisance_grid))
        if n_more <= request.n_trials:  # the next block is asked for already: nothing to add
            break
        request = dataclasses.replace(request, n_trials=n_more)
        more, answered = run(request, progress=progress, study=study)
        outcome.merge(more)
    return outcome, answered, request
