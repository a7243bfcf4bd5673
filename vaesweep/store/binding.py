"""Which trial record a trial folder belongs to, checked before a folder is removed, replaced or
drawn: a folder's name alone is not enough, since two storages may share a results folder.

A trial's record and its folder's `trial.json` carry the same random `folder_id`, set when the
trial starts. Folders written before folder ids existed are matched by their settings instead:
the seed and every searched value must equal the record's. Light (stdlib and Optuna's records).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from optuna.trial import FrozenTrial

from vaesweep.store.layout import CONFIG_FILE, TRIAL_FILE, trial_folder_name
from vaesweep.store.storage import FOLDER_ID_ATTR, SEED_ATTR

FOLDER_GLOB = "trial-[0-9]*"


def new_folder_id() -> str:
    return uuid.uuid4().hex


def read_stamp(folder: Path) -> dict | None:
    """What a folder says of its trial: `trial.json` (with `config.json`'s settings under
    "config"); None when it cannot be read (missing, damaged), so nothing can be proved."""
    try:
        stamp = json.loads((folder / TRIAL_FILE).read_text())
        config = json.loads((folder / CONFIG_FILE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(stamp, dict) or not isinstance(config, dict):
        return None
    return {**stamp, "config": config}


def belongs(stamp: dict, trial: FrozenTrial) -> bool:
    """Whether a folder's stamp was written for this very trial record."""
    if stamp.get("number") != trial.number:
        return False
    recorded = trial.user_attrs.get(FOLDER_ID_ATTR)
    if recorded is not None or "folder_id" in stamp:
        return stamp.get("folder_id") == recorded
    # Written before folder ids: the same seed and searched values (a folder of another storage
    # with the same design and seed holds the same training, byte for byte).
    config = stamp["config"]
    return config.get("seed") == trial.user_attrs.get(SEED_ATTR) and all(
        config.get(name) == value for name, value in trial.params.items()
    )


def mismatch(folder: Path, trial: FrozenTrial) -> str | None:
    """Why `folder` cannot be read as `trial`'s (None: it belongs to it)."""
    stamp = read_stamp(folder)
    if stamp is None:
        return f"its folder {folder} has no readable {TRIAL_FILE} or {CONFIG_FILE}"
    if not belongs(stamp, trial):
        return f"its folder {folder} holds another storage's trial (another folder_id or settings)"
    return None


def foreign_folders(study_folder: Path, load_trials: Callable[[], list[FrozenTrial]]) -> list[Path]:
    """Trial folders this storage's records disown: a readable folder whose number no record has,
    or whose record is another trial. Unreadable ones prove nothing and are left to the report.
    The folders are listed before the records are read: a record exists before its folder."""
    folders = [
        f
        for f in sorted(study_folder.glob(FOLDER_GLOB))
        if study_folder.is_dir()
        if f.is_dir() and f.name.removeprefix("trial-").isdigit()
    ]
    by_number = {t.number: t for t in load_trials()} if folders else {}
    foreign = []
    for folder in folders:
        stamp = read_stamp(folder)
        trial = by_number.get(int(folder.name.removeprefix("trial-")))
        if stamp is not None and (trial is None or not belongs(stamp, trial)):
            foreign.append(folder)
    return foreign


def clean_debris(study_folder: Path, failed: list[FrozenTrial], older_than: float) -> list[Path]:
    """Remove what a crash can leave in a study's folder: staging folders whose process is gone
    (another machine's only once older than `older_than` seconds, so a live writer there keeps
    its own), and complete folders of trials recorded as failed (the crash came between
    the rename and the record) that provably belong to those records. Returns what was removed."""
    removed = []
    for path in study_folder.glob(".trial-*.partial-*") if study_folder.is_dir() else ():
        host, _, pid = path.name.partition(".partial-")[2].rpartition("-")
        if not pid.isdigit():
            continue
        if host == socket.gethostname():
            gone = not _alive(int(pid))  # this machine's own: its process tells
        else:  # another machine's, or from before staging names carried the host
            gone = time.time() - path.stat().st_mtime > older_than and not _alive(int(pid))
        if gone:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    for trial in sorted(failed, key=lambda t: t.number):
        path = study_folder / trial_folder_name(trial.number)
        stamp = read_stamp(path) if path.is_dir() else None
        if stamp is not None and trial.user_attrs.get(FOLDER_ID_ATTR) and belongs(stamp, trial):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
