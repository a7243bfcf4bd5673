"""A study's searched settings: an int or float range, or a list of choices, parsed from the
study file's `[search]` table and asked of Optuna's trial."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import optuna

from vaesweep.errors import VaesweepError, shown

_PARAM_KEYS = {"type", "low", "high", "log", "step", "choices"}
MAX_STEPS = 1_000_000  # values a stepped range may hold: beyond it, a step is surely a typo


@dataclass(frozen=True)
class ParamSpec:
    """One searched setting: an int or float range, or a list of choices."""

    name: str
    kind: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()

    @property
    def extremes(self) -> tuple[Any, ...]:
        """Values that, once valid, make every value of the parameter valid."""
        return self.choices or (self.low, self.high)

    def suggest(self, trial: optuna.Trial) -> Any:
        if self.kind == "categorical":
            return trial.suggest_categorical(self.name, list(self.choices))
        assert self.low is not None and self.high is not None  # a range has both ends
        if self.kind == "int":
            return trial.suggest_int(
                self.name, int(self.low), int(self.high), step=int(self.step or 1), log=self.log
            )
        return trial.suggest_float(self.name, self.low, self.high, step=self.step, log=self.log)

    def points(self, count: int) -> tuple[Any, ...]:
        """`count` values spread over the parameter, both ends included: evenly (on the log
        scale for a log range), rounded to 3 significant figures; every choice of a categorical
        one. What a nuisance parameter is tuned over."""
        if self.kind == "categorical":
            return self.choices
        assert self.low is not None and self.high is not None  # a range has both ends
        low, high = self.low, self.high
        if self.log:
            spread = [math.exp(v) for v in _even(math.log(low), math.log(high), count)]
        else:
            spread = _even(low, high, count)
        if self.kind == "int" or self.step:
            step = self.step or 1
            values = [low + round((v - low) / step) * step for v in spread]
            values = [int(v) if self.kind == "int" else v for v in values]
        else:
            values = [float(f"{v:.3g}") for v in spread]
        values = [min(max(v, low), high) for v in values]
        values[0], values[-1] = low, high  # exactly the range's ends, whatever the rounding
        return tuple(dict.fromkeys(values))

    def position(self, value: Any) -> float | None:
        """Where `value` lies in the range, 0 at low and 1 at high (on the log scale for a log
        range); None for a categorical parameter, whose choices have no order."""
        if self.kind == "categorical":
            return None
        assert self.low is not None and self.high is not None  # a range has both ends
        scale = math.log if self.log else float
        return (scale(value) - scale(self.low)) / (scale(self.high) - scale(self.low))

    def describe(self) -> str:
        if self.kind == "categorical":
            return "{" + ", ".join(map(str, self.choices)) + "}"
        scale = ", log" if self.log else ""
        step = f", step {self.step}" if self.step else ""
        return f"{self.kind} [{self.low}, {self.high}{step}{scale}]"


def _even(low: float, high: float, count: int) -> list[float]:
    if count == 1:
        return [low]
    return [low + (high - low) * i / (count - 1) for i in range(count)]


def parse_param(name: str, raw: Any, source: str, table: str = "search") -> ParamSpec:
    """One entry of `[search]` (or `[nuisance]`), its shape checked; whether its values make
    valid training settings is the study's check."""
    where = f"{source}: {table}.{name}"
    if not isinstance(raw, dict):
        raise VaesweepError(
            f'{where} must be a table such as {{ type = "int", low = 0, high = 8 }}'
        )
    unknown = sorted(set(raw) - _PARAM_KEYS)
    if unknown:
        raise VaesweepError(f"{where}: unknown key '{unknown[0]}'")
    kind = raw.get("type")
    if kind == "categorical":
        choices = raw.get("choices")
        if not isinstance(choices, list) or not choices or set(raw) - {"type", "choices"}:
            raise VaesweepError(
                f"{where}: a categorical parameter takes a non-empty 'choices' list only"
            )
        if not all(isinstance(c, str | int | float | bool) for c in choices):
            raise VaesweepError(f"{where}: each choice must be a string, number or boolean")
        if len(set(map(repr, choices))) != len(choices):
            raise VaesweepError(f"{where}: a choice is listed twice")
        return ParamSpec(name, kind, choices=tuple(choices))
    if kind not in ("int", "float"):
        raise VaesweepError(f"{where}: 'type' must be int, float or categorical; got {shown(kind)}")
    if "choices" in raw:
        raise VaesweepError(f"{where}: 'choices' is for categorical parameters")
    low: Any = raw.get("low")
    high: Any = raw.get("high")
    step, log = raw.get("step"), raw.get("log", False)
    number = int if kind == "int" else (int, float)
    for label, value in (("low", low), ("high", high)):
        if not isinstance(value, number) or isinstance(value, bool) or not math.isfinite(value):
            raise VaesweepError(
                f"{where}: '{label}' must be a{'n int' if kind == 'int' else ' finite number'}"
            )
    if not low < high:
        raise VaesweepError(f"{where}: 'low' ({low}) must be below 'high' ({high})")
    if not isinstance(log, bool):
        raise VaesweepError(f"{where}: 'log' must be true or false")
    if log and (low <= 0 or step is not None):
        raise VaesweepError(f"{where}: a log range needs 'low' > 0 and no 'step'")
    if step is not None and (
        not isinstance(step, number) or isinstance(step, bool) or not 0 < step < math.inf
    ):
        raise VaesweepError(f"{where}: 'step' must be positive")
    if step is not None and (high - low) / step > MAX_STEPS:
        raise VaesweepError(
            f"{where}: 'step' {step} makes more than {MAX_STEPS:,} values between {low} and {high}"
        )
    return ParamSpec(name, kind, low=low, high=high, log=log, step=step)
