"""TrainConfig: every setting of one training run, validated on construction.

The defaults are the reference notebook's run (seed architecture, MSE, lr 1e-4, batch 128, 60
epochs, 40 of KL warm-up, ReduceLROnPlateau and early stopping on the beta-weighted validation
loss), with one deliberate difference: validation images are held out from the training file
(the notebook validates on the test set, which then no longer measures generalisation).
`precision = "auto"` trains in bf16 autocast only where it measures faster (`precision.decide`);
evaluation is always fp32. Study files override them with budgets that suit the machine.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vaesweep.errors import VaesweepError, shown

LIKELIHOODS = ("mse", "bce")
PRECISIONS = ("auto", "fp32", "bf16")  # auto: measured once per run (precision.decide)
# What early stopping and the LR schedule watch: the beta-weighted validation loss the notebook
# monitors, or the beta=1 validation ELBO, which stays comparable across epochs during warm-up.
MONITORS = ("elbo", "loss")


@dataclass(frozen=True)
class TrainConfig:
    """One training run. `train_subset = 0` means every training image."""

    arch: str = "seed"
    latent_dim: int = 2
    likelihood: str = "mse"
    lr: float = 1e-4
    batch_size: int = 128
    epochs: int = 60
    warmup_epochs: int = 40
    train_subset: int = 0
    val_size: int = 10_000
    lr_factor: float = 0.5
    lr_patience: int = 5
    min_lr: float = 5e-5
    early_stop_patience: int = 10
    early_stop_start: float = 0.5  # fraction of the warm-up before early stopping starts
    monitor: str = "loss"
    precision: str = "auto"
    iwae_samples: int = 50  # importance samples of the val/test -log p(x) (0: not estimated)
    nll_val_images: int = 500  # fixed random validation images for the likelihood (0: all)
    nll_test_images: int = 500  # fixed random test images for the likelihood (0: all)
    ssim_images: int = 1000  # fixed random images per split for SSIM (0: all), as the notebook
    # Fixed random validation and test images that every evaluation uses, each epoch's and the
    # final one (0: the whole splits): a quick look's evaluation, at a subset's noise.
    eval_images: int = 0
    binarize: bool = False  # dynamic binarization of training images, fixed of val/test
    seed: int = 0

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            check_setting(field.name, getattr(self, field.name))
        if self.min_lr > self.lr:
            raise VaesweepError(f"'min_lr' ({self.min_lr}) must not exceed 'lr' ({self.lr})")

    @property
    def early_stop_start_epoch(self) -> int:
        """First epoch (0-based) at which early stopping watches the monitored value."""
        return int(self.early_stop_start * self.warmup_epochs)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], source: str = "config") -> TrainConfig:
        """Build from a mapping, naming `source` and the key in any error."""
        unknown = sorted(set(values) - set(FIELD_NAMES))
        if unknown:
            raise VaesweepError(
                f"{source}: unknown setting '{unknown[0]}' (known: {', '.join(FIELD_NAMES)})"
            )
        try:
            return cls(**values)
        except VaesweepError as err:
            raise VaesweepError(f"{source}: {err}") from None


FIELD_NAMES = tuple(f.name for f in dataclasses.fields(TrainConfig))

_CHOICES = {
    "arch": (),  # the model's registry, read when checked (see `_choices`)
    "likelihood": LIKELIHOODS,
    "precision": PRECISIONS,
    "monitor": MONITORS,
}
_POSITIVE_INTS = {
    "latent_dim",
    "batch_size",
    "epochs",
    "val_size",
    "lr_patience",
    "early_stop_patience",
}
_NON_NEGATIVE_INTS = {
    "warmup_epochs",
    "train_subset",
    "seed",
    "nll_val_images",
    "nll_test_images",
    "ssim_images",
    "eval_images",
    "iwae_samples",
}
_POSITIVE_FLOATS = {"lr"}
_NON_NEGATIVE_FLOATS = {"min_lr", "early_stop_start"}


# Upper bounds that keep a typo from asking for terabytes, years or certain divergence; far
# above any sensible run (an Adam step size above 10 diverges; early stopping beyond a hundred
# warm-ups never starts). Sizes beyond the data are refused against the data itself.
_MAXIMA = {
    "latent_dim": 1024,
    "batch_size": 65_536,
    "epochs": 100_000,
    "iwae_samples": 100_000,
    "warmup_epochs": 100_000,
    "seed": 2**32 - 1,
    "lr_patience": 100_000,
    "early_stop_patience": 100_000,
    "train_subset": 10**7,
    "val_size": 10**7,
    "nll_val_images": 10**7,
    "nll_test_images": 10**7,
    "ssim_images": 10**7,
    "eval_images": 10**7,
    "lr": 10.0,
    "min_lr": 10.0,
    "early_stop_start": 100.0,
}


def _choices(name: str) -> tuple[str, ...]:
    if name == "arch":
        # The architectures' one home is the model's registry. Importing it here, not at the top,
        # keeps this module free of torch, so light readers (the report's page) get the defaults.
        from vaesweep.model import ARCHITECTURES

        return tuple(ARCHITECTURES)
    return _CHOICES[name]


def check_setting(name: str, value: Any) -> None:
    """Type and range of one setting, alone (cross-setting rules are the config's)."""
    if name in _CHOICES:
        if not isinstance(value, str) or value not in _choices(name):
            raise VaesweepError(
                f"'{name}' must be one of {', '.join(_choices(name))}; got {shown(value)}"
            )
    elif name in _POSITIVE_INTS or name in _NON_NEGATIVE_INTS:
        low = 1 if name in _POSITIVE_INTS else 0
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            kind = "a positive" if low else "a non-negative"
            raise VaesweepError(f"'{name}' must be {kind} integer; got {shown(value)}")
        if value > _MAXIMA.get(name, value):
            raise VaesweepError(f"'{name}' must be at most {_MAXIMA[name]}; got {shown(value)}")
    elif name in _POSITIVE_FLOATS or name in _NON_NEGATIVE_FLOATS:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if not ok or not (value > 0 if name in _POSITIVE_FLOATS else value >= 0):
            kind = "a positive" if name in _POSITIVE_FLOATS else "a non-negative"
            raise VaesweepError(f"'{name}' must be {kind} number; got {shown(value)}")
        if not math.isfinite(value):
            raise VaesweepError(f"'{name}' must be a finite number; got {shown(value)}")
        if value > _MAXIMA.get(name, value):
            raise VaesweepError(f"'{name}' must be at most {_MAXIMA[name]}; got {shown(value)}")
    elif name == "binarize":
        if not isinstance(value, bool):
            raise VaesweepError(f"'binarize' must be true or false; got {shown(value)}")
    elif name == "lr_factor":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if not ok or not 0 < value < 1:
            raise VaesweepError(f"'lr_factor' must be between 0 and 1; got {shown(value)}")


def parse_override(text: str) -> tuple[str, Any]:
    """Parse one `--set KEY=VALUE`: the value is read as TOML (2, 1e-3, true), else as a string."""
    key, sep, raw = text.partition("=")
    key, raw = key.strip(), raw.strip()
    if not sep or not key or not raw:
        raise VaesweepError(f"--set {shown(text)}: expected KEY=VALUE, e.g. --set epochs=2")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key, value
