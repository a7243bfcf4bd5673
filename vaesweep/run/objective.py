"""Objective: one Optuna trial = sample a config, train, report and prune, evaluate, save.

A worker starts several trials at once when it trains a population: `start` each, `train` them
together, `finish` each; calling the objective does the three for one trial."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna

from vaesweep.run.phases import PhaseClock
from vaesweep.run.progress import Progress
from vaesweep.spec.config import TrainConfig
from vaesweep.spec.design import Phase
from vaesweep.spec.metric_names import PER_EPOCH
from vaesweep.spec.studies import StudySpec
from vaesweep.store.artifact_store import open_store, upload_folder
from vaesweep.store.artifacts import save_trial
from vaesweep.store.binding import new_folder_id
from vaesweep.store.layout import trial_folder
from vaesweep.store.storage import (
    EPOCHS_DONE_ATTR,
    FOLDER_ATTR,
    FOLDER_ID_ATTR,
    METRICS_ATTR,
    PHASE_ATTR,
    PHASE_SECONDS_ATTR,
    PRUNE_REASON_ATTR,
    REPLICATE_ATTR,
    SEED_ATTR,
)
from vaesweep.training.data import FashionMNIST, Splits, make_splits
from vaesweep.training.device import Compute, environment
from vaesweep.training.metrics import evaluate
from vaesweep.training.model import VAE
from vaesweep.training.population import population_key, train_population
from vaesweep.training.train import TrainResult, train


@dataclass
class _TrialRun:
    """What one trial needs from start to finish."""

    trial: optuna.Trial
    phase: Phase
    config: TrainConfig
    splits: Splits
    folder: Path
    folder_id: str = field(default_factory=new_folder_id)
    started: float = field(default_factory=time.perf_counter)
    history: list[dict[str, float]] = field(default_factory=list)
    population: int = 1  # the trials trained together with it, itself included
    clock: PhaseClock = field(default_factory=PhaseClock)


class Objective:
    """One trial (or a population of them) from its Optuna trial to its stored outcome; holds
    the data loaded once for every trial of the run (the work loop calls it)."""

    def __init__(
        self,
        spec: StudySpec,
        study_name: str,
        data: FashionMNIST,
        results_dir: Path,
        compute: Compute,
        progress: Progress,
        base_seed: int = 0,
        artifacts: str | None = None,
    ):
        self.spec = spec
        self.study_name = study_name
        self.data = data
        self.results_dir = results_dir
        self.compute = compute
        self.progress = progress
        self.base_seed = base_seed
        self.environment = environment(compute.device)
        # Where each trial's folder also goes, if anywhere: this worker's own client of the
        # store (the run's plan checked it).
        self.artifacts = artifacts
        self.store = open_store(artifacts) if artifacts is not None else None

    def __call__(self, trial: optuna.Trial) -> float | list[float]:
        """One trial from start to finish, alone."""
        run = self.start(trial)
        [result] = self.train([run])
        if isinstance(result, BaseException):
            raise result
        return self.finish(run, result)

    def start(self, trial: optuna.Trial, waited: float = 0.0) -> _TrialRun:
        """Suggest the trial's values, derive its seed and config, and bind its record;
        `waited`: the seconds its worker waited for it (for its `phase_seconds`)."""
        clock = PhaseClock(waited)
        with clock("start-up"):
            params = self.spec.suggest(trial)
            # The design placed this trial: its seed follows from its block (or configuration).
            phase = Phase(trial.user_attrs.get(PHASE_ATTR, Phase.EXPLORE))
            replicate = trial.user_attrs.get(REPLICATE_ATTR, 0)
            seed = self.spec.design.seed(self.base_seed, params, phase, replicate)
            config = self.spec.config_for(params, seed=seed)
        with clock("data"):
            splits = make_splits(
                self.data, config.val_size, config.train_subset, config.binarize, config.eval_images
            )
        run = _TrialRun(
            trial,
            phase,
            config,
            splits,
            folder=trial_folder(self.results_dir, self.study_name, trial.number),
            clock=clock,
        )
        with clock("storage"):
            # The seed, with the study's stored definition and the params, gives the trial's
            # settings; the whole config is stored once, in its folder's config.json.
            trial.set_user_attr(SEED_ATTR, seed)
            # Binds the folder to this record before the folder exists (see binding.py).
            trial.set_user_attr(FOLDER_ID_ATTR, run.folder_id)
        self.progress.trial_started(trial.number, params, config.epochs, str(self.compute.device))
        return run

    def train(self, runs: Sequence[_TrialRun]) -> list[TrainResult | BaseException]:
        """Train the runs, those that can share a network as one population (`population.py`),
        the others alone; per run its result or the exception that stopped it (divergence, a
        prune, a failure). A KeyboardInterrupt stops them all."""
        results: dict[int, TrainResult | BaseException] = {}
        groups: dict[tuple, list[_TrialRun]] = {}
        for run in runs:
            groups.setdefault(population_key(run.config), []).append(run)
        for members in groups.values():
            for run in members:
                run.population = len(members)
            train_members = self._train_together if len(members) > 1 else self._train_alone
            with contextlib.ExitStack() as training:  # each member's clock: it trained all along
                for run in members:
                    training.enter_context(run.clock("training"))
                outcomes = train_members(members)
            results |= {id(run): outcome for run, outcome in zip(members, outcomes, strict=True)}
        return [results[id(run)] for run in runs]

    def _train_together(self, members: list[_TrialRun]) -> list[TrainResult | BaseException]:
        def on_epoch(index: int, record: dict[str, float], model: VAE) -> None:
            self._on_epoch(members[index], record, model)

        configs = [run.config for run in members]
        return train_population(configs, members[0].splits, self.compute, on_epoch)

    def _train_alone(self, members: list[_TrialRun]) -> list[TrainResult | BaseException]:
        [run] = members
        try:
            return [
                train(run.config, run.splits, self.compute, lambda r, m: self._on_epoch(run, r, m))
            ]
        except Exception as err:  # the run's own outcome, told by the caller
            return [err]

    def finish(self, run: _TrialRun, result: TrainResult) -> float | list[float]:
        """A trained run's evaluation and folder; its objective values."""
        run.history = result.history
        metrics = self._finish(
            run,
            result.model,
            "COMPLETE",
            epochs_run=len(result.history),
            best_epoch=result.best_epoch,
            stop_reason=result.stop_reason,
        )
        values = [metrics[name] for name in self.spec.objectives]
        return values[0] if len(values) == 1 else values

    def _on_epoch(self, run: _TrialRun, record: dict[str, float], model: VAE) -> None:
        run.history.append(record)
        self.progress.epoch_finished(run.trial.number, record)
        epoch = int(record["epoch"])
        with run.clock("storage"):
            run.trial.set_user_attr(EPOCHS_DONE_ATTR, epoch + 1)
        # The objective's own per-epoch value, where it has one (dashboards draw these); a
        # single-objective study's pruned trial keeps the last one as its value.
        metric = PER_EPOCH.get(self.spec.objectives[0])
        if metric is None or len(self.spec.objectives) > 1:
            return
        with run.clock("storage"):
            run.trial.report(record[metric], epoch)
            # Only explorations are pruned (confirmations and grids run their full budget),
            # never during warm-up, while the model is still being shaped by a small beta.
            pruned = (
                self.spec.prune_metric is not None
                and run.phase.sampled
                and epoch >= run.config.warmup_epochs
                and run.trial.should_prune()
            )
        if pruned:
            reason = f"{metric} {record[metric]:.4g} at epoch {epoch + 1} is worse than the median"
            run.trial.set_user_attr(PRUNE_REASON_ATTR, reason)
            # A pruned trial counts as finished, so it keeps its model and metrics too.
            self._finish(run, model, "PRUNED", epochs_run=epoch + 1, stop_reason=reason)
            raise optuna.TrialPruned(reason)

    def _finish(self, run: _TrialRun, model: VAE, state: str, **info: Any) -> dict[str, Any]:
        """Evaluate, write the trial folder, and point the trial record to it."""
        number = run.trial.number
        with run.clock("evaluation"):
            metrics, test_means = evaluate(
                model,
                run.splits,
                run.config,
                self.compute,
                lambda step, done, total: self.progress.evaluating(number, step, done, total),
            )
        info = {
            "study": self.study_name,
            "number": run.trial.number,
            "state": state,
            "folder_id": run.folder_id,
            "seconds": round(time.perf_counter() - run.started, 3),
            "device": str(self.compute.device),
            "precision": self.compute.precision,
            "linear": self.compute.linear,  # fp32 Linear layers' library (`linear.KERNELS`)
            "population": run.population,
            "environment": self.environment,
            # Up to its folder's write; the record's copy (PHASE_SECONDS_ATTR) includes it.
            "phase_seconds": run.clock.rounded(),
            **info,
        }
        with run.clock("storage"):
            save_trial(
                run.folder,
                run.config,
                run.history,
                info,
                model,
                latents=(test_means, run.splits.test_y),
            )
            if self.store is not None:  # before the trial is told: a complete trial has them
                upload_folder(self.store, str(self.artifacts), run.trial, run.folder)
            run.trial.set_user_attr(FOLDER_ATTR, str(run.folder.relative_to(self.results_dir)))
            run.trial.set_user_attr(METRICS_ATTR, metrics)
        run.trial.set_user_attr(PHASE_SECONDS_ATTR, run.clock.rounded())
        return metrics
