"""Shared fixtures: tiny Fashion-MNIST-shaped IDX files written by the tests themselves."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from vaesweep.training.data import DEBIAN_DIR, load_fashion_mnist, write_synthetic

from helpers import run_args, small_warmup, vaesweep

TINY_TRAIN, TINY_TEST = 600, 200

# The lanes, one folder each and marked by it: `unit` tests call the library in-process on tiny
# inputs; `e2e` tests run commands (in-process or as processes) on tiny data; `faults` tests send
# signals, kill processes or stop servers. `make test-fast` runs the unit lane; `make test` all.
LANES = ("unit", "e2e", "faults")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        lane = item.path.parent.name
        if lane not in LANES:
            raise pytest.UsageError(f"{item.path}: a test belongs in one of tests/{LANES}")
        item.add_marker(getattr(pytest.mark, lane))


def write_dataset(
    folder: Path, gz: bool = True, n_train: int = TINY_TRAIN, n_test: int = TINY_TEST
) -> Path:
    return write_synthetic(folder, n_train, n_test, gz)


@pytest.fixture
def tiny_data_dir(tmp_path: Path) -> Path:
    return write_dataset(tmp_path / "fashion")


@pytest.fixture
def tiny_data(tiny_data_dir: Path):
    return load_fashion_mnist(tiny_data_dir)


@pytest.fixture(scope="session")
def real_data():
    """The real Fashion-MNIST from Debian's package, when installed."""
    if not (DEBIAN_DIR / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    return load_fashion_mnist(DEBIAN_DIR)


@pytest.fixture(scope="module")
def reported(tmp_path_factory):
    """Two seed blocks of a two-value warm-up study on tiny data, reported once."""
    root = tmp_path_factory.mktemp("report")
    data_dir = write_dataset(root / "fashion")
    results = root / "results"
    assert vaesweep(*run_args(results, data_dir, 4, study=small_warmup(root))).exit_code == 0
    outcome = vaesweep("report", "--results", str(results), "--data-dir", str(data_dir))
    assert outcome.exit_code == 0, outcome.output
    return results, data_dir, outcome


@pytest.fixture
def copy_of(reported, tmp_path):
    results, data_dir, _ = reported
    copy = tmp_path / "results"
    shutil.copytree(results, copy)
    return copy, data_dir


@pytest.fixture
def study_with_two_trials(tmp_path, tiny_data_dir):
    results = tmp_path / "results"
    outcome = vaesweep(*run_args(results, tiny_data_dir, 2))
    assert outcome.exit_code == 0, outcome.output
    return results
