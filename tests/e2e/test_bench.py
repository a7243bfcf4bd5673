"""`vaesweep bench` on tiny data."""

import io
import json
from pathlib import Path

import pytest
import torch
from rich.console import Console

from vaesweep.run.bench_table import BenchTable
from vaesweep.spec.config import TrainConfig
from vaesweep.training.device import native_bf16
from vaesweep.training.linear import kernels_for
from vaesweep.training.metrics import evaluation_steps
from vaesweep.training.precision import training_throughput
from vaesweep.training.roofline import flops_per_sample, peak

from helpers import vaesweep

CPU = torch.device("cpu")


def test_conv_architecture_trains_channels_last():
    rate = training_throughput("conv", "fp32", channels_last=True, device=CPU, seconds=0.1)
    assert rate > 0


def test_the_peak_is_the_best_square_product_and_a_conv_counts_its_convolutions():
    # The peak: GFLOP/s that real products and convolutions reached here.
    rate, kernel = peak(CPU, "fp32", 0.3)
    assert rate > 1 and kernel in ("matrix product", "oneDNN inner product", "convolution")
    # The notebook's network: its convolutions, forward and backward, about 1.3 GFLOP a sample.
    assert 1e9 < flops_per_sample("conv", batch_size=8) < 2e9


def bench(data_dir: Path, options: str):
    """`vaesweep bench` of the mlp on tiny data, with no default trial, and `options`."""
    base = ["bench", "--arch", "mlp", "--data-dir", str(data_dir), "--trial-study", ""]
    return vaesweep(*base, *options.split())


def test_json_records_for_scripts(tiny_data_dir):
    outcome = bench(tiny_data_dir, "--json --seconds 0.2 --precision-epochs 1")
    assert outcome.exit_code == 0, outcome.output
    records = json.loads(outcome.stdout)
    for record in records:
        assert {"kind", "arch", "precision", "memory_format", "samples_per_s"} <= set(record)
    training = [r for r in records if r["kind"] == "train"]
    expected = {"fp32", "bf16"} if native_bf16(CPU) else {"fp32"}
    assert {r["precision"] for r in training} == expected
    assert all(r["arch"] == "mlp" and r["samples_per_s"] > 0 for r in training)
    # The roofline: each train record's GFLOP/s is its rate times the network's counted FLOPs,
    # beside the same run's matrix-product peak at that precision.
    per_sample = flops_per_sample("mlp")
    assert 1e6 < per_sample < 1e8  # the mlp: about 5.6 MFLOP a sample, forward and backward
    for r in training:
        assert r["gflops"] == pytest.approx(r["samples_per_s"] * per_sample / 1e9)
        assert r["peak_gflops"] > 0
        assert r["peak_kernel"] in ("matrix product", "oneDNN inner product", "convolution")
    # fp32 on a CPU in both Linear libraries, where this build has oneDNN; bf16 in autocast's.
    kernels = {(r["precision"], r["linear"]) for r in training}
    assert kernels == {("fp32", k) for k in kernels_for(CPU, "fp32")} | (
        {("bf16", "aten")} if native_bf16(CPU) else set()
    )
    kinds = {r["kind"] for r in records}
    assert {"data", "evaluation"} <= kinds
    steps = [r["step"] for r in records if r["kind"] == "evaluation"]
    assert steps == evaluation_steps(TrainConfig(iwae_samples=1))
    checks = [r for r in records if r["kind"] == "precision_check"]
    if native_bf16(CPU):
        assert {r["precision"] for r in checks} == {"fp32", "bf16"}
        assert all(r["relative_gap"] >= 0 and r["val_elbo"] > 0 for r in checks)


def test_bench_off_a_terminal_says_what_it_measures_in_whole_lines(tiny_data_dir):
    outcome = bench(tiny_data_dir, "--seconds 0.1 --precision-epochs 0")
    assert outcome.exit_code == 0, outcome.output
    lines = outcome.output.splitlines()
    assert lines[0] == "measuring training throughput (mlp; 0.1 s each)..."
    assert "measuring the final evaluation's steps (mlp)..." in lines
    # Every field written out, however narrow the pipe (a table was cut at 80 columns).
    assert any(line.endswith("detail: test -log p(x) (20 images)") for line in lines)


def test_bench_table_in_a_terminal_says_what_it_measures():
    screen = io.StringIO()
    table = BenchTable(Console(file=screen, force_terminal=True, width=120))
    table.measuring("the final evaluation's steps (mlp)")
    table.add(
        {
            "kind": "data",
            "arch": None,
            "precision": None,
            "memory_format": None,
            "threads": 1,
            "samples_per_s": 70_000.0,
            "seconds": 1.0,
        }
    )
    shown = screen.getvalue()
    table.finish()
    assert "vaesweep bench" in shown and "70,000" in shown
    assert "measuring the final evaluation's steps (mlp)..." in shown


def test_an_unknown_architecture_is_one_line_before_anything_is_measured(tiny_data_dir):
    outcome = vaesweep("bench", "--arch", "resnet", "--data-dir", str(tiny_data_dir))
    assert outcome.exit_code != 0
    assert outcome.output.strip() == "Error: --arch 'resnet': choose from conv, mlp"


def test_population_records_give_the_total_and_each_member_s_rate(tiny_data_dir):
    outcome = bench(tiny_data_dir, "--json --seconds 0.1 --precision-epochs 0 --population 4")
    assert outcome.exit_code == 0, outcome.output
    populations = [r for r in json.loads(outcome.stdout) if r["kind"] == "population"]
    assert [r["members"] for r in populations] == [1, 2, 4]
    for r in populations:
        assert r["per_member"] == pytest.approx(r["samples_per_s"] / r["members"])
        assert r["alone"] > 0
