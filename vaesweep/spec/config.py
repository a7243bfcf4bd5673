"""TrainConfig: every setting of one training run, validated on construction.

The defaults are the reference notebook's run (conv architecture, MSE, lr 1e-4, batch 128, 60
epochs, 40 of KL warm-up, ReduceLROnPlateau and early stopping on the beta-weighted validation
loss), with one deliberate difference: validation images are held out from the training file
(the notebook validates on the test set, which then no longer measures generalisation).
`precision = "auto"` trains in bf16 autocast only where it measures faster (`precision.decide`);
evaluation is always fp32. Study files override them with budgets that suit the machine.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vaesweep.errors import VaesweepError, did_you_mean, shown

# The networks by name: "conv", the notebook's convolutional VAE; "mlp", a small dense one.
# model.BUILDERS builds each (and refuses to import without one for every name here).
ARCHITECTURES = ("conv", "mlp")
LIKELIHOODS = ("mse", "bce")
PRECISIONS = ("auto", "fp32", "bf16")  # auto: measured once per run (precision.decide)
# What early stopping and the LR schedule watch: the beta-weighted validation loss the notebook
# monitors, or the beta=1 validation ELBO, which stays comparable across epochs during warm-up.
MONITORS = ("elbo", "loss")


@dataclass(frozen=True)
class Rule:
    """What one setting may be, declared on its field (`setting`): every check of a file, a
    `--set`, a searched range and a config reads it, and a field without one is refused."""

    kind: str  # "int", "float", "bool" or "choice"
    low: float | None = None  # ints and floats: the least value
    low_open: bool = False  # the least value itself excluded (a positive float)
    high: float | None = None  # the greatest value: keeps a typo from asking for terabytes
    high_open: bool = False
    choices: tuple[str, ...] = ()

    @property
    def kind_word(self) -> str:
        return "integer" if self.kind == "int" else "number"

    def check(self, name: str, value: Any) -> None:
        """Type and range of one value of this setting, alone (cross-setting rules are the
        config's), as one line naming the setting."""
        if self.kind == "choice":
            if not isinstance(value, str) or value not in self.choices:
                raise VaesweepError(
                    f"'{name}' must be one of {', '.join(self.choices)}; got {shown(value)}"
                )
        elif self.kind == "bool":
            if not isinstance(value, bool):
                raise VaesweepError(f"'{name}' must be true or false; got {shown(value)}")
        elif self.low_open and self.high_open:  # an open interval, such as a factor in (0, 1)
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if not number or not self.low < value < self.high:
                raise VaesweepError(
                    f"'{name}' must be between {self.low:g} and {self.high:g}; got {shown(value)}"
                )
        else:
            self._check_number(name, value)

    def _check_number(self, name: str, value: Any) -> None:
        kind = "a positive" if self.low_open or self.low == 1 else "a non-negative"
        least = 0 if self.low is None else self.low  # numbers here are sizes, rates or counts
        allowed = int if self.kind == "int" else int | float
        typed = isinstance(value, allowed) and not isinstance(value, bool)
        # Written so that NaN is outside the range too.
        if not typed or not (value > least if self.low_open else value >= least):
            raise VaesweepError(f"'{name}' must be {kind} {self.kind_word}; got {shown(value)}")
        if isinstance(value, float) and not math.isfinite(value):
            raise VaesweepError(f"'{name}' must be a finite number; got {shown(value)}")
        if self.high is not None and value > self.high:
            raise VaesweepError(f"'{name}' must be at most {self.high}; got {shown(value)}")
        if value > sys.float_info.max:  # an integer no float holds (10**400)
            raise VaesweepError(f"'{name}' must be a finite number; got {shown(value)}")


def setting(default: Any, rule: Rule) -> Any:
    """A TrainConfig field: its default and its rule, in one place."""
    return dataclasses.field(default=default, metadata={"rule": rule})


# The usual rules. Upper bounds sit far above any sensible run (an Adam step size above 10
# diverges; early stopping beyond a hundred warm-ups never starts); sizes beyond the data are
# refused against the data itself.
def _count(high: int, low: int = 1) -> Rule:
    return Rule("int", low=low, high=high)


_IMAGES = _count(10**7, low=0)  # a number of images, 0 meaning all of them


@dataclass(frozen=True)
class TrainConfig:
    """One training run. `train_subset = 0` means every training image."""

    arch: str = setting("conv", Rule("choice", choices=ARCHITECTURES))
    latent_dim: int = setting(2, _count(1024))
    likelihood: str = setting("mse", Rule("choice", choices=LIKELIHOODS))
    lr: float = setting(1e-4, Rule("float", low=0, low_open=True, high=10.0))
    batch_size: int = setting(128, _count(65_536))
    epochs: int = setting(60, _count(100_000))
    warmup_epochs: int = setting(40, _count(100_000, low=0))
    train_subset: int = setting(0, _IMAGES)
    val_size: int = setting(10_000, _count(10**7))
    lr_factor: float = setting(0.5, Rule("float", low=0, low_open=True, high=1, high_open=True))
    lr_patience: int = setting(5, _count(100_000))
    min_lr: float = setting(5e-5, Rule("float", low=0, high=10.0))
    early_stop_patience: int = setting(10, _count(100_000))
    # The fraction of the warm-up before early stopping starts.
    early_stop_start: float = setting(0.5, Rule("float", low=0, high=100.0))
    monitor: str = setting("loss", Rule("choice", choices=MONITORS))
    precision: str = setting("auto", Rule("choice", choices=PRECISIONS))
    # Importance samples of the val/test -log p(x) (0: not estimated).
    iwae_samples: int = setting(50, _count(100_000, low=0))
    nll_val_images: int = setting(500, _IMAGES)  # fixed random validation images for the NLL
    nll_test_images: int = setting(500, _IMAGES)  # fixed random test images for the NLL
    ssim_images: int = setting(1000, _IMAGES)  # fixed random images per split for SSIM
    # Fixed random validation and test images that every evaluation uses, each epoch's and the
    # final one (0: the whole splits): a quick look's evaluation, at a subset's noise.
    eval_images: int = setting(0, _IMAGES)
    # Dynamic binarization of training images, one fixed binarization of val/test.
    binarize: bool = setting(False, Rule("bool"))
    seed: int = setting(0, _count(2**32 - 1, low=0))

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            check_setting(field.name, value)
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
                f"{source}: unknown setting '{unknown[0]}' ({did_you_mean(unknown[0], FIELD_NAMES)}"
                f"known: {', '.join(FIELD_NAMES)})"
            )
        try:
            return cls(**values)
        except VaesweepError as err:
            raise VaesweepError(f"{source}: {err}") from None


def rules(cls: type) -> dict[str, Rule]:
    """Each field's rule; a field declared without one is a mistake, refused at import."""
    found = {}
    for field in dataclasses.fields(cls):
        if not isinstance(field.metadata.get("rule"), Rule):
            raise TypeError(f"{cls.__name__}.{field.name} has no Rule: declare it with setting()")
        found[field.name] = field.metadata["rule"]
    return found


RULES = rules(TrainConfig)
FIELD_NAMES = tuple(RULES)
DEFAULTS = {field.name: field.default for field in dataclasses.fields(TrainConfig)}


def check_setting(name: str, value: Any) -> None:
    """Type and range of one setting, alone (cross-setting rules are the config's)."""
    RULES[name].check(name, value)


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
