"""Find, read and split Fashion-MNIST, held in memory as tensors.

Where the files come from, first match wins: an explicit folder (--data-dir or VAESWEEP_DATA),
Debian's dataset-fashion-mnist, the user cache, then torchvision's download into that cache.
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from vaesweep.errors import VaesweepError
from vaesweep.spec.metric_names import KNN_NEIGHBOURS
from vaesweep.training.model import IMAGE_SHAPE

CLASS_NAMES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
FILE_STEMS = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
_IDX_MAGIC = {1: 0x00000801, 3: 0x00000803}  # unsigned bytes, 1-D labels / 3-D images
# Test images that may also sit in the training file before the test metrics stop measuring
# generalisation (Fashion-MNIST's own files share none).
MAX_SHARED_TEST_IMAGES = 0.01

HOW_TO_GET_DATA = (
    "Fashion-MNIST not found: install it with 'sudo apt-get install dataset-fashion-mnist', "
    "or pass --data-dir DIR (or set VAESWEEP_DATA) to a folder holding "
    + ", ".join(f"{stem}.gz" for stem in FILE_STEMS.values())
    + "; when online, vaesweep downloads it into {cache}"
)


@dataclass(frozen=True)
class FashionMNIST:
    """Images as float32 in [0, 1] of shape (N, 1, 28, 28); labels as int64 class indices."""

    train_x: Tensor
    train_y: Tensor
    test_x: Tensor
    test_y: Tensor
    source: Path


@dataclass(frozen=True)
class Splits:
    """Train and validation come from the training file; the test set is for final metrics only."""

    train_x: Tensor
    train_y: Tensor
    val_x: Tensor
    val_y: Tensor
    test_x: Tensor
    test_y: Tensor
    # Each evaluation split's full size, of which `eval_images` may have kept a subset.
    whole: dict[str, int] = field(default_factory=dict)


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(os.environ.get("VAESWEEP_CACHE") or Path(base) / "vaesweep" / "fashion-mnist")


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """Read an IDX file of unsigned bytes (gzipped or not), refusing anything malformed."""
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as handle:
            raw = handle.read()
    except (OSError, EOFError, zlib.error) as err:
        raise VaesweepError(
            f"{path}: cannot read ({err}); the file is corrupt or truncated"
        ) from None
    header = 4 + 4 * ndim
    if len(raw) < header or int.from_bytes(raw[:4], "big") != _IDX_MAGIC[ndim]:
        raise VaesweepError(f"{path}: not a {ndim}-D IDX file of unsigned bytes")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + math.prod(shape)  # Python's integers: a huge header cannot overflow
    if len(raw) != expected:
        raise VaesweepError(
            f"{path}: {len(raw)} bytes where the header {shape} needs {expected}; "
            "the file is truncated or corrupt"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def write_idx(path: Path, array: np.ndarray) -> None:
    """Unsigned bytes as an IDX file (gzipped when the name ends in .gz): `read_idx`'s inverse."""
    header = (0x800 + array.ndim).to_bytes(4, "big")
    header += b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    with (gzip.open if path.suffix == ".gz" else open)(path, "wb") as handle:
        handle.write(payload)


def write_synthetic(folder: Path, n_train: int, n_test: int, gz: bool = True) -> Path:
    """Fashion-MNIST-shaped files of ten easily told-apart classes (class c: a bright bar at its
    own height over faint noise), for the tests and for a machine without the real data."""
    folder.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {}
    for split, n, seed in (("train", n_train, 1), ("test", n_test, 2)):
        rng = np.random.default_rng(seed)
        labels = rng.integers(0, 10, size=n).astype(np.uint8)
        images = rng.integers(0, 40, size=(n, *IMAGE_SHAPE[1:])).astype(np.uint8)
        for i, label in enumerate(labels):
            images[i, 2 + 2 * int(label) : 6 + 2 * int(label), 4:24] = 230
        arrays |= {f"{split}_images": images, f"{split}_labels": labels}
    for key, stem in FILE_STEMS.items():
        write_idx(folder / f"{stem}{'.gz' if gz else ''}", arrays[key])
    return folder


def _find_file(folder: Path, stem: str) -> Path | None:
    for candidate in (folder, folder / "FashionMNIST" / "raw"):  # torchvision's layout too
        for name in (f"{stem}.gz", stem):
            if (candidate / name).is_file():
                return candidate / name
    return None


def _complete_folder(folder: Path) -> dict[str, Path] | None:
    found = {key: _find_file(folder, stem) for key, stem in FILE_STEMS.items()}
    return found if all(found.values()) else None  # type: ignore[return-value]


def _download(into: Path) -> bool:
    """torchvision's download, for users who are online; False when it cannot."""
    from torchvision.datasets import FashionMNIST as TorchvisionFashionMNIST

    try:
        for train in (True, False):
            TorchvisionFashionMNIST(str(into), train=train, download=True)
    except Exception:  # no network, proxy, disk: any failure means "not available"
        return False
    return True


def locate(data_dir: Path | None = None, allow_download: bool = True) -> dict[str, Path]:
    """Paths of the four IDX files, following the search order in this module's docstring."""
    explicit = data_dir or (
        Path(os.environ["VAESWEEP_DATA"]) if os.environ.get("VAESWEEP_DATA") else None
    )
    if explicit is not None:
        found = _complete_folder(explicit)
        if found is None:
            raise VaesweepError(
                f"{explicit}: no Fashion-MNIST here (expected "
                + ", ".join(f"{stem}[.gz]" for stem in FILE_STEMS.values())
                + ")"
            )
        return found
    cache = cache_dir()
    for folder in (DEBIAN_DIR, cache):
        if (found := _complete_folder(folder)) is not None:
            return found
    if allow_download and _download(cache) and (found := _complete_folder(cache)) is not None:
        return found
    raise VaesweepError(HOW_TO_GET_DATA.format(cache=cache))


def load_fashion_mnist(data_dir: Path | None = None, allow_download: bool = True) -> FashionMNIST:
    """Read and check all four files once; images become float tensors in [0, 1]."""
    paths = locate(data_dir, allow_download)
    arrays: dict[str, np.ndarray] = {}
    for key, path in paths.items():
        arrays[key] = read_idx(path, ndim=3 if key.endswith("images") else 1)
    tensors = {}
    for part in ("train", "test"):
        images, labels = arrays[f"{part}_images"], arrays[f"{part}_labels"]
        image_path, label_path = paths[f"{part}_images"], paths[f"{part}_labels"]
        if images.shape[1:] != IMAGE_SHAPE[1:]:
            raise VaesweepError(f"{image_path}: images are {images.shape[1:]}, expected 28x28")
        if len(images) != len(labels):
            raise VaesweepError(
                f"{label_path}: {len(labels)} labels for {len(images)} images in {image_path}"
            )
        if labels.size and labels.max() >= len(CLASS_NAMES):
            raise VaesweepError(f"{label_path}: label {labels.max()} is not a Fashion-MNIST class")
        _check_content(images, labels, image_path, label_path)
        x = torch.from_numpy(images.astype(np.float32) / 255.0).reshape(-1, *IMAGE_SHAPE)
        tensors[f"{part}_x"] = x
        tensors[f"{part}_y"] = torch.from_numpy(labels.astype(np.int64))
    if len(tensors["train_x"]) < len(tensors["test_x"]):
        raise VaesweepError(
            f"{paths['train_images']} holds fewer images ({len(tensors['train_x'])}) than "
            f"{paths['test_images']} ({len(tensors['test_x'])}): the training and test files "
            "look swapped"
        )
    _check_disjoint(arrays["train_images"], arrays["test_images"], paths)
    return FashionMNIST(**tensors, source=paths["train_images"].parent)


def _check_content(images: np.ndarray, labels: np.ndarray, image_path: Path, label_path: Path):
    """Refuse a split that cannot be learned from or measured: no images, every pixel one value
    (all black), or a single class (k-NN accuracy would be 1 whatever the latent space)."""
    if len(images) == 0:
        raise VaesweepError(f"{image_path}: holds no images")
    if images.min() == images.max():
        raise VaesweepError(
            f"{image_path}: every pixel of every image is {images.min()}: blank images, "
            "nothing to learn or measure"
        )
    if len(np.unique(labels)) < 2:
        raise VaesweepError(
            f"{label_path}: every image is of one class ({CLASS_NAMES[labels[0]]}); the k-NN "
            "accuracy needs at least two classes"
        )


def _check_disjoint(train: np.ndarray, test: np.ndarray, paths: dict[str, Path]) -> None:
    """Refuse test images that are training images (the same file twice, or an overlap), by
    their bytes: test metrics on them would measure memory, not generalisation."""
    seen = set(map(bytes, train.reshape(len(train), -1)))
    shared = sum(bytes(image) in seen for image in test.reshape(len(test), -1))
    if shared > MAX_SHARED_TEST_IMAGES * len(test):
        raise VaesweepError(
            f"{paths['test_images']}: {shared} of its {len(test)} images are also in "
            f"{paths['train_images']}; the test set must be images the model never trained on "
            "(is the same file given twice?)"
        )


def check_sizes(n_images: int, val_size: int, train_subset: int) -> int:
    """Whether a training file of `n_images` leaves room for the splits; the training images
    left. Every searched combination is checked so when a run starts, before anything is stored."""
    n_train = n_images - val_size
    if n_train < KNN_NEIGHBOURS:
        raise VaesweepError(
            f"'val_size' ({val_size}) leaves {max(n_train, 0)} of the {n_images} training images "
            f"to train on; at least {KNN_NEIGHBOURS} are needed (the k-NN metrics' neighbours)"
        )
    if train_subset > n_train:
        raise VaesweepError(
            f"'train_subset' ({train_subset}) exceeds the {n_train} training images left "
            f"after holding out {val_size} for validation"
        )
    if 0 < train_subset < KNN_NEIGHBOURS:
        raise VaesweepError(
            f"'train_subset' ({train_subset}) keeps fewer than {KNN_NEIGHBOURS} training images "
            "(the k-NN metrics' neighbours); 0 keeps them all"
        )
    return n_train


BINARIZE_SEED = 2015  # the one fixed binarization of validation and test images
EVAL_IMAGES_SEED = 31  # the fixed evaluation subsets of `eval_images`


def make_splits(
    data: FashionMNIST,
    val_size: int,
    train_subset: int = 0,
    binarize: bool = False,
    eval_images: int = 0,
) -> Splits:
    """Hold out the last `val_size` training images for validation (the same ones for every
    trial, so trials compare like with like); `train_subset` keeps the first N of the rest.
    `binarize` replaces validation and test images by one fixed Bernoulli sample of their
    intensities (the density-estimation protocol; training images are binarized afresh each
    batch by the trainer). `eval_images` keeps that many fixed random images of each of the
    validation and test splits (0: all), the same for every trial."""
    n_train = check_sizes(len(data.train_x), val_size, train_subset)
    keep = train_subset or n_train
    val_x, val_y = data.train_x[n_train:], data.train_y[n_train:]
    test_x, test_y = data.test_x, data.test_y
    if binarize:
        generator = torch.Generator().manual_seed(BINARIZE_SEED)
        val_x = torch.bernoulli(val_x, generator=generator)
        test_x = torch.bernoulli(test_x, generator=generator)
    if eval_images:
        val = fixed_subset(len(val_x), eval_images, EVAL_IMAGES_SEED)
        test = fixed_subset(len(test_x), eval_images, EVAL_IMAGES_SEED)
        val_x, val_y, test_x, test_y = val_x[val], val_y[val], test_x[test], test_y[test]
    return Splits(
        train_x=data.train_x[:keep],
        train_y=data.train_y[:keep],
        val_x=val_x,
        val_y=val_y,
        test_x=test_x,
        test_y=test_y,
        whole={"val": len(data.train_x) - n_train, "test": len(data.test_x)},
    )


def fixed_subset(n_images: int, size: int, seed: int) -> Tensor:
    """Fixed images of a split (sorted indices), the same for every trial and every run."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randperm(n_images, generator=generator)[: min(size, n_images)].sort().values
