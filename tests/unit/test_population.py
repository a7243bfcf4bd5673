"""A population trains each member as `train.train` trains it alone, up to float rounding: its
seed, batches and noise, its β schedule, learning rate and ReduceLROnPlateau, its early stopping
and best weights; a member that fails or is stopped by its callback stops alone."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from vaesweep.spec.config import TrainConfig
from vaesweep.training import population
from vaesweep.training.data import make_splits
from vaesweep.training.model import IMAGE_SHAPE, build_model
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


def test_a_stopped_member_leaves_the_network(tiny_data, monkeypatch):
    """No step computes a member that has stopped: alone, MEMBERS stop after 4, 7 and 10
    epochs, so the population's steps hold 3 members for 4 epochs, 2 for 3, then 1."""
    sizes: list[int] = []
    step = population._Batched.step

    def counted(network, xs, noises):
        sizes.append(len(xs))
        return step(network, xs, noises)

    monkeypatch.setattr(population._Batched, "step", counted)
    splits = make_splits(tiny_data, 100)
    train_population(MEMBERS, splits, CPU)
    per_epoch = -(-len(splits.train_x) // MEMBERS[0].batch_size)
    assert Counter(sizes) == {3: 4 * per_epoch, 2: 3 * per_epoch, 1: 3 * per_epoch}


@pytest.mark.parametrize("arch", ["mlp", "conv"])
def test_a_population_step_reads_nothing_back_from_the_device(arch):
    """A read of a device value (`.item()`, `bool()`, `.tolist()`: aten's
    `_local_scalar_dense`) or a tensor made from Python numbers (`lift_fresh`) would make a GPU
    step wait for the device; learning rates and β are set once an epoch instead. Profiled on
    the CPU, where the same calls show."""
    network = population._Batched([build_model(arch, 2, seed=s) for s in range(3)], "bce", CPU)
    network.set_schedule([0.5, 1.0, 1.0], [1e-3, 2e-3, 1e-3])
    xs, noises = torch.rand(3, 8, *IMAGE_SHAPE), torch.randn(3, 8, 2)
    network.step(xs, noises)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profiled:
        network.step(xs, noises)
    names = {event.name for event in profiled.events()}
    assert "aten::addmm" in names or "aten::bmm" in names  # the step was profiled
    assert not names & {"aten::_local_scalar_dense", "aten::lift_fresh"}
