"""Where things live in a results folder (stdlib only, so light commands start fast)."""

from __future__ import annotations

import hashlib
import os
import re
import socket
import tempfile
from pathlib import Path

from vaesweep.errors import VaesweepError, shown, visible

DEFAULT_DB_NAME = "vaesweep.db"
REPORT_DIR_NAME = "report"
PAGE_FILE = "index.html"  # a report's page
MANIFEST_FILE = "manifest.json"  # a report's record of what it drew
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.pt"
HISTORY_FILE = "history.csv"
TRIAL_FILE = "trial.json"
LATENTS_FILE = "latents.npz"


# A study's name becomes a folder under --results: a plain name, never a path.
STUDY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def check_study_name(name: str) -> str:
    if not STUDY_NAME.fullmatch(name) or name in _RESULTS_FILES or name.startswith(DEFAULT_DB_NAME):
        raise VaesweepError(
            f"study name {shown(name)} is not a plain name: use 1-100 letters, digits, '.', '_' "
            f"or '-', starting with a letter or digit (and not {DEFAULT_DB_NAME} or "
            f"{REPORT_DIR_NAME})"
        )
    return name


def report_folder_name(name: str) -> str:
    """A stored study's folder in a report: its own name where that is a plain name no report
    file has, otherwise a slug and a hash of the name (a storage may hold any name)."""
    if STUDY_NAME.fullmatch(name) and name not in _REPORT_FILES:
        return name
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._-")[:40] or "study"
    return f"{slug}-{hashlib.sha256(name.encode()).hexdigest()[:10]}"


def trial_folder_name(number: int) -> str:
    """A trial's folder name, in the results folder and in the report alike."""
    return f"trial-{number:04d}"


def staging_folder(folder: Path) -> Path:
    """Where a trial folder is written before it is renamed into place: named by this machine
    and process, so a later run can tell whose writer is gone (`binding.clean_debris`)."""
    return folder.with_name(f".{folder.name}.partial-{socket.gethostname()}-{os.getpid()}")


def figure_file(name: str) -> str:
    """A figure's file name in the report, from its name in the page's catalogue."""
    return f"{name}.png"


def trial_folder(results_dir: Path, study_name: str, number: int) -> Path:
    return results_dir / study_name / trial_folder_name(number)


_RESULTS_FILES = (DEFAULT_DB_NAME, REPORT_DIR_NAME)
_REPORT_FILES = (PAGE_FILE, MANIFEST_FILE, figure_file("classes"))


# The longest path vaesweep writes below a results folder: a study name of up to 100
# characters, a trial folder, and its longest file name, with room to spare.
WRITTEN_BELOW = 160


def check_length(folder: Path, what: str) -> None:
    """A folder whose path this system cannot hold (a name over its limit, or a path too long
    for the files written below it), said as such before SQLite's "unable to open"."""
    name_max, path_max = _limits(folder)
    for part in folder.parts:
        if len(os.fsencode(part)) > name_max:
            raise VaesweepError(
                f"{what} {shown(str(folder))}: the name {shown(part, 40)} is longer than this "
                f"system allows ({len(os.fsencode(part))} bytes; at most {name_max})"
            )
    size = len(os.fsencode(str(folder.absolute())))
    if size + WRITTEN_BELOW > path_max:
        raise VaesweepError(
            f"{what} {shown(str(folder))} is too long a path for this system ({size} bytes; "
            f"the files written below it need it under {path_max - WRITTEN_BELOW}): choose a "
            "shorter one"
        )


def _limits(folder: Path) -> tuple[int, int]:
    """This system's longest file name and path where `folder` would be (POSIX's defaults
    where it cannot say)."""
    try:
        return os.pathconf("/", "PC_NAME_MAX"), os.pathconf("/", "PC_PATH_MAX")
    except (OSError, ValueError, AttributeError):
        return 255, 4096


def check_readable(folder: Path, what: str = "results folder") -> None:
    """A folder to read from: a name the system can hold, and not a file."""
    check_length(folder, what)
    if folder.exists() and not folder.is_dir():
        raise VaesweepError(f"{what} {visible(folder)} is a file, not a folder")


def check_writable(folder: Path, what: str = "results folder") -> None:
    """Fail before any work if files could not be written into `folder`, creating nothing: a
    missing folder is checked where it would be made (its nearest existing parent), and made
    by `make_folder` once every check has passed."""
    check_length(folder, what)
    existing = folder
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        if existing == folder:
            raise VaesweepError(f"{what} {visible(folder)} is a file, not a folder")
        raise VaesweepError(
            f"{what} {visible(folder)} cannot be made: {visible(existing)} is a file, not a folder"
        )
    try:
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".write-check-"):
            pass
    except OSError as err:
        raise VaesweepError(f"{what} {visible(folder)} is not writable ({err.strerror})") from None


def make_folder(folder: Path, what: str = "results folder") -> Path:
    """Make `folder` (and its parents) after the checks, with any failure in one line."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise VaesweepError(f"{what} {visible(folder)} cannot be made ({err.strerror})") from None
    return folder
