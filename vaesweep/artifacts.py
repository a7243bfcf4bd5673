"""Deprecated: `vaesweep.artifacts.load_model` is `vaesweep.load_model` (kept for one release)."""

import warnings

from vaesweep.store.artifacts import load_model

__all__ = ["load_model"]

warnings.warn(
    "vaesweep.artifacts is deprecated and will be removed in the next release: use "
    "vaesweep.load_model (or vaesweep.store.artifacts.load_model)",
    DeprecationWarning,
    stacklevel=2,
)
