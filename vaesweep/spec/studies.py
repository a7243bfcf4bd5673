"""Study definitions: read `studies/*.toml`, validate them, map sampled parameters to a TrainConfig.

A study file holds a one-line `description`, the `objectives` (validation metrics; each one's
direction is implied), a `[search]` table of parameters, the `[fixed]` settings, and optional
`[sampler]` and `[pruner]` tables, and a `[nuisance]` table of settings tuned for each searched
configuration. docs/studies.md describes the format.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import itertools
import json
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna

from vaesweep.errors import VaesweepError, did_you_mean, shown
from vaesweep.spec.config import FIELD_NAMES, TrainConfig, parse_override
from vaesweep.spec.design import MAX_GRID, Design, parse_design
from vaesweep.spec.metric_names import (
    LIKELIHOOD_SCALED,
    OBJECTIVE_DIRECTIONS,
    PER_EPOCH,
    Direction,
)
from vaesweep.spec.search_space import ParamSpec, parse_param
from vaesweep.stats.pairwise import ALPHA
from vaesweep.stats.power import detectable
from vaesweep.stats.sequential import look_level

# The shipped studies are package data, so an installed wheel has them too; the repository's
# top-level studies/ is a link to this folder, one set of files for both.
STUDIES_DIR = Path(str(importlib.resources.files("vaesweep.spec") / "study_files"))


_SAMPLER_OPTIONS = {"tpe": {"n_startup_trials"}, "random": set(), "nsga2": {"population_size"}}
_PRUNER_OPTIONS = {
    "median": {"n_startup_trials"},
    "hyperband": {"min_resource", "reduction_factor"},
    "none": set(),
}
# Settings every trial of a study shares, and why.
UNSEARCHABLE = {
    "val_size": "trials must share validation images",
    "precision": "it is decided once per run, for every trial; set it in [fixed]",
}
MAX_CORNERS = 4096
_DESIGN_KEYS = {
    "replicates",
    "explore",
    "confirm_top",
    "blocked",
    "max_blocks",
    "until_decided",
    "tune",
    "tune_replicates",
}
# How the answer is read, not what is trained: outside the stored definition.
_ANALYSIS_KEYS = {"equivalence", "noise", "note"}
# How trials are trained, not what: outside the stored definition too, so a resumed run may
# change it.
_RUN_KEYS = {"population"}
_TOP_LEVEL_KEYS = {"description", "objectives", "search", "nuisance", "fixed", "sampler", "pruner"}
_TOP_LEVEL_KEYS |= _DESIGN_KEYS | _ANALYSIS_KEYS | _RUN_KEYS
MAX_POPULATION = 64


@dataclass(frozen=True)
class StudySpec:
    """A study, validated once when loaded: every trial's config is `base` with the trial's
    searched values and seed put in (`config_for`)."""

    name: str
    description: str
    objectives: tuple[str, ...]
    search: tuple[ParamSpec, ...]
    base: TrainConfig  # TrainConfig's defaults with the study's fixed settings applied
    fixed_keys: tuple[str, ...] = ()  # the settings the study sets itself, sorted
    sampler: Mapping[str, Any] = field(default_factory=lambda: {"name": "tpe"})
    pruner: Mapping[str, Any] = field(default_factory=lambda: {"name": "none"})
    design: Design = field(default_factory=Design)
    # objective -> margin within which a configuration counts as equivalent to the best
    equivalence: Mapping[str, float] = field(default_factory=dict)
    # objective -> residual SD measured here on this design: what it can detect, before it runs
    noise: Mapping[str, float] = field(default_factory=dict)
    # trials a worker trains at once as one network, or "auto" (decided per run by measuring)
    population: int | str = "auto"
    source: str = ""
    # what the page says under the question: a measurement the answer depends on, say
    note: str = ""
    # settings tuned for each configuration (a tuned grid: `tune` values of each), not compared
    nuisance: tuple[ParamSpec, ...] = ()
    # (setting, the file's value, this run's) for each fixed setting `--set` changed: the
    # description and note were written for the file's
    overridden: tuple[tuple[str, Any, Any], ...] = ()

    @property
    def fixed(self) -> dict[str, Any]:
        """The settings the study fixes, as the file (and any --set) wrote them."""
        return {key: getattr(self.base, key) for key in self.fixed_keys}

    @property
    def directions(self) -> list[Direction]:
        return [OBJECTIVE_DIRECTIONS[name] for name in self.objectives]

    @property
    def prune_metric(self) -> str | None:
        """The per-epoch value the pruner compares: the objective's own."""
        return None if self.pruner["name"] == "none" else PER_EPOCH[self.objectives[0]]

    def detects(self, blocks: int | None = None) -> dict[str, float]:
        """Per objective with a measured `noise`: how much better than every other one a
        configuration must be for the shipped procedure to name it the best with 80% power at
        the design's look, or at `blocks` after a look at each block count before it (a study
        grown until decided); empty where fewer than 2 configurations or replicates."""
        k, design = self.compared, self.design
        if k < 2 or design.replicates < 2:
            return {}
        n = blocks or design.replicates
        looked = tuple(range(design.replicates, n))
        level = look_level(n, looked, design.most_blocks, ALPHA) / len(self.objectives)
        return {
            name: detectable(sd, k, n, design.shares_seeds, level)["winner"]
            for name, sd in self.noise.items()
        }

    def beta_warning(self) -> str | None:
        """A warning when some trial's epochs end before its KL warm-up does: such a trial never
        trains the beta = 1 ELBO it is scored on. It says which trials, and what to set."""
        epochs, warmups, searched = self.base.epochs, [self.base.warmup_epochs], False
        for param in self.search:
            if param.name == "warmup_epochs":
                warmups, searched = list(param.extremes), True
        longest = max(warmups)
        if longest < epochs:
            return None
        if not searched:
            return (
                f"warning: warmup_epochs = {longest} with epochs = {epochs}: beta never reaches 1, "
                "so no trial trains the ELBO it reports; add --set warmup_epochs=0 for a quick "
                f"look, or train more than {longest} epochs"
            )
        which = "in any trial" if min(warmups) >= epochs else f"where warmup_epochs >= {epochs}"
        return (
            f"warning: warmup_epochs up to {longest} with epochs = {epochs}: beta never reaches 1 "
            f"{which}, so those trials never train the ELBO they report; train more than "
            f"{longest} epochs to cover every warm-up"
        )

    @property
    def compared(self) -> int:
        """How many configurations the answer compares."""
        return self.design.compared(self.search)

    @property
    def grid(self) -> list[dict[str, Any]] | None:
        """Every configuration of a grid design; None for a search design."""
        return self.design.configurations(self.search)

    @property
    def nuisance_grid(self) -> list[dict[str, Any]]:
        """The nuisance values every configuration is tuned over: each parameter's `tune`
        points, combined; empty for an untuned study."""
        if not self.nuisance:
            return []
        axes = [param.points(self.design.tune) for param in self.nuisance]
        names = [param.name for param in self.nuisance]
        return [dict(zip(names, values, strict=True)) for values in itertools.product(*axes)]

    @property
    def varied(self) -> tuple[ParamSpec, ...]:
        """Every setting a trial draws or is given: the searched and the nuisance ones."""
        return self.search + self.nuisance

    def design_summary(self, trials: bool = True) -> str:
        """The design in words; `trials`: with the `--trials` that completes it."""
        grid = self.grid
        return self.design.describe(len(grid) if grid else 0, len(self.nuisance_grid), trials)

    def trials_at(self, blocks: int | None = None) -> int:
        """The `--trials` that completes the design (a growing study's first look), or the
        design with `blocks` seed blocks (where a growing study may stop)."""
        grid = self.grid
        return self.design.trials_to_complete(
            len(grid) if grid else 0, len(self.nuisance_grid), blocks
        )

    def corners(self) -> list[dict[str, Any]]:
        """Every combination of the searched values' extremes (both ends of each range, every
        choice): valid there, valid for any combination a trial may draw, since each rule
        bounds a setting from one side (`_check_search`, and the data's sizes at a run's start).
        Beyond MAX_CORNERS combinations, each parameter's extremes alone."""
        axes = [param.extremes for param in self.varied]
        if math.prod(len(axis) for axis in axes) > MAX_CORNERS:
            return [{p.name: v} for p in self.varied for v in p.extremes]
        names = [param.name for param in self.varied]
        return [dict(zip(names, values, strict=True)) for values in itertools.product(*axes)]

    def suggest(self, trial: optuna.Trial) -> dict[str, Any]:
        return {param.name: param.suggest(trial) for param in self.varied}

    def config_for(self, params: Mapping[str, Any], seed: int) -> TrainConfig:
        """One trial's config; its values were checked at load (`_check_search`)."""
        return dataclasses.replace(self.base, **params, seed=seed)

    def with_overrides(self, overrides: Mapping[str, Any]) -> StudySpec:
        """The same study with fixed settings replaced, validated like the file."""
        searched = {param.name for param in self.search}
        tuned = {param.name for param in self.nuisance}
        for key in overrides:
            if key in searched:
                raise VaesweepError(f"--set {key}: '{key}' is searched by study '{self.name}'")
            if key in tuned:
                raise VaesweepError(
                    f"--set {key}: '{key}' is tuned for each configuration by study '{self.name}'"
                )
            if key not in FIELD_NAMES or key == "seed":
                known = [n for n in FIELD_NAMES if n != "seed"]
                raise VaesweepError(
                    f"--set {key}: unknown setting ({did_you_mean(key, known)}known: "
                    + ", ".join(known)
                    + ")"
                )
        base = TrainConfig.from_mapping({**self.fixed, **overrides}, "--set")
        was = dict((key, old) for key, old, _ in self.overridden)
        changed = {k: getattr(self.base, k) for k in overrides} | was
        spec = dataclasses.replace(
            self,
            base=base,
            fixed_keys=tuple(sorted({*self.fixed_keys, *overrides})),
            overridden=tuple(
                (key, old, getattr(base, key))
                for key, old in sorted(changed.items())
                if getattr(base, key) != old
            ),
        )
        _check_search(spec, "--set")
        return spec

    def definition(self) -> dict[str, Any]:
        """What makes two runs the same study: search space, nuisance space (where tuned),
        fixed settings, objectives and design (replicates, exploration, confirmation, tuning)."""
        definition: dict[str, Any] = {
            "search": [dataclasses.asdict(param) for param in self.search],
            "fixed": dict(sorted(self.fixed.items())),
            "objectives": list(self.objectives),
            "design": self.design.stored(),
        }
        if self.nuisance:  # only where tuned, so a study stored before tuning resumes as itself
            definition["nuisance"] = [dataclasses.asdict(param) for param in self.nuisance]
        return json.loads(json.dumps(definition))

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
            studies = available_studies()
            raise VaesweepError(
                f"unknown study {shown(name_or_path)} ({did_you_mean(name_or_path, studies)}"
                f"available: {', '.join(studies)}; or give the path of a .toml file)"
            )
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise VaesweepError(f"{path}: no such study file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise VaesweepError(f"{path}: cannot read ({err})") from None
    except tomllib.TOMLDecodeError as err:
        raise VaesweepError(f"{path}: not valid TOML ({err})") from None
    except RecursionError:
        raise VaesweepError(f"{path}: nested too deeply to read (arrays or tables)") from None
    try:
        return parse_study(raw, name=path.stem, source=str(path))
    except RecursionError:  # a value nested too deeply to check or to show
        raise VaesweepError(f"{path}: a value is nested too deeply to check") from None


def parse_study(raw: Mapping[str, Any], name: str, source: str) -> StudySpec:
    """A study file's table -> its StudySpec, every part checked (each error names `source`)."""
    _check_shape(raw, source)
    objectives, fixed = raw["objectives"], raw.get("fixed", {})
    spec = StudySpec(
        name=name,
        description=raw["description"].strip(),
        objectives=tuple(objectives),
        search=tuple(parse_param(key, value, source) for key, value in raw["search"].items()),
        base=TrainConfig.from_mapping(fixed, source),
        fixed_keys=tuple(sorted(fixed)),
        sampler={"name": "tpe", **raw.get("sampler", {})},
        pruner={"name": "none", **raw.get("pruner", {})},
        design=parse_design(raw, source),
        equivalence=_per_objective(raw, "equivalence", objectives, source),
        noise=_per_objective(raw, "noise", objectives, source),
        population=check_population(raw.get("population", "auto"), source),
        source=source,
        note=raw.get("note", "").strip(),
        nuisance=tuple(
            parse_param(key, value, source, "nuisance")
            for key, value in raw.get("nuisance", {}).items()
        ),
    )
    if not spec.design.samples and "sampler" in raw:
        raise VaesweepError(
            f"{source}: a grid study runs every configuration, so it takes no [sampler]; "
            "for a sampled search set 'explore = N' and 'confirm_top = k'"
        )
    _validate(spec, source)
    return spec


def _check_shape(raw: Mapping[str, Any], source: str) -> None:
    """The file's keys and the types of its top-level values."""
    unknown = sorted(set(raw) - _TOP_LEVEL_KEYS)
    if unknown:
        raise VaesweepError(f"{source}: unknown key '{unknown[0]}'")
    for required in ("description", "objectives", "search"):
        if required not in raw:
            raise VaesweepError(f"{source}: missing '{required}'")
    if raw["search"] == {}:
        raise VaesweepError(
            f"{source}: [search] lists no setting, so there is nothing to compare; search at "
            'least one, e.g. latent_dim = { type = "categorical", choices = [2, 8] }'
        )
    description = raw["description"]
    if not isinstance(description, str) or not description.strip():
        raise VaesweepError(f"{source}: 'description' must be a non-empty string")
    note = raw.get("note", "")
    if not isinstance(note, str):
        raise VaesweepError(f"{source}: 'note' must be a string; got {shown(note)}")
    objectives = raw["objectives"]
    if (
        not isinstance(objectives, list)
        or not objectives
        or not all(isinstance(o, str) for o in objectives)
    ):
        raise VaesweepError(f"{source}: 'objectives' must be a non-empty list of metric names")
    for key in ("search", "nuisance", "fixed", "sampler", "pruner"):
        if not isinstance(raw.get(key, {}), dict):
            raise VaesweepError(f"{source}: '{key}' must be a table")
    for key in ("sampler", "pruner"):
        if not isinstance(raw.get(key, {}).get("name", ""), str):
            raise VaesweepError(f'{source}: {key}.name must be a name such as "tpe"')
    if "seed" in raw.get("fixed", {}):
        raise VaesweepError(
            f"{source}: 'seed' is set per trial from --seed; remove it from [fixed]"
        )


def check_population(value: Any, where: str) -> int | str:
    """A population size (a study file's `population`, or --population): a whole number from 1
    to MAX_POPULATION, or "auto"."""
    if value == "auto":
        return value
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_POPULATION:
        return value
    raise VaesweepError(
        f"{where}: population must be a whole number from 1 to {MAX_POPULATION} or auto; "
        f"got {shown(value)}"
    )


def _per_objective(
    raw: Mapping[str, Any], key: str, objectives: list[str], source: str
) -> dict[str, float]:
    """A positive number per objective: a table by objective name, or one number for a study
    with a single objective."""
    value = raw.get(key, {})
    if not isinstance(value, dict):
        if len(objectives) > 1:
            raise VaesweepError(
                f"{source}: '{key}' must be a table by objective, e.g. {key} = "
                f"{{ {objectives[0]} = 0.01 }}, since the study has several objectives"
            )
        value = {objectives[0]: value}
    for name, number in value.items():
        if name not in objectives:
            raise VaesweepError(f"{source}: {key}.{name} is not one of the study's objectives")
        ok = isinstance(number, int | float) and not isinstance(number, bool)
        if not ok or not math.isfinite(number) or number <= 0:
            raise VaesweepError(
                f"{source}: {key}.{name} must be a positive number; got {shown(number)}"
            )
    return {name: float(number) for name, number in value.items()}


def _check_search(spec: StudySpec, source: str) -> None:
    """Every searched (or tuned) value must make a valid config with the study's fixed
    settings."""
    searched = {param.name for param in spec.search}
    for table, param in [("search", p) for p in spec.search] + [
        ("nuisance", p) for p in spec.nuisance
    ]:
        if param.name not in FIELD_NAMES or param.name == "seed":
            raise VaesweepError(f"{source}: {table}.{param.name} is not a training setting")
        if param.name in UNSEARCHABLE:
            raise VaesweepError(
                f"{source}: {param.name} cannot be searched: {UNSEARCHABLE[param.name]}"
            )
        if param.name in spec.fixed_keys:
            role = "searched" if table == "search" else "a nuisance"
            raise VaesweepError(f"{source}: '{param.name}' is both {role} and fixed")
        if table == "nuisance" and param.name in searched:
            raise VaesweepError(
                f"{source}: '{param.name}' is both searched (compared) and a nuisance (tuned "
                "for each configuration); keep it in one of the two"
            )
        for value in param.extremes:  # both ends of a range, or every choice
            try:
                dataclasses.replace(spec.base, **{param.name: value})
            except VaesweepError as err:
                raise VaesweepError(f"{source}: {err} (in {table}.{param.name})") from None
    for corner in spec.corners():  # rules across settings, e.g. min_lr <= lr, both searched
        try:
            config = dataclasses.replace(spec.base, **corner)
        except VaesweepError as err:
            values = ", ".join(f"{k} = {v}" for k, v in corner.items())
            raise VaesweepError(f"{source}: {err} (searched together: {values})") from None
        if config.iwae_samples == 0 and "val_nll" in spec.objectives:
            raise VaesweepError(
                f"{source}: objective 'val_nll' needs 'iwae_samples' of at least 1 "
                "(0 skips the likelihood)"
            )


def _validate(spec: StudySpec, source: str) -> None:
    searched = {param.name for param in spec.search}
    _check_search(spec, source)
    for objective in spec.objectives:
        if objective not in OBJECTIVE_DIRECTIONS:
            raise VaesweepError(
                f"{source}: unknown objective {shown(objective)} (choose from "
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
        grid = spec.grid  # a grid design must be discrete and of a sensible size
    except VaesweepError as err:
        raise VaesweepError(f"{source}: {err}") from None
    tuning = len(grid or []) * len(spec.nuisance_grid)
    if tuning > MAX_GRID:
        raise VaesweepError(
            f"{source}: tuning every configuration at every nuisance value takes {tuning:,} "
            f"trials (at most {MAX_GRID:,}); lower 'tune' or tune fewer settings"
        )
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
    if not spec.design.samples:
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
        # NSGA-II needs two parents; Hyperband divides by log(reduction_factor).
        least = 2 if key in ("population_size", "reduction_factor") else 1
        if not isinstance(value, int) or isinstance(value, bool) or value < least:
            raise VaesweepError(f"{where}: '{key}' must be an integer of at least {least}")


def parse_overrides(items: tuple[str, ...]) -> dict[str, Any]:
    return dict(parse_override(item) for item in items)
