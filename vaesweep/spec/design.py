"""A study's experimental design: which configuration and replicate each trial trains.

Two designs, chosen by the study file:
- grid (no `explore`): every configuration of a small discrete space, `replicates` times, in
  replicate-major order (replicate 0 of every configuration before replicate 1 of any), so an
  interrupted run stays balanced. Runs past the design add further replicates in the same order.
- search (`explore = N`, `confirm_top = k`): the study's sampler explores N trials, then the k best
  configurations among the explorations that completed their full budget are re-run with
  `replicates` fresh seeds. The answer uses the confirmation runs only, free of the selection
  bias of picking the best explorations.
- tuned grid (`[nuisance]` and `tune = n`): every configuration of the grid is first trained at
  each point of its nuisance grid (n values of each nuisance parameter: the tuning trials, in
  `tune_replicates` seed blocks), then confirmed at its own best point (the best mean over the
  tuning blocks) with `replicates` fresh seed blocks. The answer compares the confirmations, each
  configuration at its own best nuisance values.

Replicates are blocks (`blocked`, the default): replicate r of every configuration of a grid or
of a confirmation trains with one seed, from --seed, the phase and r alone, so the configurations
of a block share their initial weights (layer by layer, wherever the shapes agree), batch order
and sampling noise, and the answer compares them within blocks (a randomized complete block
design). Unblocked designs, and explorations, seed each configuration apart. Never the trial
number or the worker: the same design gives the same trials however it is run.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from vaesweep.errors import VaesweepError, shown

MAX_GRID = 10_000


class Phase(enum.StrEnum):
    """Where a design placed a trial; stored (and compared) as its plain string."""

    GRID = "grid"
    EXPLORE = "explore"
    TUNE = "tune"
    CONFIRM = "confirm"

    @property
    def sampled(self) -> bool:
        """The sampler chose the trial's configuration: its place is not fixed, it may be
        pruned, and it is seeded by its configuration alone."""
        return self is Phase.EXPLORE


GRID, EXPLORE, TUNE, CONFIRM = Phase.GRID, Phase.EXPLORE, Phase.TUNE, Phase.CONFIRM


@dataclass(frozen=True)
class Design:
    replicates: int = 1
    explore: int = 0  # 0: a grid design
    confirm_top: int = 0
    # Replicate r of every configuration shares seed r (a block). None: the file did not say,
    # which is blocked.
    blocked: bool | None = None
    # The most blocks the study may grow to: the answer spends its error rate over looks up to
    # it (None: twice `replicates`). Stored, so it cannot change after an answer was shown.
    max_blocks: int | None = None
    until_decided: bool = False  # a run adds blocks until every configuration is decided
    tune: int = 0  # values of each nuisance parameter tried per configuration (0: untuned)
    tune_replicates: int = 1  # seed blocks of tuning trials, whose mean chooses the best point

    @property
    def most_blocks(self) -> int:
        return self.max_blocks or 2 * self.replicates

    @classmethod
    def from_stored(cls, stored: Mapping[str, Any]) -> Design:
        """A design as a storage holds it (`stored`)."""
        return cls(**stored)

    @property
    def shares_seeds(self) -> bool:
        return self.blocked is not False

    def stored(self) -> dict[str, Any]:
        """What the storage keeps: every field, `blocked` resolved."""
        return {**dataclasses.asdict(self), "blocked": self.shares_seeds}

    def seed(self, base_seed: int, params: Mapping[str, Any], phase: str, replicate: int) -> int:
        """A trial's seed: its block's (phase, replicate) in a blocked grid or confirmation;
        otherwise its configuration's, phase and replicate."""
        key = f"{phase}|{replicate}"
        if not self.shares_seeds or Phase(phase).sampled:
            key = f"{config_key(params)}|{key}"
        digest = hashlib.sha256(key.encode()).digest()
        return (int.from_bytes(digest[:4], "big") + base_seed) % 2**32

    @property
    def samples(self) -> bool:
        """Whether the study's sampler chooses the configurations (a search: it then takes a
        [sampler] and may take a [pruner]); a grid lists every one."""
        return self.explore > 0

    def configurations(self, search: Sequence[Any]) -> list[dict[str, Any]] | None:
        """Every configuration of a grid over `search`; None for a search, whose sampler
        chooses them."""
        return None if self.samples else grid_values(search)

    def compared(self, search: Sequence[Any]) -> int:
        """How many configurations the answer compares."""
        grid = self.configurations(search)
        return self.confirm_top if grid is None else len(grid)

    @property
    def answer_phase(self) -> Phase:
        """The phase whose full-budget trials the study's answer compares."""
        if self.tune:
            return CONFIRM
        if not self.samples:
            return GRID
        return CONFIRM if self.confirm_top else EXPLORE

    def trials_to_complete(self, grid_size: int, tuning: int = 0, blocks: int | None = None) -> int:
        """Trials the design places; `tuning`: the points of a tuned grid's nuisance grid;
        `blocks`: with that many seed blocks (replicates) instead of the design's own."""
        replicates = blocks or self.replicates
        if not self.samples:
            return grid_size * (tuning * self.tune_replicates + replicates)
        return self.explore + self.confirm_top * replicates

    def describe(self, grid_size: int, tuning: int = 0, trials: bool = True) -> str:
        """The design in words; `trials`: with the `--trials` that completes it."""
        total = self.trials_to_complete(grid_size, tuning)
        blocks = "seed blocks" if self.shares_seeds else "independent replicates"
        if tuning:
            shape = (
                f"grid {grid_size}, each tuned over {tuning} nuisance values"
                + (f" × {self.tune_replicates} {blocks}" if self.tune_replicates > 1 else "")
                + f", then confirmed at its best × {self.replicates} {blocks}"
            )
        elif not self.samples:
            shape = f"grid {grid_size} × {self.replicates} {blocks}"
        elif self.confirm_top:
            shape = (
                f"explore {self.explore}, then top {self.confirm_top} × {self.replicates} {blocks}"
            )
        else:
            shape = f"explore {self.explore} (no confirmation: answers carry no intervals)"
        grows = f", until decided, up to {self.most_blocks}" if self.until_decided else ""
        return f"{shape}{grows}; --trials {total}" if trials else f"{shape}{grows}"


# Far beyond any study a machine could run; a typo beyond them is refused, not attempted.
_DESIGN_MAXIMA = {
    "replicates": 1000,
    "explore": 100_000,
    "confirm_top": 1000,
    "max_blocks": 1000,
    "tune": 100,
    "tune_replicates": 100,
}


def parse_design(raw: Mapping[str, Any], source: str) -> Design:
    values: dict[str, Any] = {}
    for key in ("blocked", "until_decided"):
        if key in raw:
            if not isinstance(raw[key], bool):
                raise VaesweepError(
                    f"{source}: '{key}' must be true or false; got {shown(raw[key])}"
                )
            values[key] = raw[key]
    for key in ("replicates", "explore", "confirm_top"):
        values[key] = _count(raw, key, source, least=int(key == "replicates"))
    if "tune" in raw or "nuisance" in raw or "tune_replicates" in raw:
        values["tune"] = _tune(raw, values, source)
        if "tune_replicates" in raw:
            values["tune_replicates"] = _count(raw, "tune_replicates", source, least=1)
    if "max_blocks" in raw:
        values["max_blocks"] = _count(raw, "max_blocks", source, least=2)
        if values["max_blocks"] < values["replicates"]:
            raise VaesweepError(
                f"{source}: 'max_blocks' ({values['max_blocks']}) cannot be below "
                f"'replicates' ({values['replicates']})"
            )
    if values.get("until_decided") and "max_blocks" not in values:
        raise VaesweepError(
            f"{source}: 'until_decided = true' needs 'max_blocks = B', the most replicates "
            "the run may add blocks up to"
        )
    if values["confirm_top"] and not values["explore"]:
        raise VaesweepError(
            f"{source}: 'confirm_top' re-runs the best explored configurations; "
            "it needs 'explore = N' too"
        )
    if values.get("until_decided") and values["explore"] and not values["confirm_top"]:
        raise VaesweepError(
            f"{source}: 'until_decided' adds seed blocks to a grid or a confirmation; "
            "this search has no 'confirm_top'"
        )
    if values["confirm_top"] > values["explore"]:
        raise VaesweepError(
            f"{source}: 'confirm_top' ({values['confirm_top']}) cannot exceed 'explore' "
            f"({values['explore']}): only explored configurations can be confirmed"
        )
    return Design(**values)


def _tune(raw: Mapping[str, Any], values: Mapping[str, Any], source: str) -> int:
    """`tune = n` with a [nuisance] table: a grid of configurations, each tuned first."""
    if "nuisance" not in raw or "tune" not in raw:  # tune_replicates alone too
        raise VaesweepError(
            f"{source}: a tuned study needs both a [nuisance] table (the settings tuned for each "
            "configuration) and 'tune = n' (the values of each tried)"
        )
    if values["explore"]:
        raise VaesweepError(
            f"{source}: [nuisance] tunes each configuration of a grid; a search ('explore') "
            "already samples every setting it lists: move them to [search] or drop 'explore'"
        )
    return _count(raw, "tune", source, least=2)


def _count(raw: Mapping[str, Any], key: str, source: str, least: int) -> int:
    value = raw.get(key, 1 if key == "replicates" else 0)
    if not isinstance(value, int) or isinstance(value, bool) or value < least:
        what = {0: "a non-negative integer", 1: "a positive integer"}.get(
            least, f"an integer >= {least}"
        )
        raise VaesweepError(f"{source}: '{key}' must be {what}; got {shown(value)}")
    if value > _DESIGN_MAXIMA[key]:
        raise VaesweepError(
            f"{source}: '{key}' must be at most {_DESIGN_MAXIMA[key]:,}; got {shown(value)}"
        )
    return value


def grid_values(spec_search: Sequence[Any]) -> list[dict[str, Any]]:
    """Every configuration of a discrete space, in the file's order (int ranges ascending)."""
    axes: list[Sequence[Any]] = []
    for param in spec_search:
        if param.kind == "categorical":
            axes.append(list(param.choices))
        elif param.kind == "int" and not param.log:  # a range: its size is known, not listed
            axes.append(range(int(param.low), int(param.high) + 1, int(param.step or 1)))
        else:
            raise VaesweepError(
                f"search.{param.name} is continuous: a study over it needs 'explore = N' "
                "(trials the sampler explores) and 'confirm_top = k' (configurations re-run "
                "with 'replicates' seeds)"
            )
    size = 1
    for axis in axes:
        size *= len(axis)
    if size > MAX_GRID:
        raise VaesweepError(
            f"the grid has {size} configurations (at most {MAX_GRID}); "
            "use 'explore' and 'confirm_top' instead"
        )
    names = [param.name for param in spec_search]
    return [dict(zip(names, values, strict=True)) for values in itertools.product(*axes)]


def config_key(params: Mapping[str, Any]) -> str:
    """One configuration's identity, stable across processes and runs."""
    return json.dumps(dict(sorted(params.items())), sort_keys=True)
