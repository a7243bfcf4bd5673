"""Helpers the test modules share: running the command, the tiny data's settings, reading
what a run stored, and processes started and stopped as a user would."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import optuna
import torch
from click.testing import CliRunner

from vaesweep.cli import main
from vaesweep.spec.config import TrainConfig
from vaesweep.spec.studies import STUDIES_DIR
from vaesweep.store.storage import default_storage_url, open_storage
from vaesweep.training.device import Compute

# `run` options that make a trial take about a second on tiny data. One worker, so sampler
# draws are reproducible; a later --jobs (the parallel tests) overrides it.
TINY_SETTINGS = (
    "--set",
    "epochs=2",
    "--set",
    "val_size=100",
    "--set",
    'arch="mlp"',
    "--set",
    'precision="fp32"',
    "--jobs",
    "1",
)  # fp32: exact, and only its Linear library timed before a run (once a process)
GRACE = "3"  # seconds before a silent trial counts as stale
UNSTABLE_STUDY = (
    'description = "some learning rates diverge"\nobjectives = ["val_loss"]\n'
    '[search]\nlr = {{ type = "categorical", choices = {choices} }}\n'
    "[fixed]\nmin_lr = 0.0\n"
)


def vaesweep(*args: str):
    # A wide virtual terminal, so rich does not wrap table cells.
    return CliRunner(env={"COLUMNS": "200"}).invoke(main, list(args), catch_exceptions=False)


def run_args(
    results: Path, data_dir: Path, trials: int, *extra: str, study: str = "warmup"
) -> list[str]:
    places = ["--study", study, "--trials", str(trials), "--results", str(results)]
    return ["run", *places, "--data-dir", str(data_dir), *TINY_SETTINGS, *extra]


def stored_trials(results: Path, name: str = "warmup") -> list[optuna.trial.FrozenTrial]:
    study = optuna.load_study(study_name=name, storage=default_storage_url(results))
    return study.get_trials(deepcopy=False)


def snapshot(results: Path) -> dict:
    """Every stored trial and every file's hash: what a failing command must leave untouched."""
    trials = [(t.number, t.state.name, t.values, t.params) for t in stored_trials(results)]
    files = {
        str(p.relative_to(results)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(results.rglob("*"))
        if p.is_file() and p.name != "vaesweep.db"
    }
    return {"trials": trials, "files": files}


def run_each(tmp_path: Path, data_dir: Path, trials: int, option: str, values) -> dict[str, Path]:
    """The warm-up study run once per value of `option`, each in a results folder of its own."""
    folders = {}
    for value in values:
        folders[value] = tmp_path / f"{option.strip('-')}-{value}"
        outcome = vaesweep(*run_args(folders[value], data_dir, trials, option, value))
        assert outcome.exit_code == 0, outcome.output
    return folders


def run_unstable(tmp_path: Path, data_dir: Path, trials: int, choices: str):
    study_file = tmp_path / "unstable.toml"
    study_file.write_text(UNSTABLE_STUDY.format(choices=choices))
    results = tmp_path / "results"
    outcome = vaesweep(*run_args(results, data_dir, trials, study=str(study_file)))
    return outcome, stored_trials(results, "unstable"), results


PRUNABLE_STUDY = (
    'description = "a learning rate too small to learn"\nobjectives = ["val_loss"]\n'
    "explore = 4\n"
    '[search]\nlr = { type = "categorical", choices = [2e-3, 1e-7] }\n'
    '[fixed]\nmin_lr = 0.0\nwarmup_epochs = 0\n[sampler]\nname = "random"\n'
    '[pruner]\nname = "median"\nn_startup_trials = 1\n'
)


def small_warmup(folder: Path) -> str:
    """The shipped warm-up study cut to 2 values x 2 seed blocks (4 trials), named warmup, and
    scored on the validation loss (on tiny data the 5-NN accuracy moves in steps of 1%, so
    two blocks can agree to the digit and leave no noise to test against)."""
    small = (STUDIES_DIR / "warmup.toml").read_text()
    for shipped, cut in (
        ("high = 8, step = 4", "high = 1"),
        ("replicates = 10", "replicates = 2"),
        ('objectives = ["val_knn_accuracy"]', 'objectives = ["val_loss"]'),
    ):
        assert shipped in small, f"the shipped warm-up study no longer has {shipped!r}"
        small = small.replace(shipped, cut)
    path = folder / "warmup.toml"
    path.write_text(small)
    return str(path)


# Names that drive a terminal (clear it, set its title) or reorder a line, made with plain Optuna.
TERMINAL_HOSTILE = ["\x1b[2Jclear", "\x1b]0;TITLE\x07title", "rtl\u202eevil", "bell\x07\x08"]


def assert_shown_visibly(text: str) -> None:
    """No control or bidirectional character of TERMINAL_HOSTILE reached `text` raw, and each
    name is there in its visible form."""
    for raw in ("\x1b", "\x07", "\x08", "\u202e"):
        assert raw not in text
    for name in TERMINAL_HOSTILE:
        assert name.encode("unicode_escape").decode() in text


CPU = Compute(torch.device("cpu"), "fp32")


def tiny_config(**changes) -> TrainConfig:
    settings = dict(arch="mlp", lr=2e-3, epochs=5, warmup_epochs=0, val_size=100, batch_size=64)
    return TrainConfig(**{**settings, **changes})


# Trials long enough to interrupt, without early stopping: small batches make each epoch long,
# so 20 epochs (and their storage writes) last about 1.5 s, as long as 60 at the default batch;
# a test polls every 0.2 s for a trial past its second epoch.
LONG = ("--set", "epochs=20", "--set", "batch_size=32")  # after run_args' TINY_SETTINGS
LONG += ("--set", "early_stop_patience=1000")


def start(
    results: Path, data_dir: Path, trials: int, *extra: str, grace: str = GRACE
) -> subprocess.Popen:
    command = [sys.executable, "-m", "vaesweep", *run_args(results, data_dir, trials, *LONG)]
    command += extra
    env = {**os.environ, "VAESWEEP_GRACE_SECONDS": grace, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,  # its own process group, like a terminal job
    )


def trials_of(results: Path) -> list[optuna.trial.FrozenTrial]:
    storage = open_storage(default_storage_url(results))  # safe while the run creates it
    try:
        study = optuna.load_study(study_name="warmup", storage=storage)
    except KeyError:
        return []
    return study.get_trials(deepcopy=False)


def finish(process: subprocess.Popen, timeout: float = 120) -> tuple[int, str]:
    output, _ = process.communicate(timeout=timeout)
    return process.returncode, output
