"""`vaesweep bench`: what this machine does per second, for each architecture and precision.

Every figure is measured on the machine it runs on: training throughput (architecture x precision
x memory format), data loading, each step of the final evaluation per image, the overhead of a
default trial beyond its training steps, and whether bf16 reaches fp32's validation ELBO.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import optuna
import torch

from vaesweep.run.objective import Objective
from vaesweep.run.progress import Progress
from vaesweep.spec.config import TrainConfig
from vaesweep.spec.studies import load_study
from vaesweep.training import population
from vaesweep.training.data import FashionMNIST, load_fashion_mnist, make_splits
from vaesweep.training.device import Compute, native_bf16
from vaesweep.training.linear import kernels_for
from vaesweep.training.metrics import evaluate
from vaesweep.training.model import VAE, build_model
from vaesweep.training.precision import decide, training_throughput
from vaesweep.training.roofline import flops_per_sample, peak
from vaesweep.training.train import train

PRECISION_TOLERANCE = 0.01  # bf16 must reach fp32's validation ELBO within 1%


def _record(kind: str, **fields: Any) -> dict[str, Any]:
    base = {
        "kind": kind,
        "arch": None,
        "precision": None,
        "memory_format": None,
        "threads": torch.get_num_threads(),
        "samples_per_s": None,
        "seconds": None,
    }
    return base | fields


def bench_training(device: torch.device, archs: list[str], seconds: float) -> list[dict[str, Any]]:
    """Samples/s of full training steps per architecture, precision, memory format and fp32
    Linear kernel, each with its GFLOP/s and this machine's peak at that precision (`roofline`)."""
    precisions = ["fp32"] + (["bf16"] if native_bf16(device) else [])
    peaks = {precision: peak(device, precision, seconds) for precision in precisions}
    records = []
    for arch in archs:
        convolutional = build_model(arch, 2).channels_last
        flops = flops_per_sample(arch)
        for precision in precisions:
            for channels_last in (False, True) if convolutional else (False,):
                for kernel in kernels_for(device, precision):
                    rate = training_throughput(
                        arch, precision, channels_last, device, seconds, kernel=kernel
                    )
                    records.append(
                        _record(
                            "train",
                            arch=arch,
                            precision=precision,
                            memory_format="channels_last" if channels_last else "contiguous",
                            linear=kernel,
                            samples_per_s=rate,
                            gflops=rate * flops / 1e9,
                            peak_gflops=peaks[precision][0],
                            peak_kernel=peaks[precision][1],
                        )
                    )
    return records


def bench_population(
    device: torch.device, archs: list[str], seconds: float, largest: int
) -> list[dict[str, Any]]:
    """Populations of 1, 2, 4, ... up to `largest` members trained as one network (fp32): samples/s
    in total and per member, against one network trained alone."""
    compute = Compute(device, "fp32")
    records = []
    for arch in archs:
        alone = training_throughput(arch, "fp32", False, device, seconds)
        size = 1
        while size <= largest:
            total = population.training_throughput(arch, size, compute, seconds)
            records.append(
                _record(
                    "population",
                    arch=arch,
                    precision="fp32",
                    memory_format="contiguous",
                    samples_per_s=total,
                    members=size,
                    per_member=total / size,
                    alone=alone,
                )
            )
            size *= 2
    return records


def bench_data(data_dir: Path | None) -> tuple[FashionMNIST, dict[str, Any]]:
    started = time.perf_counter()
    data = load_fashion_mnist(data_dir)
    seconds = time.perf_counter() - started
    samples = len(data.train_x) + len(data.test_x)
    return data, _record("data", seconds=seconds, samples_per_s=samples / seconds)


def _splits(data: FashionMNIST):
    """The default split, or half the training images where there are fewer (test data)."""
    return make_splits(data, val_size=min(10_000, len(data.train_x) // 2))


# The final evaluation's steps are timed on small sets (the `conv` network decodes about 100
# images a second on one thread here), and each is given per image: a step's cost at a study's
# settings is its images times this (the likelihood's at EVAL_SIZES' importance samples).
EVAL_SIZES = {"train_subset": 1000, "eval_images": 200, "nll_images": 20, "iwae_samples": 50}


def bench_evaluation(
    data: FashionMNIST, device: torch.device, archs: list[str]
) -> list[dict[str, Any]]:
    """Each step of `metrics.evaluate` (fp32), per image, for each architecture."""
    nll = EVAL_SIZES["nll_images"]
    val_size = min(10_000, len(data.train_x) // 2)  # half of the tests' tiny data
    records = []
    for arch in archs:
        config = TrainConfig(
            arch=arch,
            val_size=val_size,
            train_subset=min(EVAL_SIZES["train_subset"], len(data.train_x) - val_size),
            eval_images=EVAL_SIZES["eval_images"],
            ssim_images=0,
            nll_val_images=nll,
            nll_test_images=nll,
            iwae_samples=EVAL_SIZES["iwae_samples"],
        )
        splits = make_splits(
            data, config.val_size, config.train_subset, eval_images=config.eval_images
        )
        for step, seconds in _timed_steps(build_model(arch, 2, seed=0), splits, config, device):
            images = len(splits.train_x) if step.startswith("k-NN") else len(splits.val_x)
            images = nll if step.endswith("p(x)") else images
            record = _record("evaluation", arch=arch, seconds=seconds)
            records.append(
                record | {"step": step, "images": images, "samples_per_s": images / seconds}
            )
    return records


def _timed_steps(
    model: VAE, splits: Any, config: TrainConfig, device: torch.device
) -> list[tuple[str, float]]:
    """(step, seconds) of each step of one final evaluation."""
    starts: list[tuple[str, float]] = []
    evaluate(
        model.to(device),
        splits,
        config,
        Compute(device, "fp32"),
        lambda step, done, total: starts.append((step, time.perf_counter())),
    )
    ends = [at for _, at in starts[1:]] + [time.perf_counter()]
    return [(step, end - began) for (step, began), end in zip(starts, ends, strict=True)]


def bench_trial(data: FashionMNIST, device: torch.device, study: str = "warmup") -> dict[str, Any]:
    """One trial of a shipped study at its default budget (parameters at the middle of their
    ranges): how much of its wall time is not training steps."""
    spec = load_study(study)
    optuna_study = optuna.create_study(directions=spec.directions)
    optuna_study.enqueue_trial({param.name: _middle(param) for param in spec.search})
    collector = _EpochCollector()
    with tempfile.TemporaryDirectory() as results:
        compute = decide(device.type, spec.base.precision, spec.base.arch, spec.base.batch_size)
        objective = Objective(spec, "bench", data, Path(results), compute, collector)
        trial = optuna_study.ask()
        started = time.perf_counter()
        objective(trial)
        total = time.perf_counter() - started
    steps = sum(r["train_seconds"] for r in collector.records)
    epochs = sum(r["seconds"] for r in collector.records)
    return _record(
        "trial",
        arch=spec.base.arch,
        seconds=total,
        study=study,
        params=trial.params,
        epochs=len(collector.records),
        training_steps_s=steps,
        validation_s=epochs - steps,
        rest_s=total - epochs,
        overhead_fraction=1 - steps / total,
    )


def _middle(param) -> Any:
    if param.kind == "categorical":
        return param.choices[0]
    if param.log:
        middle = (param.low * param.high) ** 0.5
    else:
        middle = (param.low + param.high) / 2
    return int(round(middle)) if param.kind == "int" else middle


class _EpochCollector(Progress):
    """Keeps the epoch records of the trial being measured; prints nothing."""

    def __init__(self) -> None:
        self.records: list[dict[str, float]] = []

    def epoch_finished(self, number: int, record: Mapping[str, float]) -> None:
        self.records.append(dict(record))


def check_precision(data: FashionMNIST, device: torch.device, epochs: int) -> list[dict[str, Any]]:
    """Train the same seeded mlp in fp32 and in bf16 on a fixed budget; compare validation ELBO."""
    splits = _splits(data)
    elbo = {}
    for precision in ("fp32", "bf16"):
        config = TrainConfig(
            arch="mlp",
            likelihood="bce",
            lr=2e-3,
            epochs=epochs,
            warmup_epochs=0,
            precision=precision,
            early_stop_patience=epochs,
        )
        started = time.perf_counter()
        result = train(config, splits, Compute(device, precision))
        elbo[precision] = (
            min(r["val_elbo"] for r in result.history),
            time.perf_counter() - started,
        )
    gap = abs(elbo["bf16"][0] - elbo["fp32"][0]) / elbo["fp32"][0]
    return [
        _record(
            "precision_check",
            arch="mlp",
            precision=p,
            seconds=seconds,
            val_elbo=value,
            relative_gap=gap,
            within_tolerance=gap <= PRECISION_TOLERANCE,
            epochs=epochs,
        )
        for p, (value, seconds) in elbo.items()
    ]


def run_bench(
    device: torch.device,
    archs: list[str],
    seconds: float,
    data_dir: Path | None,
    trial_study: str | None,
    precision_epochs: int,
    on_record: Callable[[dict[str, Any]], None] = lambda record: None,
    population_size: int = 0,
    on_start: Callable[[str], None] = lambda what: None,
) -> list[dict[str, Any]]:
    """Every measurement in turn; `on_start` hears what each part measures as it starts, and
    `on_record` sees each result as it arrives (for live output)."""
    records: list[dict[str, Any]] = []

    def add(new: list[dict[str, Any]]) -> None:
        for record in new:
            record["device"] = str(device)
            records.append(record)
            on_record(record)

    on_start(f"training throughput ({', '.join(archs)}; {seconds:g} s each)")
    add(bench_training(device, archs, seconds))
    if population_size:
        on_start(f"populations of up to {population_size}")
        add(bench_population(device, archs, seconds, population_size))
    on_start("loading Fashion-MNIST")
    data, loading = bench_data(data_dir)
    add([loading])
    on_start(f"the final evaluation's steps ({', '.join(archs)})")
    add(bench_evaluation(data, device, archs))
    if trial_study:
        on_start(f"one default {trial_study} trial")
        add([bench_trial(data, device, trial_study)])
    if precision_epochs and native_bf16(device):
        on_start(f"bf16 against fp32 over {precision_epochs} epochs")
        add(check_precision(data, device, precision_epochs))
    return records
