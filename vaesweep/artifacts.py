"""One folder per trial: config, weights, history and metrics, enough to rebuild the model alone.

A folder is written under a temporary name and renamed into place, so a folder with the final
name is always complete.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from vaesweep.config import TrainConfig
from vaesweep.errors import VaesweepError
from vaesweep.layout import (
    CONFIG_FILE,
    HISTORY_FILE,
    LATENTS_FILE,
    METRICS_FILE,
    TRIAL_FILE,
    WEIGHTS_FILE,
)
from vaesweep.model import VAE, build_model


def save_trial(
    folder: Path,
    config: TrainConfig,
    history: list[dict[str, float]],
    info: dict[str, Any],
    model: VAE,
    metrics: dict[str, float],
    latents: tuple[Tensor, Tensor] | None = None,
) -> Path:
    """Write a trial's folder atomically; `latents` = (test latent means, test labels)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = folder.with_name(f".{folder.name}.partial-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    _write_json(staging / CONFIG_FILE, config.to_dict())
    _write_json(staging / TRIAL_FILE, info)
    pd.DataFrame(history).to_csv(staging / HISTORY_FILE, index=False)
    _write_json(staging / METRICS_FILE, metrics)
    state = {key: value.detach().cpu() for key, value in model.state_dict().items()}
    torch.save({"config": config.to_dict(), "state_dict": state}, staging / WEIGHTS_FILE)
    if latents is not None:
        means, labels = latents
        np.savez(
            staging / LATENTS_FILE, means=means.numpy(), labels=labels.numpy().astype(np.uint8)
        )
    if folder.exists():  # left by a study this storage no longer knows: keep it, aside
        folder.rename(folder.with_name(f"{folder.name}.replaced-{os.getpid()}"))
    staging.rename(folder)
    return folder


def load_model(folder: Path) -> tuple[VAE, TrainConfig]:
    """Rebuild a trained model from its weights file alone."""
    path = folder / WEIGHTS_FILE
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        config = TrainConfig.from_mapping(saved["config"], str(path))
        model = build_model(config.arch, config.latent_dim)
        model.load_state_dict(saved["state_dict"])
    except VaesweepError:
        raise
    except Exception as err:
        raise VaesweepError(f"{path}: cannot load weights ({type(err).__name__}: {err})") from None
    return model.eval(), config


def load_history(folder: Path) -> pd.DataFrame:
    return pd.read_csv(folder / HISTORY_FILE)


def load_metrics(folder: Path) -> dict[str, float]:
    return json.loads((folder / METRICS_FILE).read_text())


def load_latents(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """The test set's latent means and labels, as saved at evaluation."""
    with np.load(folder / LATENTS_FILE) as saved:
        return saved["means"], saved["labels"]


def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=2, sort_keys=True) + "\n")
