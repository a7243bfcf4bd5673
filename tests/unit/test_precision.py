"""The run's precision: the setting, or for 'auto' the faster of fp32 and bf16 here, measured."""

from __future__ import annotations

import pytest
import torch

from vaesweep.training import precision
from vaesweep.training.device import native_bf16
from vaesweep.training.precision import MEASURE_ROUNDS, decide


def _measured(monkeypatch, native: bool, fp32: float, bf16: float) -> list[str]:
    """Pretend the device does (or lacks) native bf16 and trains at these rates."""
    asked = []

    def throughput(arch, name, channels_last, device, seconds, batch_size):
        asked.append(f"{arch}/{name}/{batch_size}/{'channels_last' if channels_last else 'plain'}")
        return {"fp32": fp32, "bf16": bf16}[name]

    monkeypatch.setattr(precision, "native_bf16", lambda device: native)
    monkeypatch.setattr(precision, "training_throughput", throughput)
    return asked


def test_auto_takes_bf16_only_where_measured_clearly_faster(monkeypatch):
    asked = _measured(monkeypatch, native=True, fp32=100.0, bf16=180.0)
    chosen = decide("cpu", "auto", "conv", 64)
    assert chosen.precision == "bf16" and "1.80x" in chosen.why
    assert asked == ["conv/fp32/64/channels_last", "conv/bf16/64/channels_last"] * MEASURE_ROUNDS
    _measured(monkeypatch, native=True, fp32=100.0, bf16=105.0)  # within the margin: exact fp32
    assert decide("cpu", "auto").precision == "fp32"
    _measured(monkeypatch, native=True, fp32=100.0, bf16=60.0)
    assert decide("cpu", "auto").precision == "fp32"


def test_auto_measures_at_the_workers_threads_and_keeps_each_precisions_best(monkeypatch):
    """A worker of a 2-worker run on 2 cores trains on one thread, where bf16 gained 1.36-1.40x
    on the development CPU against 1.10-1.21x on two: the measurement is made on its threads.
    A shared machine only slows a round, so each precision's fastest round counts."""
    threads, rounds = [], iter([100.0, 90.0, 40.0, 140.0, 100.0, 60.0])

    def throughput(arch, name, channels_last, device, seconds, batch_size):
        threads.append(torch.get_num_threads())
        return next(rounds)

    monkeypatch.setattr(precision, "native_bf16", lambda device: True)
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


def test_auto_really_measures_here():
    chosen = decide("cpu", "auto", "mlp", 128)
    assert chosen.precision in ("fp32", "bf16")
    assert ("x as fast" in chosen.why) == native_bf16(chosen.device)
