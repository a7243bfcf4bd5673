"""Run a study until it has the requested number of finished trials: check everything, open
the storage, then hand the work to one loop in this process or to worker processes."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import optuna
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.engine import make_url

from vaesweep.errors import VaesweepError
from vaesweep.run.progress import Progress
from vaesweep.run.tally import MAX_FAILURES_IN_A_ROW, counts, failing_streak
from vaesweep.spec.design import Design
from vaesweep.spec.studies import StudySpec
from vaesweep.store.binding import clean_debris, foreign_folders
from vaesweep.store.layout import check_study_name, check_writable, make_folder
from vaesweep.store.storage import (
    ANALYSIS_ATTR,
    DEFINITION_ATTR,
    DESCRIPTION_ATTR,
    LAST_RUN_ATTR,
    WARNINGS_ATTR,
    check_url,
    default_storage_url,
    grace_seconds,
    open_storage,
    storage_errors,
)

if TYPE_CHECKING:
    from vaesweep.run.work_loop import RunRequest, WorkerOutcome


@dataclass(frozen=True)
class Answered:
    """What the answer said when a run ended: its sentences, whether every configuration is
    decided (worse or equivalent), and the blocks it saw (None: nothing compared yet)."""

    sentences: list[str]
    decided: bool = False
    blocks: int | None = None


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


def _check_definition(study: optuna.Study, spec: StudySpec) -> StudySpec:
    """A stored study of this name must have been created from the same definition; the spec to
    run (a stored study unblocked, by an earlier version or by its file, resumes unblocked unless
    the file now says `blocked = true`)."""
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
        study.set_user_attr(DEFINITION_ATTR, wanted)
        study.set_user_attr(DESCRIPTION_ATTR, spec.description)
        study.set_metric_names(list(spec.objectives))  # so dashboards name the values
        return spec
    stored = dict(stored)
    if isinstance(stored.get("design"), dict):
        try:
            design = Design.from_stored(stored["design"])
        except TypeError:
            design = None  # keys this version does not know: a mismatch, named below
        if design is not None:
            stored["design"] = design.stored()
            if spec.design.blocked is None and not design.shares_seeds:
                spec = dataclasses.replace(
                    spec, design=dataclasses.replace(spec.design, blocked=False)
                )
                wanted = spec.definition()
    for part in ("search", "fixed", "objectives", "design"):
        if stored.get(part) != wanted[part]:
            raise VaesweepError(
                f"study '{study.study_name}' in this storage was created with different {part} "
                f"({_difference(stored.get(part), wanted[part])}); use another --name to keep both"
            )
    return spec


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
    for path in clean_debris(results_dir / study.study_name, failed, older_than=grace_seconds()):
        warn(f"removed {path}: left by a run that crashed before recording it")


def _complete_already(
    url: str,
    name: str,
    spec: StudySpec,
    n_trials: int,
    results_dir: Path,
    warn: Callable[[str], None],
    answer: Callable[[optuna.Study], Answered],
) -> RunSummary | None:
    """The summary of a stored study that has its trials already, found without the seconds of
    loading the data; None when there is work (or no such study, or no SQLite file yet)."""
    if url.startswith("sqlite") and not Path(make_url(url).database or "").is_file():
        return None  # a run that is refused later leaves no database
    storage = open_storage(url)
    with storage_errors(url):
        if name not in optuna.get_all_study_names(storage):
            return None
        study = optuna.load_study(study_name=name, storage=storage)
        if DEFINITION_ATTR not in study.user_attrs:
            return None  # the full run names what is wrong with it
        try:
            _check_definition(study, spec)
        except VaesweepError:
            return None  # likewise, after the checks against the data
        finished = counts(study)[0]
        if finished < n_trials:
            return None
        _clean_debris(study, results_dir, warn)
        sentences = answer(study).sentences
    return RunSummary(name, url, results_dir, n_trials, finished, 0, 0, sentences)


def _stored_trials(storage: optuna.storages.BaseStorage, name: str) -> list[FrozenTrial]:
    try:
        return optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)
    except KeyError:  # no such study yet
        return []


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
    answer: Callable[[optuna.Study], Answered],
) -> tuple[WorkerOutcome, Answered]:
    """Train until the request's trials are finished, then read the answer (a look)."""
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
        return outcome, answer(study)


def run_study(
    spec: StudySpec,
    n_trials: int,
    results_dir: Path,
    progress: Progress,
    answer: Callable[[optuna.Study], Answered],
    storage_url: str | None = None,
    study_name: str | None = None,
    data_dir: Path | None = None,
    device: str = "auto",
    seed: int = 0,
    jobs: int | None = 1,
    warn: Callable[[str], None] = lambda message: None,
) -> RunSummary:
    """Run trials until `n_trials` are finished (completed or pruned); resumes where it stopped.
    With `jobs` > 1, that many worker processes share the study and the cores (None: one per
    GPU on CUDA, else one per core, at most 4); on CUDA, worker i trains on GPU i mod the GPUs.
    `answer(study)` gives the answer when the run ends (and may publish it): the reading of a
    study is the report's, which the run does not import. A design `until_decided` then adds a
    seed block at a time until every configuration is decided or `max_replicates` is reached."""
    if n_trials < 1:
        raise VaesweepError(f"--trials must be at least 1; got {n_trials}")
    cores = os.cpu_count() or 1
    if jobs is not None and not 1 <= jobs <= cores:
        raise VaesweepError(f"--jobs must be between 1 and {cores} (the cores here); got {jobs}")
    if not 0 <= seed < 2**32:
        raise VaesweepError(f"--seed must be between 0 and {2**32 - 1}; got {seed}")
    name = check_study_name(study_name or spec.name)
    url = storage_url or default_storage_url(results_dir)
    check_url(url)  # before anything is written, a folder included
    check_writable(results_dir)
    if done := _complete_already(url, name, spec, n_trials, results_dir, warn, answer):
        warn(
            f"study '{name}' has {done.finished} finished trials already: nothing to run "
            "(a larger --trials adds more)"
        )
        return done
    # torch, and the data, only now that there is training to do: a finished study answers
    # without them.
    from vaesweep.run.work_loop import RunRequest
    from vaesweep.training.data import load_fashion_mnist
    from vaesweep.training.device import auto_jobs, visible_gpus
    from vaesweep.training.population import decide_population
    from vaesweep.training.precision import decide

    data = load_fashion_mnist(data_dir)
    _check_data(spec, len(data.train_x))
    make_folder(results_dir)  # after the data's checks: a refused run leaves no folder
    storage = open_storage(url)  # nor a database
    compute = decide(device, spec.base.precision, spec.base.arch, spec.base.batch_size)
    population, population_why = decide_population(
        spec.population, compute, spec.base.arch, spec.base.batch_size
    )
    gpus = visible_gpus(compute.device)

    with storage_errors(url):
        # Before anything is stored: a folder another storage wrote is never taken over.
        if foreign := foreign_folders(results_dir / name, lambda: _stored_trials(storage, name)):
            raise VaesweepError(
                f"{results_dir / name} holds trial folders this storage did not write "
                f"({', '.join(f.name for f in foreign[:3])}{', ...' if len(foreign) > 3 else ''}); "
                "give each storage its own --results, or this study another --name"
            )
        study = optuna.create_study(
            storage=storage, study_name=name, directions=spec.directions, load_if_exists=True
        )
        requested = spec
        spec = _check_definition(study, spec)
        # Probe for writing before any work: a read-only storage fails here, not mid-trial.
        study.set_user_attr(LAST_RUN_ATTR, time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        study.set_user_attr(ANALYSIS_ATTR, {"equivalence": dict(spec.equivalence)})
        # What this run warns of the study itself, for the report's page to say again.
        warned = [w.removeprefix("warning: ") for w in [spec.beta_warning()] if w]
        study.set_user_attr(WARNINGS_ATTR, warned)
    if spec.design.shares_seeds != requested.design.shares_seeds:
        warn(
            f"study '{name}' was stored with independent seeds per configuration (before blocked "
            "replicates, or with blocked = false): it resumes so, and is compared unpaired"
        )
    if warning := spec.beta_warning():
        warn(warning)
    if compute.why:
        warn(f"precision {compute.why}")
    if population_why:
        warn(f"population {population_why}")
    _clean_debris(study, results_dir, warn)
    if jobs is None:  # auto: no more workers than trials to run, so none idles with its cores
        missing = n_trials - counts(study)[0]
        jobs = max(1, min(auto_jobs(gpus, cores), -(-missing // population)))
    request = RunRequest(
        spec,
        n_trials,
        results_dir,
        url,
        name,
        data_dir,
        compute,
        seed,
        max(1, cores // jobs),
        gpus=gpus,
        first_trial=len(study.trials),
        population=population,
    )
    outcome, answered = _run_and_answer(request, data, jobs, progress, study, answer)
    while spec.design.until_decided and not outcome.errors:
        blocks = answered.blocks or 0
        if blocks < spec.design.replicates:  # the design itself is not complete yet
            break
        if answered.decided or blocks >= spec.design.most_replicates:
            why = "every configuration decided" if answered.decided else "max_replicates reached"
            warn(f"until decided: stopped after seed block {blocks} ({why})")
            break
        grown = dataclasses.replace(spec.design, replicates=blocks + 1)
        n_more = grown.trials_to_complete(spec.compared)
        if n_more <= request.n_trials:  # the next block is asked for already: nothing to add
            break
        request = dataclasses.replace(request, n_trials=n_more)
        more, answered = _run_and_answer(request, data, jobs, progress, study, answer)
        outcome.merge(more)
    with storage_errors(url, during=True):
        streak, reason = failing_streak(study, request.first_trial)
        finished = counts(study)[0]
    if streak >= MAX_FAILURES_IN_A_ROW:
        raise VaesweepError(f"{streak} trials in a row failed (last: {reason}); stopped the study")
    if outcome.errors:
        if finished < request.n_trials:
            raise VaesweepError(outcome.errors[0])
        for error in outcome.errors:  # the other workers finished the study meanwhile
            warn(f"warning: {error}; the other workers finished the study")
    sentences = answered.sentences
    return RunSummary(
        study_name=name,
        storage_url=url,
        results_dir=results_dir,
        target=request.n_trials,
        finished=finished,
        ran=outcome.ran,
        failed=outcome.failed,
        answers=sentences,
    )
