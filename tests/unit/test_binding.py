"""A trial folder belongs to one trial record: by folder id, or (older folders) by settings."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import optuna
from optuna.distributions import IntDistribution

from vaesweep.store.binding import belongs, clean_debris, foreign_folders, mismatch, read_stamp


def record(number: int, seed: int = 7, warmup: int = 2, folder_id: str | None = None):
    attrs = {"seed": seed} | ({"folder_id": folder_id} if folder_id else {})
    trial = optuna.trial.create_trial(
        state=optuna.trial.TrialState.COMPLETE,
        value=1.0,
        params={"warmup_epochs": warmup},
        distributions={"warmup_epochs": IntDistribution(0, 4)},
        user_attrs=attrs,
    )
    trial.number = number
    return trial


def folder(root: Path, number: int, seed: int = 7, warmup: int = 2, folder_id: str | None = None):
    path = root / f"trial-{number:04d}"
    path.mkdir(parents=True)
    stamp = {"number": number} | ({"folder_id": folder_id} if folder_id else {})
    (path / "trial.json").write_text(json.dumps(stamp))
    (path / "config.json").write_text(json.dumps({"seed": seed, "warmup_epochs": warmup}))
    return path


def test_a_folder_belongs_to_the_record_with_its_folder_id(tmp_path):
    path = folder(tmp_path, 3, folder_id="a" * 32)
    assert belongs(read_stamp(path), record(3, folder_id="a" * 32))
    assert not belongs(read_stamp(path), record(3, folder_id="b" * 32))
    assert not belongs(read_stamp(path), record(3))  # a record of before folder ids
    assert not belongs(read_stamp(path), record(4, folder_id="a" * 32))


def test_a_folder_from_before_folder_ids_is_matched_by_its_seed_and_values(tmp_path):
    path = folder(tmp_path, 1)
    assert belongs(read_stamp(path), record(1))
    assert not belongs(read_stamp(path), record(1, seed=8))
    assert not belongs(read_stamp(path), record(1, warmup=0))
    assert not belongs(read_stamp(path), record(1, folder_id="a" * 32))


def test_an_unreadable_folder_proves_nothing(tmp_path):
    path = folder(tmp_path, 0)
    (path / "trial.json").write_text("{not json")
    assert read_stamp(path) is None
    assert "no readable trial.json" in mismatch(path, record(0))
    assert foreign_folders(tmp_path, lambda: []) == []


def test_foreign_folders_are_those_no_record_owns(tmp_path):
    ours = folder(tmp_path, 0, folder_id="a" * 32)
    other = folder(tmp_path, 1, folder_id="c" * 32)
    unknown = folder(tmp_path, 2, folder_id="d" * 32)
    found = foreign_folders(tmp_path, lambda: [record(0, folder_id="a" * 32), record(1, 9)])
    assert found == [other, unknown] and ours not in found
    assert foreign_folders(tmp_path / "none", lambda: []) == []


def test_clean_up_removes_only_folders_and_staging_that_provably_are_debris(tmp_path):
    failed = record(0, folder_id="a" * 32)
    failed.state = optuna.trial.TrialState.FAIL
    crashed = folder(tmp_path, 0, folder_id="a" * 32)
    kept = folder(tmp_path, 1, folder_id="z" * 32)  # another storage's, same number as a failure
    other_failure = record(1, folder_id="y" * 32)
    legacy = folder(tmp_path, 2)  # no folder id: never removed on its settings alone
    legacy_failure = record(2)
    mine = tmp_path / f".trial-0005.partial-{socket.gethostname()}-{os.getpid()}"
    gone = tmp_path / f".trial-0006.partial-{socket.gethostname()}-999999"
    fresh = tmp_path / ".trial-0007.partial-elsewhere-999999"
    old = tmp_path / ".trial-0008.partial-999999"  # before names carried the host
    for path in (mine, gone, fresh, old):
        path.mkdir()
    os.utime(old, (0, 0))
    removed = clean_debris(tmp_path, [failed, other_failure, legacy_failure], older_than=60)
    assert sorted(removed) == sorted([crashed, gone, old])
    assert kept.is_dir() and legacy.is_dir() and mine.is_dir() and fresh.is_dir()
