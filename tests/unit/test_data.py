import gzip

import numpy as np
import pytest
import torch

from vaesweep.errors import VaesweepError
from vaesweep.training import data as data_module
from vaesweep.training.data import load_fashion_mnist, locate, make_splits, read_idx, write_idx

from conftest import TINY_TEST, TINY_TRAIN, write_dataset


@pytest.mark.parametrize("gz", [True, False])
def test_reads_tiny_idx_files(tmp_path, gz):
    folder = write_dataset(tmp_path / "d", gz=gz)
    data = load_fashion_mnist(folder)
    assert data.train_x.shape == (TINY_TRAIN, 1, 28, 28) and data.test_x.shape == (
        TINY_TEST,
        1,
        28,
        28,
    )
    assert data.train_x.dtype == torch.float32 and data.train_y.dtype == torch.int64
    assert 0.0 <= data.train_x.min() and data.train_x.max() <= 1.0
    # The bright bar written at 230 comes back as 230/255.
    assert data.train_x.max().item() == pytest.approx(230 / 255)


def test_torchvision_layout_is_found(tmp_path):
    write_dataset(tmp_path / "root" / "FashionMNIST" / "raw", gz=False)
    assert len(load_fashion_mnist(tmp_path / "root").train_x) == TINY_TRAIN


def test_truncated_file_is_named(tmp_path):
    folder = write_dataset(tmp_path / "d", gz=False)
    path = folder / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(VaesweepError, match="train-images-idx3-ubyte: .* truncated"):
        load_fashion_mnist(folder)


def test_corrupt_gzip_is_named(tmp_path):
    folder = write_dataset(tmp_path / "d")
    path = folder / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:30])
    with pytest.raises(VaesweepError, match="t10k-labels-idx1-ubyte.gz: cannot read"):
        load_fashion_mnist(folder)


def test_wrong_magic_is_rejected(tmp_path):
    path = tmp_path / "labels.gz"
    write_idx(path, np.zeros((3, 4), dtype=np.uint8))  # a 2-D file where labels are 1-D
    with pytest.raises(VaesweepError, match="not a 1-D IDX file"):
        read_idx(path, ndim=1)


def test_label_count_must_match_images(tmp_path):
    folder = write_dataset(tmp_path / "d")
    write_idx(folder / "train-labels-idx1-ubyte.gz", np.zeros(TINY_TRAIN - 1, dtype=np.uint8))
    with pytest.raises(VaesweepError, match=f"{TINY_TRAIN - 1} labels for {TINY_TRAIN} images"):
        load_fashion_mnist(folder)


def test_swapped_training_and_test_files_are_refused(tmp_path):
    folder = write_dataset(tmp_path / "d", n_train=100, n_test=300)
    with pytest.raises(VaesweepError, match="training and test files look swapped"):
        load_fashion_mnist(folder)


def _rewrite(folder, key: str, array: np.ndarray) -> None:
    write_idx(folder / f"{data_module.FILE_STEMS[key]}.gz", array)


def _copy_training_to_test(folder):
    for part in ("images", "labels"):
        train = folder / f"{data_module.FILE_STEMS[f'train_{part}']}.gz"
        (folder / f"{data_module.FILE_STEMS[f'test_{part}']}.gz").write_bytes(train.read_bytes())


@pytest.mark.parametrize(
    "damage, message",
    [
        (_copy_training_to_test, f"{TINY_TRAIN} of its {TINY_TRAIN} images are also in"),
        (
            lambda f: _rewrite(f, "test_images", np.zeros((TINY_TEST, 28, 28), np.uint8)),
            "every pixel of every image is 0",
        ),
        (
            lambda f: _rewrite(f, "train_labels", np.full(TINY_TRAIN, 3, np.uint8)),
            r"every image is of one class \(Dress\)",
        ),
        (
            lambda f: [
                _rewrite(f, "test_images", np.zeros((0, 28, 28), np.uint8)),
                _rewrite(f, "test_labels", np.zeros(0, np.uint8)),
            ],
            "t10k-images-idx3-ubyte.gz: holds no images",
        ),
    ],
    ids=["test file is the training file", "all black", "one class", "empty test set"],
)
def test_data_that_cannot_train_or_measure_is_refused(tmp_path, damage, message):
    folder = write_dataset(tmp_path / "d")
    damage(folder)
    with pytest.raises(VaesweepError, match=message):
        load_fashion_mnist(folder)


def test_a_few_test_images_shared_with_training_are_allowed(tmp_path):
    folder = write_dataset(tmp_path / "d", n_test=200)
    train = read_idx(folder / "train-images-idx3-ubyte.gz", 3)
    test = read_idx(folder / "t10k-images-idx3-ubyte.gz", 3).copy()
    test[:2] = train[:2]  # 1%: allowed; one more is refused
    _rewrite(folder, "test_images", test)
    assert len(load_fashion_mnist(folder).test_x) == 200
    test[2] = train[2]
    _rewrite(folder, "test_images", test)
    with pytest.raises(VaesweepError, match="3 of its 200 images are also in"):
        load_fashion_mnist(folder)


def test_a_header_whose_size_overflows_64_bits_is_refused(tmp_path):
    path = tmp_path / "images"
    header = (0x803).to_bytes(4, "big") + b"".join(n.to_bytes(4, "big") for n in (2**31, 2**31, 4))
    path.write_bytes(header)  # 2**64 images' bytes: 0 where the product wraps around in 64 bits
    with pytest.raises(
        VaesweepError, match="16 bytes where the header .* needs 18446744073709551632"
    ):
        read_idx(path, ndim=3)


def test_explicit_folder_without_data_says_what_it_expected(tmp_path):
    with pytest.raises(VaesweepError, match="no Fashion-MNIST here .*train-images-idx3-ubyte"):
        locate(tmp_path)


def test_environment_variable_is_used(tmp_path, monkeypatch):
    folder = write_dataset(tmp_path / "env")
    monkeypatch.setenv("VAESWEEP_DATA", str(folder))
    assert locate()["train_images"].parent == folder


def test_search_order_debian_then_cache_then_message(tmp_path, monkeypatch):
    monkeypatch.delenv("VAESWEEP_DATA", raising=False)
    monkeypatch.setattr(data_module, "DEBIAN_DIR", tmp_path / "debian")
    monkeypatch.setenv("VAESWEEP_CACHE", str(tmp_path / "cache"))
    with pytest.raises(VaesweepError, match="apt-get install dataset-fashion-mnist"):
        locate(allow_download=False)
    write_dataset(tmp_path / "cache")
    assert locate(allow_download=False)["test_images"].parent == tmp_path / "cache"
    write_dataset(tmp_path / "debian")
    assert locate(allow_download=False)["test_images"].parent == tmp_path / "debian"


def test_splits_hold_out_validation_from_training(tiny_data):
    splits = make_splits(tiny_data, val_size=100, train_subset=0)
    assert len(splits.train_x) == TINY_TRAIN - 100 and len(splits.val_x) == 100
    assert torch.equal(splits.val_x, tiny_data.train_x[-100:])
    assert len(splits.test_x) == TINY_TEST
    subset = make_splits(tiny_data, val_size=100, train_subset=50)
    assert torch.equal(subset.train_x, tiny_data.train_x[:50])
    assert torch.equal(subset.val_x, splits.val_x)  # same validation images whatever the subset


def test_impossible_splits_are_explained(tiny_data):
    with pytest.raises(VaesweepError, match="'train_subset' \\(1000\\) exceeds the 500"):
        make_splits(tiny_data, val_size=100, train_subset=1000)
    with pytest.raises(VaesweepError, match="leaves 0 of the 600 training images"):
        make_splits(tiny_data, val_size=TINY_TRAIN, train_subset=0)


def test_real_fashion_mnist(real_data):
    assert real_data.train_x.shape == (60_000, 1, 28, 28)
    assert real_data.test_x.shape == (10_000, 1, 28, 28)
    assert torch.bincount(real_data.train_y).tolist() == [6000] * 10
    assert torch.bincount(real_data.test_y).tolist() == [1000] * 10
    assert real_data.train_x.min() == 0.0 and real_data.train_x.max() == 1.0


def test_real_files_are_gzipped_idx(real_data):
    with gzip.open(real_data.source / "t10k-labels-idx1-ubyte.gz") as handle:
        assert int.from_bytes(handle.read(4), "big") == 0x801
