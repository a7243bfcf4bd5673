"""A journal storage whose filesystem turns read-only: a run is one line and changes nothing,
reading still answers (saying its look was not recorded), and a new journal there is refused.
A real read-only tmpfs, mounted where this machine allows it."""

from __future__ import annotations

import subprocess

import optuna
import pytest

from vaesweep import results
from vaesweep.store.storage import LOOKS_ATTR, open_storage

from helpers import run_args, vaesweep


@pytest.fixture
def filesystem(tmp_path):
    """A small tmpfs of our own, remountable read-only; skipped where mounting is not allowed."""
    mount = tmp_path / "fs"
    mount.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)], capture_output=True
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_a_read_only_journal_is_read_but_never_written(filesystem, tmp_path, tiny_data_dir):
    url = f"journal:///{filesystem / 'study.log'}"
    folder = tmp_path / "results"
    made = vaesweep(*run_args(folder, tiny_data_dir, 6, "--storage", url))  # 2 seed blocks
    assert made.exit_code == 0, made.output
    record = optuna.load_study(study_name="warmup", storage=open_storage(url))
    record.set_user_attr(LOOKS_ATTR, None)  # no look yet, so reading it has one to record
    subprocess.run(["mount", "-o", "remount,ro", str(filesystem)], check=True)
    before = (filesystem / "study.log").read_bytes()

    outcome = vaesweep(*run_args(folder, tiny_data_dir, 9, "--storage", url))
    lines = outcome.output.strip().splitlines()
    assert outcome.exit_code == 1 and len(lines) == 1, outcome.output
    assert lines[0] == (
        f"Error: storage {url} cannot be written: Read-only file system; nothing was trained "
        "(reading it, with report or the Python API, still works)"
    )

    loaded = results.load("warmup", url, results=folder)
    assert loaded.answers and len(loaded.study.entries) == 6
    refused = results.record_look(loaded)
    assert refused is not None and "was not recorded (the storage refused the write)" in refused
    assert (filesystem / "study.log").read_bytes() == before

    fresh = vaesweep(*run_args(tmp_path / "r2", tiny_data_dir, 1, "--storage", f"{url}.new"))
    assert fresh.exit_code == 1 and "Read-only file system" in fresh.output, fresh.output
    assert fresh.output.count("\n") == 1 and not (tmp_path / "r2").exists()
