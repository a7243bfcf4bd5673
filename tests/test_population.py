"""A population trains each member as `train.train` trains it alone, up to float rounding: its
seed, batches and noise, its β schedule, learning rate and ReduceLROnPlateau, its early stopping
and best weights; a member that fails or is stopped by its callback stops alone."""

from __future__ import annotations

import pytest
import torch

from vaesweep.spec.config import TrainConfig
from vaesweep.training.data import make_splits
from vaesweep.training.population import train_population
from vaesweep.training.train import TrainingDiverged, train

from helpers import CPU

# Measured on the members below: histories agree to 6e-6 relative, weights to 5e-6 absolute.
# vmap's batched matrix products round differently from one network's, and training carries the
# difference on; at lr 5e-3 with a warm-up it grew to 1e-2 in 8 epochs (float32 chaos, not logic:
# the same members at lr 2e-3 agree to 4e-7).
TOLERANCE = 1e-4


def member(seed: int, lr: float, warmup: int, patience: int, epochs: int = 10) -> TrainConfig:
    return TrainConfig(
        arch="mlp",
        latent_dim=2,
        epochs=epochs,
        val_size=100,
        batch_size=64,
        seed=seed,
        lr=lr,
        warmup_epochs=warmup,
        early_stop_patience=patience,
        early_stop_start=0.0,
        monitor="elbo",
        min_lr=1e-5,
        lr_patience=1,
    )


# Alone, these stop early at epochs 4 and 7, and run all 10 with two learning-rate reductions.
MEMBERS = [member(1, 2e-3, 0, 1), member(3, 1e-3, 3, 1), member(1, 2e-3, 2, 2)]


def assert_same_training(together, alone) -> None:
    assert (together.stop_reason, together.best_epoch) == (alone.stop_reason, alone.best_epoch)
    assert len(together.history) == len(alone.history)
    for mine, theirs in zip(together.history, alone.history, strict=True):
        assert mine.keys() == theirs.keys()
        for name, value in theirs.items():
            if not name.endswith("seconds"):
                assert mine[name] == pytest.approx(value, rel=TOLERANCE, abs=1e-6), name
    for name, value in alone.model.state_dict().items():
        torch.testing.assert_close(together.model.state_dict()[name], value, rtol=0, atol=1e-4)


def test_each_member_trains_as_it_would_alone(tiny_data):
    splits = make_splits(tiny_data, 100)
    alone = [train(config, splits, CPU) for config in MEMBERS]
    assert [len(r.history) for r in alone] == [4, 7, 10]  # they stop at different epochs
    assert len({h["lr"] for h in alone[2].history}) == 3  # and the last one's LR is reduced
    together = train_population(MEMBERS, splits, CPU)
    for mine, theirs in zip(together, alone, strict=True):
        assert_same_training(mine, theirs)


def test_a_member_stopped_by_its_callback_or_diverging_stops_alone(tiny_data):
    splits = make_splits(tiny_data, 100)

    class Pruned(Exception):
        pass

    def on_epoch(index, record, model):
        if index == 0 and record["epoch"] == 1:
            raise Pruned("worse than the median")

    configs = [MEMBERS[2], member(2, 10.0, 0, 1), member(3, 1e-3, 3, 1)]
    pruned, diverged, kept = train_population(configs, splits, CPU, on_epoch)
    assert isinstance(pruned, Pruned)
    assert isinstance(diverged, TrainingDiverged) and "epoch 1" in str(diverged)
    assert_same_training(kept, train(configs[2], splits, CPU))


def test_members_of_other_shapes_are_refused():
    with pytest.raises(ValueError, match="must share arch, latent_dim"):
        train_population([member(1, 1e-3, 0, 1), MEMBERS[0].__class__(latent_dim=3)], None, CPU)
