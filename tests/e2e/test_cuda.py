"""On a CUDA device (skipped elsewhere; CI has none): a trial trains and evaluates there, and the
final evaluation, fp32 by design, gives the CPU's metrics for the same weights."""

from __future__ import annotations

import pytest
import torch

from vaesweep.spec.config import TrainConfig
from vaesweep.training.data import make_splits
from vaesweep.training.metrics import evaluate
from vaesweep.training.precision import decide
from vaesweep.training.train import train

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_a_trial_trains_on_cuda_and_its_evaluation_matches_the_cpus(tiny_data, precision):
    config = TrainConfig(
        arch="conv",
        lr=2e-3,
        epochs=2,
        warmup_epochs=0,
        val_size=100,
        binarize=True,
        likelihood="bce",
        iwae_samples=20,
        precision=precision,
    )
    splits = make_splits(tiny_data, config.val_size, binarize=True)
    cuda = decide("cuda", precision)
    model = train(config, splits, cuda).model
    on_cuda, _ = evaluate(model, splits, config, cuda)
    on_cpu, _ = evaluate(model.cpu(), splits, config, decide("cpu", precision))
    assert set(on_cuda) == set(on_cpu)
    for name, value in on_cpu.items():
        if isinstance(value, list):
            assert on_cuda[name] == pytest.approx(value, rel=1e-3, abs=1e-4), name
        elif name.endswith(("knn_accuracy", "knn_notebook", "active_units")):
            assert abs(on_cuda[name] - value) <= 0.02, name  # a few neighbours may swap
        else:
            assert on_cuda[name] == pytest.approx(value, rel=1e-3), name


def test_workers_train_on_the_visible_gpus_in_turn(tmp_path, tiny_data_dir):
    import json

    from test_cli import run_args, vaesweep

    results = tmp_path / "results"
    outcome = vaesweep(*run_args(results, tiny_data_dir, 2, "--device", "cuda", "--jobs", "2"))
    assert outcome.exit_code == 0, outcome.output
    devices = {
        json.loads((folder / "trial.json").read_text())["device"]
        for folder in (results / "warmup").glob("trial-*")
    }
    assert devices <= {f"cuda:{w % torch.cuda.device_count()}" for w in range(2)}
