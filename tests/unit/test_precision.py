"""The run's precision: the setting, or for 'auto' the faster of fp32 and bf16 here, measured."""

from __future__ import annotations

import pytest
import torch

from vaesweep.training import linear, precision
from vaesweep.training.device import native_bf16
from vaesweep.training.precision import MEASURE_ROUNDS, decide


def _measured(
    monkeypatch,
    native: bool,
    fp32: float,
    bf16: float,
    layers: tuple[float, float] | None = None,
) -> list[str]:
    """Pretend the device does (or lacks) native bf16 and trains at these rates, and where
    `layers` is given has oneDNN's Linear, with (PyTorch's, oneDNN's) layer passes a second."""
    asked = []

    def throughput(arch, name, channels_last, device, seconds, batch_size, kernel):
        layout = "channels_last" if channels_last else "plain"
        asked.append(f"{arch}/{name}/{batch_size}/{layout}/{kernel}")
        return {"fp32": fp32, "bf16": bf16}[name]

    def layer_passes(model, batch_size, kernel, seconds):
        asked.append(f"layers/{batch_size}/{kernel}")
        return dict(zip(linear.KERNELS, layers or (), strict=False))[kernel]

    monkeypatch.setattr(precision, "native_bf16", lambda device: native)
    monkeypatch.setattr(precision, "training_throughput", throughput)
    monkeypatch.setattr(precision, "_layers_per_second", layer_passes)
    monkeypatch.setattr(linear, "onednn_available", lambda: layers is not None)
    precision._fp32_kernel.cache_clear()  # decided once a process: here, for these rates
    return asked


def test_auto_takes_bf16_only_where_measured_clearly_faster(monkeypatch):
    asked = _measured(monkeypatch, native=True, fp32=100.0, bf16=180.0)
    chosen = decide("cpu", "auto", "conv", 64)
    assert chosen.precision == "bf16" and "1.80x" in chosen.why
    runs = ["conv/fp32/64/channels_last/aten", "conv/bf16/64/channels_last/aten"]
    assert asked == runs * MEASURE_ROUNDS
    _measured(monkeypatch, native=True, fp32=100.0, bf16=105.0)  # within the margin: exact fp32
    assert decide("cpu", "auto").precision == "fp32"
    _measured(monkeypatch, native=True, fp32=100.0, bf16=60.0)
    assert decide("cpu", "auto").precision == "fp32"


def test_auto_measures_at_the_workers_threads_and_keeps_each_precisions_best(monkeypatch):
    """A worker of a 2-worker run on 2 cores trains on one thread, where bf16 gained 1.36-1.40x
    on the development CPU against 1.10-1.21x on two: the measurement is made on its threads.
    A shared machine only slows a round, so each precision's fastest round counts."""
    threads, rounds = [], iter([100.0, 90.0, 40.0, 140.0, 100.0, 60.0])

    def throughput(arch, name, channels_last, device, seconds, batch_size, kernel):
        threads.append(torch.get_num_threads())
        return next(rounds)

    monkeypatch.setattr(precision, "native_bf16", lambda device: True)
    monkeypatch.setattr(linear, "onednn_available", lambda: False)
    precision._fp32_kernel.cache_clear()
    monkeypatch.setattr(precision, "training_throughput", throughput)
    before = torch.get_num_threads()
    chosen = decide("cpu", "auto", threads=1)
    assert threads == [1] * 2 * MEASURE_ROUNDS and torch.get_num_threads() == before
    assert chosen.precision == "bf16" and "1.40x as fast" in chosen.why
    assert "fp32 on 1 thread (bf16" in chosen.why


def test_auto_measures_nothing_without_native_bf16(monkeypatch):
    asked = _measured(monkeypatch, native=False, fp32=100.0, bf16=900.0)
    assert decide("cpu", "auto").precision == "fp32" and asked == []


@pytest.mark.parametrize("setting", ["fp32", "bf16"])
def test_a_set_precision_is_kept_unmeasured(monkeypatch, setting):
    asked = _measured(monkeypatch, native=True, fp32=100.0, bf16=900.0)
    chosen = decide("cpu", setting)
    assert chosen.precision == setting and chosen.why == "" and asked == []
    assert chosen.linear == "aten"


def test_fp32_on_a_cpu_trains_its_linear_layers_in_the_faster_library(monkeypatch):
    """MKL keeps its AVX2 code on AMD processors, where oneDNN's inner product ran the mlp's
    layers 1.9x as fast: measured per run on the layers alone, oneDNN only where clearly faster,
    and bf16 (never in oneDNN's Linear) compared with fp32 in the faster library."""
    asked = _measured(monkeypatch, native=False, fp32=100.0, bf16=0.0, layers=(10.0, 19.4))
    chosen = decide("cpu", "fp32", "mlp", 128, threads=1)
    assert (chosen.precision, chosen.linear) == ("fp32", "onednn")
    assert chosen.why.startswith(
        "fp32: Linear layers in oneDNN, whose forward and backward passes run 1.94x as fast in "
        "oneDNN as in PyTorch's default on 1 thread"
    )
    assert asked == ["layers/128/aten", "layers/128/onednn"] * MEASURE_ROUNDS
    _measured(monkeypatch, native=False, fp32=100.0, bf16=0.0, layers=(10.0, 10.4))  # < 1.05x
    assert decide("cpu", "fp32").linear == "aten"
    chosen = decide("cpu", "auto")
    assert chosen.why.startswith("auto: fp32, as this device has no native bf16; Linear layers")
    asked = _measured(monkeypatch, native=True, fp32=160.0, bf16=170.0, layers=(10.0, 19.0))
    chosen = decide("cpu", "auto")
    assert (chosen.precision, chosen.linear) == ("fp32", "onednn") and "1.06x" in chosen.why
    assert "mlp/fp32/128/plain/onednn" in asked and "mlp/fp32/128/plain/aten" not in asked
    _measured(monkeypatch, native=True, fp32=100.0, bf16=180.0, layers=(10.0, 19.0))
    assert (decide("cpu", "auto").precision, decide("cpu", "auto").linear) == ("bf16", "aten")


def test_a_gpu_never_measures_linear_kernels():
    assert linear.kernels_for(torch.device("cuda"), "fp32") == ["aten"]
    assert linear.kernels_for(torch.device("cpu"), "bf16") == ["aten"]


def test_auto_really_measures_here():
    chosen = decide("cpu", "auto", "mlp", 128)
    assert chosen.precision in ("fp32", "bf16")
    assert ("x as fast" in chosen.why) == native_bf16(chosen.device)
