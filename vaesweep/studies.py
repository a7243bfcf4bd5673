"""Study definitions: read `studies/*.toml`, validate them, map sampled parameters to a TrainConfig.

A study file holds a one-line `description`, the `objectives` (validation metrics; each one's
direction is implied), a `[search]` table of parameters, the `[fixed]` settings, and optional
`[sampler]` and `[pruner]` tables. See README.md for the format.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import json
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna

from vaesweep.config import FIELD_NAMES, TrainConfig, check_setting, parse_override
from vaesweep.design import Design, grid_values, parse_design
from vaesweep.errors import VaesweepError

# The shipped studies are package data, so an installed wheel has them too; the repository's
# top-level studies/ is a link to this folder, one set of files for both.
STUDIES_DIR = Path(str(importlib.resources.files("vaesweep") / "study_files"))

# Final metrics a study may select on, and their directions. Test metrics are never selectable.
OBJECTIVE_DIRECTIONS = {
    "val_loss": "minimize",
    "val_recon": "minimize",
    "val_kl": "minimize",
    "val_mse": "minimize",
    "val_ssim": "maximize",
    "val_knn_accuracy": "maximize",
    "val_nll": "minimize",
}
# Each objective's per-epoch value in the training history (lower is better, independent of the
# warm-up's beta). A pruner compares these, so a pruned trial's stored value (Optuna keeps its
# last reported one) is on its objective's scale. SSIM and 5-NN are not computed per epoch.
PER_EPOCH = {"val_loss": "val_elbo", "val_recon": "val_recon", "val_kl": "val_kl",
             "val_mse": "val_mse"}  # fmt: skip
# Values on the likelihood's own scale: MSE and BCE trials cannot be compared on them.
LIKELIHOOD_SCALED = {"val_loss", "val_recon", "val_nll"}

_SAMPLER_OPTIONS = {"tpe": {"n_startup_trials"}, "random": set(), "nsga2": {"population_size"}}
_PRUNER_OPTIONS = {
    "median": {"n_startup_trials"},
    "hyperband": {"min_resource", "reduction_factor"},
    "none": set(),
}
_DESIGN_KEYS = {"replicates", "explore", "confirm_top"}
_TOP_LEVEL_KEYS = {"description", "objectives", "search", "fixed", "sampler", "pruner"}
_TOP_LEVEL_KEYS |= _DESIGN_KEYS
_PARAM_KEYS = {"type", "low", "high", "log", "step", "choices"}


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

    def suggest(self, trial: optuna.Trial) -> Any:
        if self.kind == "categorical":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(
                self.name, int(self.low), int(self.high), step=int(self.step or 1), log=self.log
            )
        return trial.suggest_float(self.name, self.low, self.high, step=self.step, log=self.log)

    def describe(self) -> str:
        if self.kind == "categorical":
            return "{" + ", ".join(map(str, self.choices)) + "}"
        scale = ", log" if self.log else ""
        step = f", step {self.step}" if self.step else ""
        return f"{self.kind} [{self.low}, {self.high}{step}{scale}]"


@dataclass(frozen=True)
class StudySpec:
    name: str
    description: str
    objectives: tuple[str, ...]
    search: tuple[ParamSpec, ...]
    fixed: Mapping[str, Any]
    sampler: Mapping[str, Any] = field(default_factory=lambda: {"name": "tpe"})
    pruner: Mapping[str, Any] = field(default_factory=lambda: {"name": "none"})
    design: Design = field(default_factory=Design)
    source: str = ""

    @property
    def directions(self) -> list[str]:
        return [OBJECTIVE_DIRECTIONS[name] for name in self.objectives]

    @property
    def prune_metric(self) -> str | None:
        """The per-epoch value the pruner compares: the objective's own."""
        return None if self.pruner["name"] == "none" else PER_EPOCH[self.objectives[0]]

    def beta_warning(self) -> str | None:
        """A warning when some trial's epochs end before its KL warm-up does: such a trial never
        trains the beta = 1 ELBO it is scored on."""
        fixed = TrainConfig.from_mapping(self.fixed, self.name)
        epochs, warmups = fixed.epochs, [fixed.warmup_epochs]
        for param in self.search:
            if param.name == "warmup_epochs":
                warmups = list(param.choices) or [param.high]
        longest = max(warmups)
        if longest < epochs:
            return None
        return (
            f"warning: warmup_epochs up to {longest} with epochs = {epochs}: beta never reaches 1 "
            "in some trials, so they never train the ELBO they report"
        )

    @property
    def grid(self) -> list[dict[str, Any]] | None:
        """Every configuration of a grid design; None for a search design."""
        return grid_values(self.search) if self.design.kind == "grid" else None

    def design_summary(self) -> str:
        grid = self.grid
        return self.design.describe(len(grid) if grid else 0)

    def suggest(self, trial: optuna.Trial) -> dict[str, Any]:
        return {param.name: param.suggest(trial) for param in self.search}

    def config_for(self, params: Mapping[str, Any], seed: int) -> TrainConfig:
        return TrainConfig.from_mapping({**self.fixed, **params, "seed": seed}, self.name)

    def with_overrides(self, overrides: Mapping[str, Any]) -> StudySpec:
        """The same study with fixed settings replaced, validated like the file."""
        searched = {param.name for param in self.search}
        for key in overrides:
            if key in searched:
                raise VaesweepError(f"--set {key}: '{key}' is searched by study '{self.name}'")
            if key not in FIELD_NAMES or key == "seed":
                raise VaesweepError(
                    f"--set {key}: unknown setting (known: "
                    + ", ".join(n for n in FIELD_NAMES if n != "seed")
                    + ")"
                )
        spec = dataclasses.replace(self, fixed={**self.fixed, **overrides})
        _validate(spec, "--set")
        return spec

    def definition(self) -> dict[str, Any]:
        """What makes two runs the same study: search space, fixed settings, objectives and
        design (replicates, exploration and confirmation)."""
        return json.loads(
            json.dumps(
                {
                    "search": [dataclasses.asdict(param) for param in self.search],
                    "fixed": dict(sorted(self.fixed.items())),
                    "objectives": list(self.objectives),
                    "design": dataclasses.asdict(self.design),
                }
            )
        )

    def make_sampler(self, seed: int) -> optuna.samplers.BaseSampler:
        options = {k: v for k, v in self.sampler.items() if k != "name"}
        if self.sampler["name"] == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        if self.sampler["name"] == "nsga2":
            return optuna.samplers.NSGAIISampler(seed=seed, **options)
        return optuna.samplers.TPESampler(seed=seed, **options)

    def make_pruner(self) -> optuna.pruners.BasePruner:
        options = {k: v for k, v in self.pruner.items() if k not in ("name", "metric")}
        if self.pruner["name"] == "median":
            return optuna.pruners.MedianPruner(**options)
        if self.pruner["name"] == "hyperband":
            return optuna.pruners.HyperbandPruner(**options)
        return optuna.pruners.NopPruner()


def available_studies() -> list[str]:
    names = sorted(path.stem for path in STUDIES_DIR.glob("*.toml"))
    if not names:
        raise VaesweepError(f"no study files in {STUDIES_DIR}: the installation is incomplete")
    return names


def load_study(name_or_path: str) -> StudySpec:
    """A study by name from studies/, or from the path of a TOML file."""
    path = Path(name_or_path)
    if path.suffix != ".toml":
        path = STUDIES_DIR / f"{name_or_path}.toml"
        if not path.is_file():
            raise VaesweepError(
                f"unknown study '{name_or_path}' (available: {', '.join(available_studies())}; "
                "or give the path of a .toml file)"
            )
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise VaesweepError(f"{path}: no such study file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise VaesweepError(f"{path}: cannot read ({err})") from None
    except tomllib.TOMLDecodeError as err:
        raise VaesweepError(f"{path}: not valid TOML ({err})") from None
    return parse_study(raw, name=path.stem, source=str(path))


def parse_study(raw: Mapping[str, Any], name: str, source: str) -> StudySpec:
    unknown = sorted(set(raw) - _TOP_LEVEL_KEYS)
    if unknown:
        raise VaesweepError(f"{source}: unknown key '{unknown[0]}'")
    for required in ("description", "objectives", "search"):
        if required not in raw:
            raise VaesweepError(f"{source}: missing '{required}'")
    description = raw["description"]
    if not isinstance(description, str) or not description.strip():
        raise VaesweepError(f"{source}: 'description' must be a non-empty string")
    objectives = raw["objectives"]
    if (
        not isinstance(objectives, list)
        or not objectives
        or not all(isinstance(o, str) for o in objectives)
    ):
        raise VaesweepError(f"{source}: 'objectives' must be a non-empty list of metric names")
    for key in ("search", "fixed", "sampler", "pruner"):
        if not isinstance(raw.get(key, {}), dict):
            raise VaesweepError(f"{source}: '{key}' must be a table")
    for key in ("sampler", "pruner"):
        if not isinstance(raw.get(key, {}).get("name", ""), str):
            raise VaesweepError(f'{source}: {key}.name must be a name such as "tpe"')
    spec = StudySpec(
        name=name,
        description=description.strip(),
        objectives=tuple(objectives),
        search=tuple(_parse_param(key, value, source) for key, value in raw["search"].items()),
        fixed=dict(raw.get("fixed", {})),
        sampler={"name": "tpe", **raw.get("sampler", {})},
        pruner={"name": "none", **raw.get("pruner", {})},
        design=parse_design(raw, source),
        source=source,
    )
    if spec.design.kind == "grid" and "sampler" in raw:
        raise VaesweepError(
            f"{source}: a grid study runs every configuration, so it takes no [sampler]; "
            "for a sampled search set 'explore = N' and 'confirm_top = k'"
        )
    _validate(spec, source)
    return spec


def _parse_param(name: str, raw: Any, source: str) -> ParamSpec:
    where = f"{source}: search.{name}"
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
        raise VaesweepError(f"{where}: 'type' must be int, float or categorical; got {kind!r}")
    if "choices" in raw:
        raise VaesweepError(f"{where}: 'choices' is for categorical parameters")
    low, high, step, log = raw.get("low"), raw.get("high"), raw.get("step"), raw.get("log", False)
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
    return ParamSpec(name, kind, low=low, high=high, log=log, step=step)


def _validate(spec: StudySpec, source: str) -> None:
    searched = {param.name for param in spec.search}
    for key, value in spec.fixed.items():  # each fixed setting alone first, to blame the right key
        if key in FIELD_NAMES:
            try:
                check_setting(key, value)
            except VaesweepError as err:
                raise VaesweepError(f"{source}: {err}") from None
    for param in spec.search:
        if param.name not in FIELD_NAMES or param.name == "seed":
            raise VaesweepError(f"{source}: search.{param.name} is not a training setting")
        if param.name == "val_size":
            raise VaesweepError(
                f"{source}: val_size cannot be searched: trials must share validation images"
            )
        if param.name in spec.fixed:
            raise VaesweepError(f"{source}: '{param.name}' is both searched and fixed")
        # Every choice and both range ends must make a valid config.
        values = param.choices or (param.low, param.high)
        for value in values:
            try:
                TrainConfig.from_mapping({**spec.fixed, param.name: value}, source)
            except VaesweepError as err:
                raise VaesweepError(f"{err} (in search.{param.name})") from None
    if "seed" in spec.fixed:
        raise VaesweepError(
            f"{source}: 'seed' is set per trial from --seed; remove it from [fixed]"
        )
    TrainConfig.from_mapping(dict(spec.fixed), f"{source}: fixed")

    for objective in spec.objectives:
        if objective not in OBJECTIVE_DIRECTIONS:
            raise VaesweepError(
                f"{source}: unknown objective {objective!r} (choose from "
                f"{', '.join(OBJECTIVE_DIRECTIONS)}; test metrics are never objectives)"
            )
    if len(set(spec.objectives)) != len(spec.objectives):
        raise VaesweepError(f"{source}: 'objectives' lists a metric twice")
    if "likelihood" in searched:
        scaled = [name for name in spec.objectives if name in LIKELIHOOD_SCALED]
        if scaled:
            raise VaesweepError(
                f"{source}: objective '{scaled[0]}' is on the likelihood's scale, so MSE and BCE "
                "trials cannot be compared on it; use val_mse, val_ssim or val_knn_accuracy"
            )

    sampler = spec.sampler.get("name")
    if sampler not in _SAMPLER_OPTIONS:
        raise VaesweepError(f"{source}: sampler.name must be one of {', '.join(_SAMPLER_OPTIONS)}")
    _check_options(spec.sampler, _SAMPLER_OPTIONS[sampler], f"{source}: sampler")

    try:
        _ = spec.grid  # a grid design must be discrete and of a sensible size
    except VaesweepError as err:
        raise VaesweepError(f"{source}: {err}") from None
    _validate_pruner(spec, searched, source)


def _validate_pruner(spec: StudySpec, searched: set[str], source: str) -> None:
    """Pruning stops trials early, so only explorations may be pruned, and only where trials are
    compared at the same epoch on the objective's own scale."""
    pruner = spec.pruner.get("name")
    if pruner not in _PRUNER_OPTIONS:
        raise VaesweepError(f"{source}: pruner.name must be one of {', '.join(_PRUNER_OPTIONS)}")
    if "metric" in spec.pruner:
        raise VaesweepError(
            f"{source}: pruner.metric is no longer set: a pruner compares the objective's own "
            f"per-epoch value ({', '.join(f'{k} -> {v}' for k, v in PER_EPOCH.items())})"
        )
    if pruner == "none":
        _check_options(spec.pruner, set(), f"{source}: pruner")
        return
    _check_options(spec.pruner, _PRUNER_OPTIONS[pruner], f"{source}: pruner")
    refusal = None
    if spec.design.kind == "grid":
        refusal = "a grid study compares every configuration at its full budget; remove [pruner]"
    elif len(spec.objectives) > 1:
        refusal = 'Optuna cannot prune multi-objective studies; set pruner.name = "none"'
    elif spec.objectives[0] not in PER_EPOCH:
        refusal = (
            f"objective '{spec.objectives[0]}' is not computed per epoch, so a pruner cannot "
            f"compare it (prunable objectives: {', '.join(PER_EPOCH)}); remove [pruner]"
        )
    elif "warmup_epochs" in searched:
        refusal = (
            "warmup_epochs is searched, and trials with longer warm-ups become prunable at later "
            "epochs, so pruning would favour them; remove [pruner]"
        )
    if refusal:
        raise VaesweepError(f"{source}: {refusal}")


def _check_options(table: Mapping[str, Any], allowed: set[str], where: str) -> None:
    for key, value in table.items():
        if key in ("name", "metric"):
            continue
        if key not in allowed:
            raise VaesweepError(f"{where}: unknown option '{key}'")
        least = 2 if key == "population_size" else 1  # NSGA-II needs two parents
        if not isinstance(value, int) or isinstance(value, bool) or value < least:
            raise VaesweepError(f"{where}: '{key}' must be an integer of at least {least}")


def parse_overrides(items: tuple[str, ...]) -> dict[str, Any]:
    return dict(parse_override(item) for item in items)
