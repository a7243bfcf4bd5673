"""Shared fixtures: tiny Fashion-MNIST-shaped IDX files written by the tests themselves."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest

from vaesweep.training.data import DEBIAN_DIR, FILE_STEMS, load_fashion_mnist

from helpers import run_args, small_warmup, vaesweep

TINY_TRAIN, TINY_TEST = 600, 200


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write unsigned bytes as IDX (gzipped when the name ends in .gz)."""
    header = (0x800 + array.ndim).to_bytes(4, "big")
    header += b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as handle:
        handle.write(payload)


def synthetic_images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Ten easily told-apart classes: class c is a bright bar at a class-specific place."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, size=n).astype(np.uint8)
    images = rng.integers(0, 40, size=(n, 28, 28)).astype(np.uint8)
    for i, label in enumerate(labels):
        row = 2 + 2 * int(label)
        images[i, row : row + 4, 4:24] = 230
    return images, labels


def write_dataset(
    folder: Path, gz: bool = True, n_train: int = TINY_TRAIN, n_test: int = TINY_TEST
):
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    train_x, train_y = synthetic_images(n_train, seed=1)
    test_x, test_y = synthetic_images(n_test, seed=2)
    arrays = {
        "train_images": train_x,
        "train_labels": train_y,
        "test_images": test_x,
        "test_labels": test_y,
    }
    for key, stem in FILE_STEMS.items():
        write_idx(folder / f"{stem}{suffix}", arrays[key])
    return folder


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
