"""Optuna's journal storage, `journal:///PATH`: one append-only file that processes sharing a
filesystem (a cluster's, with no database server) all write under Optuna's own file lock.

Its URL reads as SQLite's: three slashes, then the path (relative to the current folder; four
slashes for an absolute one). A failing file (read-only, full, gone, damaged) raises Optuna's
`StorageInternalError`, so it reads as any storage's failure (store/storage.py); a journal whose
line is not JSON is "malformed", as SQLite calls a damaged file.
"""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path
from typing import Any

from optuna.exceptions import StorageInternalError
from optuna.storages.journal import JournalFileBackend

from vaesweep.errors import VaesweepError, visible
from vaesweep.store import optuna_private

PREFIX = "journal:///"


def journal_file(url: str) -> Path | None:
    """The file of a journal storage URL; None for another storage."""
    if not url.startswith("journal:"):
        return None
    return Path(url.removeprefix(PREFIX))


def check_journal_url(url: str) -> None:
    """Refuse a journal URL without a path, with other than three slashes before it, or whose
    path is a folder or in none."""
    path = url.removeprefix(PREFIX)
    if not url.startswith(PREFIX) or path in ("", "/") or path.endswith("/"):
        raise VaesweepError(
            f"storage {visible(url)}: a journal storage is a file, journal:///PATH (relative to "
            "this folder) or journal:////PATH (absolute), e.g. journal:///results/study.log"
        )
    file = Path(path)
    if not file.parent.is_dir():
        raise VaesweepError(f"storage {visible(url)}: there is no folder {visible(file.parent)}")
    if file.is_dir():
        raise VaesweepError(f"storage {visible(url)}: {visible(path)} is a folder, not a file")


class JournalFile(JournalFileBackend):
    """Optuna's journal file, each of whose failures is a `StorageInternalError`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            super().__init__(str(path))  # creates the file where there is none
        except OSError as err:
            raise StorageInternalError(_cause(path, err)) from err

    def read_logs(self, log_number_from: int) -> Generator[dict[str, Any], None, None]:
        try:
            yield from super().read_logs(log_number_from)
        except (OSError, ValueError) as err:  # ValueError: a line that is not JSON
            raise StorageInternalError(_cause(self.path, err)) from err

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        try:
            optuna_private.append_whole_lines(self, logs)
        except OSError as err:
            raise StorageInternalError(_cause(self.path, err)) from err


def _cause(path: Path, err: BaseException) -> str:
    if isinstance(err, OSError):
        return f"journal {visible(path)}: {err.strerror or err}"
    return f"journal {visible(path)} is malformed: a line is not JSON ({err})"
