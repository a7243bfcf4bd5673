"""Where things live in a results folder (stdlib only, so light commands start fast)."""

from __future__ import annotations

from pathlib import Path

DEFAULT_DB_NAME = "vaesweep.db"
REPORT_DIR_NAME = "report"
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.pt"
HISTORY_FILE = "history.csv"
METRICS_FILE = "metrics.json"
TRIAL_FILE = "trial.json"
LATENTS_FILE = "latents.npz"


def trial_folder(results_dir: Path, study_name: str, number: int) -> Path:
    return results_dir / study_name / f"trial-{number:04d}"
