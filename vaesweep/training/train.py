"""The training loop: KL warm-up, ReduceLROnPlateau, early stopping with best weights restored.

Knows nothing of Optuna: callers observe (and may stop) training through `on_epoch`.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from vaesweep.interrupts import stop_if_requested
from vaesweep.spec.config import TrainConfig
from vaesweep.training.data import Splits
from vaesweep.training.device import Compute, memory_format, prepare_training
from vaesweep.training.losses import vae_loss
from vaesweep.training.model import VAE, build_model
from vaesweep.training.validation import validate


class TrainingDiverged(Exception):
    """The loss became NaN or infinite; the run cannot continue."""


@dataclass
class TrainResult:
    model: VAE  # best weights restored, in eval mode
    history: list[dict[str, float]]
    best_epoch: int | None
    stop_reason: str  # "max_epochs" or "early_stopping"


def beta_at(epoch: int, warmup_epochs: int) -> float:
    """Linear KL warm-up: beta = epoch / warmup_epochs (0-based) until it reaches 1."""
    return epoch / warmup_epochs if epoch < warmup_epochs else 1.0


def _train_epoch(
    model: VAE,
    optimizer: torch.optim.Optimizer,
    x_all: Tensor,
    config: TrainConfig,
    compute: Compute,
    beta: float,
    generator: torch.Generator,
    binarizer: torch.Generator | None = None,
) -> dict[str, float]:
    """One pass over the training images; with a `binarizer`, each batch is a fresh Bernoulli
    sample of its intensities (dynamic binarization)."""
    model.train()
    order = torch.randperm(len(x_all), generator=generator).to(compute.device)
    sums = torch.zeros(3, device=compute.device)
    for start in range(0, len(x_all), config.batch_size):
        stop_if_requested()  # Ctrl-C stops between steps, never inside a storage call
        x = x_all[order[start : start + config.batch_size]]
        if binarizer is not None:
            x = torch.bernoulli(x, generator=binarizer)
        with compute.autocast():
            logits, mu, logvar = model(x)
        loss = vae_loss(logits, x, mu, logvar, config.likelihood, beta)
        optimizer.zero_grad(set_to_none=True)
        loss.total.backward()
        optimizer.step()
        sums += torch.stack([loss.total, loss.recon, loss.kl]).detach() * len(x)
    total, recon, kl = (sums / len(x_all)).tolist()
    return {"loss": total, "recon": recon, "kl": kl, "beta_kl": beta * kl}


KERAS_ADAM_EPSILON = 1e-7  # Keras's default (PyTorch's is 1e-8)


def make_optimizer(model: VAE, lr: float) -> torch.optim.Adam:
    """Adam as in the notebook (Keras's epsilon). The fused kernel updates every parameter in
    one pass; the default per-tensor loop took a quarter of an mlp training step on the CPU."""
    return torch.optim.Adam(model.parameters(), lr=lr, eps=KERAS_ADAM_EPSILON, fused=True)


def lr_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig):
    # Keras reduces after `patience` epochs without an improvement of more than min_delta=1e-4;
    # torch reduces after patience + 1, hence the offset.
    return torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer,
        mode="min",
        factor=config.lr_factor,
        patience=config.lr_patience - 1,
        threshold=1e-4,
        threshold_mode="abs",
        min_lr=config.min_lr,
    )


class EarlyStopping:
    """Keras-style early stopping: watches from `start_epoch`, stops after `patience` epochs
    without a new minimum, and keeps the best weights to restore."""

    def __init__(self, start_epoch: int, patience: int):
        self.start_epoch, self.patience = start_epoch, patience
        self.best_value = math.inf
        self.best_epoch: int | None = None
        self.best_state: dict[str, Any] | None = None
        self.waited = 0

    def should_stop(self, epoch: int, value: float, model: VAE) -> bool:
        if epoch < self.start_epoch:
            return False
        if value < self.best_value:
            self.best_value, self.best_epoch, self.waited = value, epoch, 0
            self.best_state = copy.deepcopy(model.state_dict())
            return False
        self.waited += 1
        return self.waited >= self.patience

    def restore_best(self, model: VAE) -> None:
        if self.best_state is not None:
            model.load_state_dict(self.best_state)


@dataclass
class Member:
    """One trial's own state across epochs, whichever trainer steps its weights (`train` alone,
    `population.train_population` with others): its learning-rate schedule, early stopping and
    history. `end_epoch` is the one place where an epoch ends for a trial.

    The training steps themselves differ: alone, a module's forward and torch's fused Adam; in a
    population, one vmapped functional call and a batched Adam with a learning rate per member
    (torch's takes one). Both use `vae_loss`, `beta_at`, the member's own seeds and Keras's
    epsilon, and tests/unit/test_population.py checks they train the same weights."""

    config: TrainConfig
    schedule: torch.optim.lr_scheduler.ReduceLROnPlateau
    early_stopping: EarlyStopping
    history: list[dict[str, float]]
    stop_reason: str = "max_epochs"

    @classmethod
    def start(cls, config: TrainConfig, optimizer: torch.optim.Optimizer) -> Member:
        """`optimizer` holds the learning rate the schedule lowers (a stand-in in a population)."""
        stopping = EarlyStopping(config.early_stop_start_epoch, config.early_stop_patience)
        return cls(config, lr_scheduler(optimizer, config), stopping, [])

    @property
    def lr(self) -> float:
        return self.schedule.optimizer.param_groups[0]["lr"]

    def end_epoch(
        self,
        record: dict[str, float],
        model: VAE,
        val_x: Tensor,
        compute: Compute,
        started: float,
        on_epoch: Callable[[dict[str, float], VAE], None] | None,
    ) -> bool:
        """After an epoch's training steps (`record`: epoch, beta, lr, train_*): validate,
        record, call back, schedule; whether the member trains on. Raises TrainingDiverged, or
        what `on_epoch` raised."""
        val_stats = validate(model, val_x, self.config, record["beta"], compute).stats
        record |= {f"val_{key}": value for key, value in val_stats.items()}
        record["seconds"] = time.perf_counter() - started  # with validation
        self.history.append(record)
        if not all(math.isfinite(value) for value in record.values()):
            raise TrainingDiverged(f"loss became NaN or infinite in epoch {record['epoch'] + 1}")
        if on_epoch is not None:
            on_epoch(record, model)
        monitor = record[f"val_{self.config.monitor}"]
        self.schedule.step(monitor)
        if self.early_stopping.should_stop(int(record["epoch"]), monitor, model):
            self.stop_reason = "early_stopping"
            return False
        return True

    def result(self, model: VAE) -> TrainResult:
        """The trained member: its best weights restored, in eval mode."""
        self.early_stopping.restore_best(model)
        model.eval()
        return TrainResult(model, self.history, self.early_stopping.best_epoch, self.stop_reason)


def epoch_record(
    epoch: int, beta: float, lr: float, train_stats: dict[str, float], train_seconds: float
) -> dict[str, float]:
    """An epoch's row of history.csv, up to its validation: the same columns for every trainer."""
    record = {"epoch": epoch, "beta": beta, "lr": lr}
    record |= {f"train_{key}": value for key, value in train_stats.items()}
    record["train_seconds"] = train_seconds  # in training steps alone
    return record


def train(
    config: TrainConfig,
    splits: Splits,
    compute: Compute,
    on_epoch: Callable[[dict[str, float], VAE], None] | None = None,
) -> TrainResult:
    """Train one VAE on `compute`'s device and precision (decided once per run from
    `config.precision`). `on_epoch(record, model)` sees each epoch and may raise to stop the run."""
    prepare_training(compute.device)
    model = build_model(config.arch, config.latent_dim, seed=config.seed)
    torch.manual_seed(config.seed)  # the training noise, the same whatever the construction drew
    layout = memory_format(model)
    model = model.to(compute.device, memory_format=layout)  # type: ignore[call-overload]  # torch's stubs omit memory_format
    optimizer = make_optimizer(model, config.lr)
    member = Member.start(config, optimizer)
    generator = torch.Generator().manual_seed(config.seed)
    binarizer = None
    if config.binarize:
        binarizer = torch.Generator(device=compute.device).manual_seed(config.seed + 1)
    train_x = splits.train_x.to(compute.device, memory_format=layout)
    val_x = splits.val_x.to(compute.device, memory_format=layout)
    for epoch in range(config.epochs):
        started = time.perf_counter()
        beta, lr = beta_at(epoch, config.warmup_epochs), member.lr
        train_stats = _train_epoch(
            model, optimizer, train_x, config, compute, beta, generator, binarizer
        )
        record = epoch_record(epoch, beta, lr, train_stats, time.perf_counter() - started)
        if not member.end_epoch(record, model, val_x, compute, started, on_epoch):
            break
    return member.result(model)
