"""Objective: one Optuna trial = sample a config, train, report and prune, evaluate, save."""

from __future__ import annotations

import time
from pathlib import Path

import optuna
import torch

from vaesweep.artifacts import save_trial, trial_folder
from vaesweep.data import FashionMNIST, make_splits
from vaesweep.metrics import evaluate
from vaesweep.progress import Progress
from vaesweep.studies import StudySpec
from vaesweep.train import TrainingDiverged, train

FAIL_REASON = "fail_reason"
PRUNE_REASON = "prune_reason"


class Objective:
    """Callable for `study.optimize`; holds the data loaded once for every trial."""

    def __init__(
        self,
        spec: StudySpec,
        study_name: str,
        data: FashionMNIST,
        results_dir: Path,
        device: torch.device,
        progress: Progress,
        base_seed: int = 0,
    ):
        self.spec = spec
        self.study_name = study_name
        self.data = data
        self.results_dir = results_dir
        self.device = device
        self.progress = progress
        self.base_seed = base_seed

    def __call__(self, trial: optuna.Trial) -> float | list[float]:
        params = self.spec.suggest(trial)
        # Repeats of the same parameters get different seeds, so the spread shows in the results.
        config = self.spec.config_for(params, seed=self.base_seed + trial.number)
        folder = trial_folder(self.results_dir, self.study_name, trial.number)
        trial.set_user_attr("config", config.to_dict())
        self.progress.trial_started(trial.number, params, config.epochs)
        started = time.perf_counter()
        history: list[dict[str, float]] = []

        def on_epoch(record: dict[str, float]) -> None:
            history.append(record)
            self.progress.epoch_finished(trial.number, record)
            metric = self.spec.prune_metric
            if metric is None:
                return
            epoch = int(record["epoch"])
            trial.report(record[metric], epoch)
            # Never prune during warm-up: the model is still being shaped by a small beta.
            if epoch >= config.warmup_epochs and trial.should_prune():
                reason = (
                    f"{metric} {record[metric]:.4g} at epoch {epoch + 1} is worse than the median"
                )
                trial.set_user_attr(PRUNE_REASON, reason)
                info = self._info(trial.number, params, started, "PRUNED", reason=reason)
                save_trial(folder, config, history, info)
                trial.set_user_attr("folder", self._relative(folder))
                raise optuna.TrialPruned(reason)

        splits = make_splits(self.data, config.val_size, config.train_subset)
        try:
            result = train(config, splits, self.device, on_epoch)
        except TrainingDiverged as err:
            trial.set_user_attr(FAIL_REASON, f"diverged: {err}")
            raise
        metrics = evaluate(result.model, splits, config, self.device)
        info = self._info(
            trial.number,
            params,
            started,
            "COMPLETE",
            epochs_run=len(result.history),
            best_epoch=result.best_epoch,
            stop_reason=result.stop_reason,
            device=result.device,
        )
        save_trial(folder, config, result.history, info, model=result.model, metrics=metrics)
        trial.set_user_attr("folder", self._relative(folder))
        trial.set_user_attr("metrics", metrics)
        values = [metrics[name] for name in self.spec.objectives]
        return values[0] if len(values) == 1 else values

    def _info(self, number: int, params: dict, started: float, state: str, **extra) -> dict:
        return {
            "study": self.study_name,
            "number": number,
            "state": state,
            "params": params,
            "seconds": round(time.perf_counter() - started, 3),
            **extra,
        }

    def _relative(self, folder: Path) -> str:
        return str(folder.relative_to(self.results_dir))
