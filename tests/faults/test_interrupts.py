"""The first Ctrl-C or SIGTERM inside a trial loop takes effect at a safe point only, never in
the middle of a storage call (an interrupted SQLite commit could leave its lock held)."""

from __future__ import annotations

import os
import signal

import optuna
import pytest

from vaesweep import interrupts
from vaesweep.store.storage import open_storage
from vaesweep.training.data import make_splits
from vaesweep.training.precision import decide
from vaesweep.training.train import train

from helpers import tiny_config


def test_outside_a_trial_loop_the_first_signal_raises_at_once():
    with interrupts.graceful_interrupts(), pytest.raises(KeyboardInterrupt, match="SIGTERM"):
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(1000):  # the handler runs at the next bytecode boundary
            pass
        pytest.fail("no KeyboardInterrupt")


def test_inside_a_trial_loop_storage_calls_finish_and_the_stop_comes_at_the_safe_point(tmp_path):
    storage = open_storage(f"sqlite:///{tmp_path / 'study.db'}")
    study = optuna.create_study(storage=storage, study_name="s")
    with interrupts.graceful_interrupts():
        with pytest.raises(KeyboardInterrupt, match="SIGINT"):
            with interrupts.safe_points_only():
                os.kill(os.getpid(), signal.SIGINT)
                study.set_user_attr("written", "after the signal")
                interrupts.stop_if_requested()
                pytest.fail("the safe point did not stop")
    reloaded = optuna.load_study(study_name="s", storage=open_storage(storage.url))
    assert reloaded.user_attrs["written"] == "after the signal"


def test_training_stops_before_its_next_step(tiny_data):
    epochs_seen = []

    def on_epoch(record, model):
        epochs_seen.append(record["epoch"])
        os.kill(os.getpid(), signal.SIGTERM)  # arrives while the epoch's callback runs

    with pytest.raises(KeyboardInterrupt, match="SIGTERM"):
        with interrupts.graceful_interrupts(), interrupts.safe_points_only():
            train(
                tiny_config(epochs=5), make_splits(tiny_data, 100), decide("cpu", "fp32"), on_epoch
            )
    assert epochs_seen == [0]


def test_a_request_does_not_outlive_its_command():
    with interrupts.graceful_interrupts(), pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGTERM)
        interrupts.stop_if_requested()
    interrupts.stop_if_requested()  # a later command in the same process starts afresh
