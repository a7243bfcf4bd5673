"""One folder per trial: config, weights, history and metrics, enough to rebuild the model alone.

`config.json` is the one stored copy of a trial's settings; `model.pt` holds the weights alone.

A folder is written under a temporary name and renamed into place, so a folder with the final
name is always complete.
"""

from __future__ import annotations

import errno
import io
import json
import os
import pickle
import shutil
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from vaesweep.errors import VaesweepError, first_line
from vaesweep.spec.config import TrainConfig
from vaesweep.store.layout import (
    CONFIG_FILE,
    HISTORY_FILE,
    LATENTS_FILE,
    TRIAL_FILE,
    WEIGHTS_FILE,
    staging_folder,
)
from vaesweep.training.model import VAE, build_model


def save_trial(
    folder: Path,
    config: TrainConfig,
    history: list[dict[str, float]],
    info: dict[str, Any],
    model: VAE,
    latents: tuple[Tensor, Tensor] | None = None,
) -> Path:
    """Write a trial's folder atomically; `latents` = (test latent means, test labels). Its
    metrics are stored once, in the trial's record (`METRICS_ATTR`), which the table, the figures
    and Optuna's own tools all read."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = staging_folder(folder)
    shutil.rmtree(staging, ignore_errors=True)
    try:
        staging.mkdir()
        _write_json(staging / CONFIG_FILE, config.to_dict())
        _write_json(staging / TRIAL_FILE, info)
        pd.DataFrame(history).to_csv(staging / HISTORY_FILE, index=False)
        state = {key: value.detach().cpu() for key, value in model.state_dict().items()}
        # Serialised in memory, then written as a file: a full disk is then "No space left on
        # device", not the archive writer's "unexpected pos".
        weights = io.BytesIO()
        torch.save(state, weights)
        (staging / WEIGHTS_FILE).write_bytes(weights.getbuffer())
        if latents is not None:
            means, labels = latents
            np.savez(
                staging / LATENTS_FILE, means=means.numpy(), labels=labels.numpy().astype(np.uint8)
            )
    except BaseException as err:  # a full disk, say: no half-written staging folder stays
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(err, OSError) and not err.filename:
            raise OSError(err.errno, err.strerror, str(staging)) from err
        if isinstance(err, Exception) and not isinstance(err, OSError):
            # torch reports a failed write as a RuntimeError: still a write that failed.
            raise OSError(errno.EIO, first_line(err), str(staging)) from err
        raise
    try:
        os.rename(staging, folder)  # atomic, and never over a folder with anything in it
    except OSError as err:
        shutil.rmtree(staging, ignore_errors=True)
        if err.errno not in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR):
            raise
        raise VaesweepError(
            f"{folder} was written by another storage while this trial trained (two storages "
            "share this results folder); it is kept, this trial is recorded as failed; give "
            "each storage its own --results"
        ) from None
    return folder


def load_config(folder: str | Path) -> TrainConfig:
    """A trial's settings, from its `config.json`."""
    path = Path(folder) / CONFIG_FILE
    with _reading(path):
        values = json.loads(path.read_text())
        if not isinstance(values, dict):
            raise ValueError("not a JSON object")
    return TrainConfig.from_mapping(values, str(path))


def load_model(folder: str | Path) -> tuple[VAE, TrainConfig]:
    """Rebuild a trained model (in eval mode, on the CPU) from its folder: `config.json` and
    `model.pt`. Its `decode(z)` gives logits; `torch.sigmoid(model.decode(z))` or
    `model.reconstruct(x)` give images in [0, 1]."""
    config = load_config(folder)
    path = Path(folder) / WEIGHTS_FILE
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model = build_model(config.arch, config.latent_dim)
        model.load_state_dict(state)
    except Exception as err:
        raise VaesweepError(f"{path}: cannot load weights ({describe(err)})") from None
    return model.eval(), config


@contextmanager
def _reading(path: Path) -> Iterator[None]:
    """Any failure to read a trial file (missing, empty, other bytes, other columns) becomes one
    line naming the file, so a reader can mark that trial and go on."""
    try:
        yield
    except Exception as err:
        raise VaesweepError(f"{path}: cannot read ({describe(err)})") from None


def describe(err: Exception) -> str:
    """What went wrong with a file, in words rather than an exception's name."""
    if isinstance(err, FileNotFoundError):
        return "missing"
    if isinstance(err, OSError):
        return err.strerror or first_line(err)
    if isinstance(err, UnicodeDecodeError):
        return "not text"
    if isinstance(err, json.JSONDecodeError):
        return f"not JSON: {err.msg}"
    if isinstance(err, pd.errors.EmptyDataError):
        return "empty"
    if isinstance(err, zipfile.BadZipFile | pickle.UnpicklingError | EOFError):
        return f"not what vaesweep writes: {first_line(err)}"
    return first_line(err)


HISTORY_COLUMNS = ("epoch", "beta", "lr", "train_loss", "val_loss", "val_elbo")


def load_history(folder: Path) -> pd.DataFrame:
    with _reading(folder / HISTORY_FILE):
        history = pd.read_csv(folder / HISTORY_FILE)
        missing = [c for c in HISTORY_COLUMNS if c not in history.columns]
        if missing or history.empty:
            raise ValueError(f"no rows, or no column {', '.join(missing)}")
        return history


def load_latents(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """The test set's latent means and labels, as saved at evaluation."""
    with _reading(folder / LATENTS_FILE), np.load(folder / LATENTS_FILE) as saved:
        return saved["means"], saved["labels"]


def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=2, sort_keys=True) + "\n")
