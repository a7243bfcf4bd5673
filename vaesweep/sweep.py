"""Run a study until it has the requested number of finished trials."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.study import MaxTrialsCallback
from optuna.trial import FrozenTrial, TrialState

from vaesweep.config import TrainConfig
from vaesweep.data import load_fashion_mnist, make_splits
from vaesweep.errors import VaesweepError
from vaesweep.objective import Objective
from vaesweep.progress import Progress
from vaesweep.storage import (
    DEFINITION_ATTR,
    DESCRIPTION_ATTR,
    FAIL_REASON_ATTR,
    FINISHED_STATES,
    best_trials,
    default_storage_url,
    open_storage,
)
from vaesweep.studies import StudySpec
from vaesweep.train import TrainingDiverged, resolve_device

MAX_FAILURES_IN_A_ROW = 5


@dataclass
class RunSummary:
    study_name: str
    storage_url: str
    results_dir: Path
    target: int
    finished: int
    ran: int
    failed: int
    best: list[FrozenTrial]


def check_writable(results_dir: Path) -> None:
    """Fail before any training if trial folders could not be written."""
    try:
        results_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=results_dir, prefix=".write-check-"):
            pass
    except OSError as err:
        raise VaesweepError(
            f"results folder {results_dir} is not writable ({err.strerror})"
        ) from None


def _check_definition(study: optuna.Study, spec: StudySpec, results_dir: Path) -> None:
    """A stored study of this name must have been created from the same definition."""
    stored = study.user_attrs.get(DEFINITION_ATTR)
    wanted = spec.definition()
    if stored is None:
        if study.trials:
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
        return
    for part in ("search", "fixed", "objectives"):
        if stored.get(part) != wanted[part]:
            raise VaesweepError(
                f"study '{study.study_name}' in this storage was created with different {part} "
                f"({stored.get(part)} vs now {wanted[part]}); use another --name to keep both"
            )


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
) -> RunSummary:
    """Run trials until `n_trials` are finished (completed or pruned); resumes where it stopped."""
    if n_trials < 1:
        raise VaesweepError(f"--trials must be at least 1; got {n_trials}")
    name = study_name or spec.name
    check_writable(results_dir)
    url = storage_url or default_storage_url(results_dir)
    storage = open_storage(url)
    torch_device = resolve_device(device)
    data = load_fashion_mnist(data_dir)
    defaults = TrainConfig.from_mapping(spec.fixed, spec.name)
    make_splits(data, defaults.val_size, defaults.train_subset)  # too little data: fail now

    study = optuna.create_study(
        storage=storage,
        study_name=name,
        directions=spec.directions,
        pruner=spec.make_pruner(),
        load_if_exists=True,
    )
    _check_definition(study, spec, results_dir)
    finished = len(study.get_trials(deepcopy=False, states=FINISHED_STATES))
    progress.start(name, spec.objectives, n_trials, finished)
    ran = failed = failures_in_a_row = 0
    if finished < n_trials:
        # A fresh seed per session, so a resumed study does not replay its first suggestions.
        study.sampler = spec.make_sampler(seed + len(study.trials))
        objective = Objective(spec, name, data, results_dir, torch_device, progress, seed)

        def after_trial(study: optuna.Study, trial: FrozenTrial) -> None:
            nonlocal ran, failed, failures_in_a_row
            ran += 1
            failures_in_a_row = failures_in_a_row + 1 if trial.state == TrialState.FAIL else 0
            failed += trial.state == TrialState.FAIL
            done = len(study.get_trials(deepcopy=False, states=FINISHED_STATES))
            progress.trial_finished(trial, done, {t.number for t in best_trials(study)})
            if failures_in_a_row >= MAX_FAILURES_IN_A_ROW:
                study.stop()

        try:
            study.optimize(
                objective,
                catch=(TrainingDiverged,),
                callbacks=[MaxTrialsCallback(n_trials, states=FINISHED_STATES), after_trial],
            )
        finally:
            progress.stop()
        if failures_in_a_row >= MAX_FAILURES_IN_A_ROW:
            last = study.trials[-1].user_attrs.get(FAIL_REASON_ATTR, "see the trial records")
            raise VaesweepError(
                f"{failures_in_a_row} trials in a row failed (last: {last}); stopped the study"
            )
    else:
        progress.stop()
    return RunSummary(
        study_name=name,
        storage_url=url,
        results_dir=results_dir,
        target=n_trials,
        finished=len(study.get_trials(deepcopy=False, states=FINISHED_STATES)),
        ran=ran,
        failed=failed,
        best=best_trials(study),
    )
