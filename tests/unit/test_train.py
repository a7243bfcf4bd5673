import pytest
import torch

from vaesweep.spec.config import TrainConfig
from vaesweep.training.data import make_splits
from vaesweep.training.losses import vae_loss
from vaesweep.training.model import VAE, build_model
from vaesweep.training.train import (
    EarlyStopping,
    TrainingDiverged,
    beta_at,
    lr_scheduler,
    make_optimizer,
    train,
)

from helpers import CPU, tiny_config


def test_warmup_is_linear_from_zero_to_one():
    assert [beta_at(e, 4) for e in range(6)] == [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]
    assert beta_at(0, 0) == 1.0  # no warm-up: beta = 1 from the start


def test_loss_falls_and_history_has_every_quantity(tiny_data):
    config = tiny_config(warmup_epochs=2)
    result = train(config, make_splits(tiny_data, 100), CPU)
    history = result.history
    assert len(history) == 5
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert history[-1]["val_elbo"] < history[0]["val_elbo"]
    assert [h["beta"] for h in history] == [0.0, 0.5, 1.0, 1.0, 1.0]
    for record in history:
        for part in ("train", "val"):
            assert record[f"{part}_beta_kl"] == pytest.approx(record["beta"] * record[f"{part}_kl"])
            assert record[f"{part}_loss"] == pytest.approx(
                record[f"{part}_recon"] + record[f"{part}_beta_kl"], rel=1e-5
            )
        assert record["val_elbo"] == pytest.approx(record["val_recon"] + record["val_kl"], rel=1e-5)
        assert record["lr"] == 2e-3


def test_loss_falls_on_a_real_subset(real_data):
    config = tiny_config(epochs=2, train_subset=2000, val_size=1000, batch_size=128)
    history = train(config, make_splits(real_data, 1000, 2000), CPU).history
    assert history[1]["val_elbo"] < history[0]["val_elbo"]


def test_same_seed_same_history(tiny_data):
    splits = make_splits(tiny_data, 100)
    first = train(tiny_config(epochs=2), splits, CPU).history
    second = train(tiny_config(epochs=2), splits, CPU).history
    other = train(tiny_config(epochs=2, seed=1), splits, CPU).history
    drop = lambda h: [{k: v for k, v in r.items() if "seconds" not in k} for r in h]  # noqa: E731
    assert drop(first) == drop(second)
    assert drop(first) != drop(other)


def test_lr_halves_after_patience_epochs_without_improvement_like_keras():
    model = build_model("mlp", 2)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    scheduler = lr_scheduler(optimizer, TrainConfig(lr=1e-3, lr_patience=3, min_lr=3e-4))
    lrs = []
    for value in [10.0, 10.0, 10.0, 10.0, 10.0, 10.0, 10.0, 10.0, 10.0, 10.0]:
        scheduler.step(value)
        lrs.append(optimizer.param_groups[0]["lr"])
    # Epoch 1 sets the best; three epochs without improvement cut the LR; then it floors at min_lr.
    assert lrs == pytest.approx([1e-3] * 3 + [5e-4] * 3 + [3e-4] * 4)


def test_early_stopping_waits_for_its_start_and_restores_the_best_weights():
    model = build_model("mlp", 2)
    stopper = EarlyStopping(start_epoch=2, patience=2)
    values = [1.0, 0.5, 3.0, 2.0, 2.5, 2.6]
    stops, best_weights = [], None
    for epoch, value in enumerate(values):
        with torch.no_grad():
            model.to_mu.bias.fill_(float(epoch))
        if epoch == 3:
            best_weights = model.to_mu.bias.clone()
        stops.append(stopper.should_stop(epoch, value, model))
    # Epochs 0-1 are ignored (the 0.5 there does not count); 2.0 at epoch 3 is the best;
    # epochs 4 and 5 do not improve, so the second of them stops.
    assert stops == [False, False, False, False, False, True]
    assert stopper.best_epoch == 3
    stopper.restore_best(model)
    assert torch.equal(model.to_mu.bias, best_weights)


def test_training_restores_best_epoch_weights(tiny_data):
    splits = make_splits(tiny_data, 100)
    result = train(tiny_config(epochs=4), splits, CPU)
    from vaesweep.training.validation import validate

    restored = validate(result.model, splits.val_x, tiny_config(), 1.0, CPU)
    restored = restored.stats["elbo"]
    best = min(h["val_elbo"] for h in result.history)
    assert result.history[result.best_epoch]["val_elbo"] == best
    assert restored == pytest.approx(best, rel=1e-5)


def test_nan_loss_raises_diverged(tiny_data):
    with pytest.raises(TrainingDiverged, match="NaN or infinite"):
        train(tiny_config(lr=10.0, min_lr=0.0, epochs=3), make_splits(tiny_data, 100), CPU)


def test_on_epoch_can_stop_training(tiny_data):
    class Stop(Exception):
        pass

    seen = []

    def on_epoch(record, model):
        assert isinstance(model, VAE)
        seen.append(record["epoch"])
        if record["epoch"] == 1:
            raise Stop

    with pytest.raises(Stop):
        train(tiny_config(), make_splits(tiny_data, 100), CPU, on_epoch)
    assert seen == [0, 1]


def test_the_fused_optimizer_takes_the_same_steps_as_plain_adam():
    torch.manual_seed(0)
    fused_model, plain_model = build_model("conv", 2), build_model("conv", 2)
    plain_model.load_state_dict(fused_model.state_dict())
    initial = [p.detach().clone() for p in plain_model.parameters()]
    fused = make_optimizer(fused_model, lr=1e-3)
    plain = torch.optim.Adam(plain_model.parameters(), lr=1e-3, eps=1e-7, foreach=False)
    x = torch.rand(8, 1, 28, 28)
    for _ in range(3):
        for model, optimizer in ((fused_model, fused), (plain_model, plain)):
            torch.manual_seed(1)  # the same sampling noise for both
            logits, mu, logvar = model(x)
            optimizer.zero_grad()
            vae_loss(logits, x, mu, logvar, "bce", 1.0).total.backward()
            optimizer.step()
    pairs = list(zip(fused_model.parameters(), plain_model.parameters(), strict=True))
    for fused_param, plain_param in pairs:
        torch.testing.assert_close(fused_param, plain_param, rtol=1e-4, atol=1e-6)
    assert all(not torch.equal(p, q) for p, (q, _) in zip(initial, pairs, strict=True))
