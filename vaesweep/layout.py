"""Where things live in a results folder (stdlib only, so light commands start fast)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from vaesweep.errors import VaesweepError

DEFAULT_DB_NAME = "vaesweep.db"
REPORT_DIR_NAME = "report"
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.pt"
HISTORY_FILE = "history.csv"
METRICS_FILE = "metrics.json"
TRIAL_FILE = "trial.json"
LATENTS_FILE = "latents.npz"


def trial_folder_name(number: int) -> str:
    """A trial's folder name, in the results folder and in the report alike."""
    return f"trial-{number:04d}"


def figure_file(name: str) -> str:
    """A figure's file name in the report, from its name in the page's catalogue."""
    return f"{name}.png"


def trial_folder(results_dir: Path, study_name: str, number: int) -> Path:
    return results_dir / study_name / trial_folder_name(number)


def check_writable(folder: Path, what: str = "results folder") -> None:
    """Fail before any work if files could not be written into `folder` (made if missing)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-check-"):
            pass
    except OSError as err:
        raise VaesweepError(f"{what} {folder} is not writable ({err.strerror})") from None
