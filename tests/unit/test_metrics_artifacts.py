import dataclasses
import json
import math
import subprocess
import sys

import pytest
import torch

from vaesweep.errors import VaesweepError
from vaesweep.spec.config import TrainConfig
from vaesweep.spec.metric_names import TABLE_COLUMNS
from vaesweep.store.artifacts import load_latents, load_model, save_trial
from vaesweep.store.layout import trial_folder
from vaesweep.training.data import fixed_subset, make_splits
from vaesweep.training.device import Compute
from vaesweep.training.metrics import (
    SSIM_SEED,
    evaluate,
    evaluation_steps,
    knn_accuracy,
    reconstruct,
    ssim_per_image,
)
from vaesweep.training.model import build_model
from vaesweep.training.train import train

CPU = Compute(torch.device("cpu"), "fp32")


def test_ssim_is_one_for_identical_images_and_lower_for_distorted_ones():
    # Its agreement with tf.image.ssim is tested against TensorFlow's values (test_keras_parity).
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(3, 1, 28, 28, generator=generator)
    y = (x + 0.2 * torch.rand(3, 1, 28, 28, generator=generator)).clamp(0, 1)
    assert ssim_per_image(x, x) == pytest.approx([1.0, 1.0, 1.0])
    assert all(0 < ssim_per_image(x, y)) and all(ssim_per_image(x, y) < 0.99)


def test_knn_accuracy_on_separated_and_shuffled_clusters():
    centres = torch.arange(10, dtype=torch.float32).repeat_interleave(20)
    z = torch.stack([centres * 10, torch.zeros_like(centres)], dim=1)
    y = torch.arange(10).repeat_interleave(20)
    assert knn_accuracy(z, y, z + 0.1, y) == 1.0
    assert (
        knn_accuracy(z, y, z, y[torch.randperm(len(y), generator=torch.Generator().manual_seed(0))])
        < 0.3
    )


def test_evaluate_gives_every_metric_for_validation_and_test(tiny_data):
    config = TrainConfig(
        arch="mlp", lr=2e-3, epochs=3, warmup_epochs=0, val_size=100, precision="fp32"
    )
    splits = make_splits(tiny_data, 100)
    result = train(config, splits, CPU)
    metrics, test_means = evaluate(result.model, splits, config, CPU)
    assert test_means.shape == (len(splits.test_x), 2)
    # Every metric computed has its name in the one catalogue, and every name there is computed.
    assert set(metrics) == {*TABLE_COLUMNS, "val_kl_per_dim", "test_kl_per_dim"}
    for part in ("val", "test"):
        assert metrics[f"{part}_loss"] == pytest.approx(
            metrics[f"{part}_recon"] + metrics[f"{part}_kl"], rel=1e-5
        )
        assert 0 < metrics[f"{part}_ssim"] <= 1
        assert 0 <= metrics[f"{part}_knn_accuracy"] <= 1
        assert metrics[f"{part}_kl"] > 0
        assert metrics[f"{part}_nll"] > 0
        assert len(metrics[f"{part}_kl_per_dim"]) == config.latent_dim
        assert sum(metrics[f"{part}_kl_per_dim"]) == pytest.approx(metrics[f"{part}_kl"], rel=0.05)
        assert 0 <= metrics[f"{part}_active_units"] <= config.latent_dim
    # The synthetic classes are easy: the latent means must separate them well beyond chance.
    assert metrics["test_knn_accuracy"] > 0.5
    assert metrics["test_knn_notebook"] > 0.5
    # Per-pixel MSE of the z = mu reconstructions, over every image of the split.
    decoded = reconstruct(result.model, splits.test_x, CPU.device)
    assert metrics["test_mse"] == pytest.approx(float((splits.test_x - decoded).square().mean()))


def test_eval_images_keep_the_same_random_images_of_both_splits(tiny_data):
    whole = make_splits(tiny_data, 100)
    subset = make_splits(tiny_data, 100, eval_images=30)
    assert subset.whole == {"val": 100, "test": len(tiny_data.test_x)}
    again = make_splits(tiny_data, 100, eval_images=30)
    for part in ("val", "test"):
        x, y = getattr(subset, f"{part}_x"), getattr(subset, f"{part}_y")
        all_x, all_y = getattr(whole, f"{part}_x"), getattr(whole, f"{part}_y")
        assert len(x) == 30 and torch.equal(x, getattr(again, f"{part}_x"))
        # Each kept image is one of the split's, with its own label, and not just the first 30.
        found = [int((all_x == image).flatten(1).all(1).nonzero()[0]) for image in x]
        assert torch.equal(all_y[found], y) and found != list(range(30))
    assert torch.equal(subset.train_x, whole.train_x)  # training is untouched


def test_evaluation_says_each_step_and_skips_the_likelihood_at_zero_samples(tiny_data):
    config = TrainConfig(arch="mlp", epochs=1, warmup_epochs=0, val_size=100, ssim_images=40)
    splits = make_splits(tiny_data, 100)
    model = train(config, splits, CPU).model
    heard = []
    metrics = evaluate(model, splits, config, CPU, lambda *step: heard.append(step)).metrics
    steps = evaluation_steps(config)
    assert heard == [(step, done, len(steps)) for done, step in enumerate(steps)]
    assert "test -log p(x)" in steps and metrics["test_nll"] > 0
    # SSIM reuses the validation pass's z = mu reconstructions: the same as decoding again.
    chosen = fixed_subset(len(splits.test_x), 40, SSIM_SEED)
    again = ssim_per_image(
        splits.test_x[chosen], reconstruct(model, splits.test_x[chosen], CPU.device)
    )
    assert metrics["test_ssim"] == pytest.approx(again.mean(), abs=1e-6)
    quick = dataclasses.replace(config, iwae_samples=0)
    skipped = evaluate(model, splits, quick, CPU).metrics
    assert "test -log p(x)" not in evaluation_steps(quick)
    assert all(math.isnan(skipped[f"{part}_nll"]) for part in ("val", "test"))
    assert skipped["test_ssim"] == metrics["test_ssim"]


def test_evaluation_is_fp32_whatever_the_training_precision(tiny_data):
    config = TrainConfig(
        arch="mlp", lr=2e-3, epochs=2, warmup_epochs=0, val_size=100, precision="bf16"
    )
    splits = make_splits(tiny_data, 100)
    bf16 = Compute(torch.device("cpu"), "bf16")
    model = train(config, splits, bf16).model
    after_bf16, _ = evaluate(model, splits, config, bf16)
    after_fp32, _ = evaluate(model, splits, config, CPU)
    assert after_bf16 == after_fp32


def test_binarized_splits_are_fixed_binary_images(tiny_data):
    first = make_splits(tiny_data, 100, binarize=True)
    again = make_splits(tiny_data, 100, binarize=True)
    assert set(first.test_x.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(first.test_x, again.test_x) and torch.equal(first.val_x, again.val_x)
    assert not torch.equal(first.train_x.unique(), torch.tensor([0.0, 1.0]))  # binarized per batch
    # Each pixel is 1 with its intensity's probability.
    grey = make_splits(tiny_data, 100).test_x
    assert float(first.test_x.mean()) == pytest.approx(float(grey.mean()), abs=0.01)


def test_trial_folder_rebuilds_the_model_alone(tmp_path):
    config = TrainConfig(arch="mlp", latent_dim=3)
    model = build_model("mlp", 3).eval()
    folder = trial_folder(tmp_path, "s", 7)
    means, labels = torch.randn(5, 3), torch.tensor([0, 1, 2, 3, 9])
    save_trial(
        folder,
        config,
        [{"epoch": 0, "val_elbo": 1.0}],
        {"number": 7},
        model,
        latents=(means, labels),
    )
    assert folder.name == "trial-0007"
    assert sorted(p.name for p in folder.iterdir()) == [
        "config.json",
        "history.csv",
        "latents.npz",
        "model.pt",
        "trial.json",
    ]
    assert not list(tmp_path.glob("s/.*"))  # no staging folder left behind
    rebuilt, loaded_config = load_model(folder)
    assert loaded_config == config
    x = torch.rand(4, 1, 28, 28)
    assert torch.equal(rebuilt.reconstruct(x), model.reconstruct(x))
    saved_means, saved_labels = load_latents(folder)
    assert (saved_means == means.numpy()).all() and saved_labels.tolist() == [0, 1, 2, 3, 9]


def test_a_trial_folder_written_meanwhile_is_kept_and_the_later_writer_refused(tmp_path):
    """Two storages racing into one results folder: the first folder stays as it was written."""
    folder = trial_folder(tmp_path, "s", 0)
    model = build_model("mlp", 2)
    save_trial(folder, TrainConfig(arch="mlp"), [], {"n": 1}, model)
    with pytest.raises(VaesweepError, match="trial-0000 was written by another storage"):
        save_trial(folder, TrainConfig(arch="mlp"), [], {"n": 2}, model)
    assert json.loads((folder / "trial.json").read_text()) == {"n": 1}
    assert sorted(p.name for p in folder.parent.iterdir()) == ["trial-0000"]


def test_unreadable_weights_give_a_clear_error(tmp_path):
    folder = trial_folder(tmp_path, "s", 0)
    save_trial(folder, TrainConfig(arch="mlp"), [], {}, build_model("mlp", 2))
    (folder / "model.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(VaesweepError, match="model.pt: cannot load weights"):
        load_model(folder)
    (folder / "config.json").write_text('["not", "settings"]')
    with pytest.raises(VaesweepError, match="config.json: cannot read"):
        load_model(folder)


def test_the_config_is_stored_once_and_older_folders_still_load(tmp_path):
    folder = trial_folder(tmp_path, "s", 0)
    config, model = TrainConfig(arch="mlp", latent_dim=3), build_model("mlp", 3).eval()
    save_trial(folder, config, [], {}, model)
    assert set(torch.load(folder / "model.pt", weights_only=True)) == set(model.state_dict())
    rebuilt, loaded = load_model(folder)
    x = torch.rand(2, 1, 28, 28)
    assert loaded == config and torch.equal(rebuilt.reconstruct(x), model.reconstruct(x))


def test_the_page_and_its_anchors_read_the_defaults_without_torch():
    # An up-to-date report re-runs in about a second because nothing it imports loads torch.
    code = (
        "import sys; from vaesweep.report import render, anchors; import vaesweep.answer; "
        "assert 'torch' not in sys.modules, 'torch imported'; "
        "assert anchors.DEFAULTS['latent_dim'] == 2 and anchors.DEFAULTS['binarize'] is False"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
