"""The statistics behind every answer, as one public function anyone can audit from outside.

`compare` is what `vaesweep run`, `report`, `compare` and the tests all call (through
`pairwise.compare`). See docs/studies.md, "The answer's statistics", for what it assumes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import pandas as pd

from vaesweep.stats.pairwise import ALPHA, Comparison, Difference, Looks
from vaesweep.stats.pairwise import compare as compare_samples

__all__ = ["ALPHA", "Comparison", "Difference", "Looks", "compare", "compare_samples"]

VERDICTS = ("best", "worse", "equivalent", "undecided", "no difference")
COLUMNS = ["objective", "n", "failed", "mean", "diff", "diff_low", "diff_high", "verdict"]


def compare(
    table: pd.DataFrame,
    by: str | Sequence[str],
    objective: str | Sequence[str],
    direction: str | Sequence[str] = "maximize",
    block: str | None = "replicate",
    margin: float | Mapping[str, float] | None = None,
    max_replicates: int | None = None,
    looks: Sequence[int] = (),
) -> pd.DataFrame:
    """Each configuration against the best, per objective; all objectives are one family.

    `table`: one row per trial that trained under the compared protocol: the `by` columns (a
    configuration is one combination of their values), the objective column(s), and `block`
    (the seed block; None for unblocked designs). A NaN objective is a failed trial: it counts
    as its block's worst outcome. `margin` (one, or per objective) makes "equivalent" possible.
    `max_replicates`: the most blocks the study may grow to, with `looks` the block counts at
    which earlier answers were shown; None analyses this table as one fixed-size look.

    Returns one row per configuration and objective: the `by` columns, `objective`, `n`,
    `failed`, `mean` (a failure counted as its block's worst), `diff` (minus the best) with its
    simultaneous interval `diff_low`, `diff_high`, and `verdict`: "best" (the best mean, the
    reference), "worse" (the only claim that a configuration differs), "equivalent" (within
    ±margin), "undecided" (neither, with a margin), "no difference" (not separated, no margin).
    Rows with fewer than 2 blocks (or replicates) to compare have NaN differences and no verdict.
    """
    by = [by] if isinstance(by, str) else list(by)
    objectives = [objective] if isinstance(objective, str) else list(objective)
    directions = [direction] * len(objectives) if isinstance(direction, str) else list(direction)
    _check(table, by, objectives, directions, block)
    margins = margin if isinstance(margin, Mapping) else dict.fromkeys(objectives, margin)
    keys = table[by].apply(tuple, axis=1)
    order = [str(k) for k in sorted(set(keys), key=_natural)]
    labelled = table.assign(_config=keys.map(str))
    firsts = dict(zip(labelled["_config"], keys, strict=False))
    rows = []
    for name, way in zip(objectives, directions, strict=True):
        samples = {
            config: dict(
                zip(
                    group[block] if block else range(len(group)),
                    group[name].astype(float),
                    strict=True,
                )
            )
            for config, group in labelled.groupby("_config", sort=False)
        }
        found = compare_samples(
            samples,
            order,
            way,
            block is not None,
            margins.get(name),
            len(objectives),
            Looks(tuple(looks), max_replicates),
        )
        rows += [dict(zip(by, firsts[c], strict=True)) | _row(found, c, name) for c in order]
    return pd.DataFrame(rows, columns=[*by, *COLUMNS])


def _row(found: Comparison | None, config: str, objective: str) -> dict[str, object]:
    if found is None:
        return {"objective": objective} | dict.fromkeys(COLUMNS[1:], math.nan) | {"verdict": None}
    row = {
        "objective": objective,
        "n": found.counts[config],
        "failed": found.failures[config],
        "mean": found.means[config],
    }
    if config == found.best:
        return row | {"diff": 0.0, "diff_low": 0.0, "diff_high": 0.0, "verdict": "best"}
    d = next(d for d in found.differences if d.config == config)
    return row | {"diff": d.diff, "diff_low": d.low, "diff_high": d.high, "verdict": d.verdict}


def _natural(key: tuple) -> tuple:
    """Numbers ascending, then text."""
    return tuple((0, v, "") if isinstance(v, int | float) else (1, 0, str(v)) for v in key)


def _check(
    table: pd.DataFrame, by: list[str], objectives: list[str], directions: list[str], block
) -> None:
    missing = [c for c in [*by, *objectives, *([block] if block else [])] if c not in table]
    if missing:
        raise ValueError(f"table has no column {', '.join(map(repr, missing))}")
    if len(directions) != len(objectives):
        raise ValueError("give one direction, or one per objective")
    if bad := [d for d in directions if d not in ("maximize", "minimize")]:
        raise ValueError(f"direction must be 'maximize' or 'minimize'; got {bad[0]!r}")
    if block and table.duplicated([*by, block]).any():
        raise ValueError(f"a configuration has two rows in one {block!r}: one trial a block")
