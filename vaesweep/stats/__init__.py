"""The statistics behind every answer, as one public function anyone can audit from outside.

`compare` is what `vaesweep run`, `report`, `compare` and the tests all call (through
`verdicts.compare`, on one objective's samples). See docs/studies.md, "The answer's
statistics", for what it assumes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from vaesweep.stats.pairwise import ALPHA
from vaesweep.stats.verdicts import VERDICT_COLUMNS, Comparison, Difference, Looks, close
from vaesweep.stats.verdicts import compare as compare_samples

__all__ = ["ALPHA", "Comparison", "Difference", "Looks", "close", "compare", "compare_samples"]

VERDICTS = ("best", "worse", "equivalent", "undecided", "no difference")
COLUMNS = ["objective", "n", "failed", "mean", *VERDICT_COLUMNS]


def compare(
    table: pd.DataFrame,
    by: str | Sequence[str],
    objective: str | Sequence[str],
    direction: str | Sequence[str] = "maximize",
    block: str | None = "replicate",
    margin: float | Mapping[str, float] | None = None,
    max_blocks: int | None = None,
    looks: Sequence[int] = (),
) -> pd.DataFrame:
    """Which configurations are worse, which may be the best, which is shown best, per
    objective; all objectives are one family sharing the 5%.

    `table`: one row per trial that trained under the compared protocol: the `by` columns (a
    configuration is one combination of their values), the objective column(s), and `block`
    (the seed block; None for unblocked designs). A NaN objective is a failed trial: it ranks
    below every completed trial of its block. `margin` (one, or per objective) makes
    "equivalent" possible. `max_blocks`: the most blocks the study may grow to, with
    `looks` the block counts at which earlier answers were shown; None analyses this table as
    one fixed-size look.

    Returns one row per configuration and objective: the `by` columns, `objective`, `n`,
    `failed`, `mean` (failures scored as ranked last), `diff` (minus the best mean among the
    other configurations; the highest mean's is its lead) with MCB's simultaneous interval
    `diff_low`, `diff_high`, `p_worse` (the closed test's adjusted p-value that another
    configuration is better), `may_be_best` (in the 95% confidence set for the best) and
    `verdict`: "best" (shown better than every other), "worse" (shown worse than another),
    "equivalent" (within the margin of the best, whichever it is), "undecided" (neither, with a
    margin), "no difference" (neither, without one). Rows with fewer than 2 blocks (or
    replicates) to compare have NaN columns and no verdict. Raises ValueError, naming the column
    or argument, for what it cannot answer.
    """
    by = [by] if isinstance(by, str) else list(by)
    objectives = [objective] if isinstance(objective, str) else list(objective)
    directions = [direction] * len(objectives) if isinstance(direction, str) else list(direction)
    margins = margin if isinstance(margin, Mapping) else dict.fromkeys(objectives, margin)
    check_table(table, by, objectives, directions, block)
    check_settings(margins, max_blocks, looks)
    keys = table[by].apply(tuple, axis=1)
    order = [str(k) for k in sorted(set(keys), key=_natural)]
    labelled = table.assign(_config=keys.map(str))
    firsts = dict(zip(labelled["_config"], keys, strict=False))
    looked = Looks(tuple(looks), max_blocks)
    found = [
        compare_samples(
            _samples(labelled, name, block),
            order,
            way,
            block is not None,
            margins.get(name),
            len(objectives),
            looked,
        )
        for name, way in zip(objectives, directions, strict=True)
    ]
    close(found)  # the closed test over every objective's configurations at once
    rows = [
        dict(zip(by, firsts[c], strict=True)) | _row(one, c, name)
        for one, name in zip(found, objectives, strict=True)
        for c in order
    ]
    return pd.DataFrame(rows, columns=[*by, *COLUMNS])


def _samples(labelled: pd.DataFrame, name: str, block: str | None) -> dict[str, dict]:
    """One objective's values per configuration, keyed by block (or by replicate)."""
    return {
        config: dict(zip(group[block] if block else range(len(group)), group[name], strict=True))
        for config, group in labelled.groupby("_config", sort=False)
    }


def _row(found: Comparison | None, config: str, objective: str) -> dict[str, object]:
    if found is None:
        return {"objective": objective} | dict.fromkeys(COLUMNS[1:], math.nan) | {"verdict": None}
    d = next(d for d in found.entries if d.config == config)
    return {
        "objective": objective,
        "n": found.counts[config],
        "failed": found.failures[config],
        "mean": found.means[config],
    } | d.columns()


def _natural(key: tuple) -> tuple:
    """Numbers ascending, then text."""
    return tuple((0, v, "") if isinstance(v, int | float) else (1, 0, str(v)) for v in key)


def check_table(
    table: pd.DataFrame, by: list[str], objectives: list[str], directions: list[str], block
) -> None:
    """What the comparison cannot answer, named: a missing column, a direction, a NaN
    configuration or block, two trials in one block, an infinite or overflowing value."""
    missing = [c for c in [*by, *objectives, *([block] if block else [])] if c not in table]
    if missing:
        raise ValueError(f"table has no column {', '.join(map(repr, missing))}")
    if len(directions) != len(objectives):
        raise ValueError("give one direction, or one per objective")
    if bad := [d for d in directions if d not in ("maximize", "minimize")]:
        raise ValueError(f"direction must be 'maximize' or 'minimize'; got {bad[0]!r}")
    for column in [*by, *([block] if block else [])]:
        if table[column].isna().any():
            raise ValueError(f"column {column!r} has a missing (NaN) value: name every row's")
    if block and table.duplicated([*by, block]).any():
        raise ValueError(f"a configuration has two rows in one {block!r}: one trial a block")
    for name in objectives:
        try:
            values = pd.to_numeric(table[name]).astype(float).to_numpy()
        except (TypeError, ValueError):
            raise ValueError(f"column {name!r} is not numeric") from None
        if np.isinf(values).any():
            raise ValueError(f"column {name!r} has an infinite value: NaN marks a failed trial")
        with np.errstate(over="ignore"):
            if not np.isfinite(np.nansum(np.abs(values)) * 4):
                raise ValueError(f"column {name!r} has values too large to average (overflow)")


def check_settings(
    margins: Mapping[str, float | None], max_blocks: int | None, looks: Sequence[int]
) -> None:
    for name, value in margins.items():
        if value is not None and not (isinstance(value, int | float) and 0 < value < math.inf):
            raise ValueError(f"margin for {name!r} must be a positive number; got {value!r}")
    if max_blocks is not None and (
        not isinstance(max_blocks, int | np.integer)
        or isinstance(max_blocks, bool)
        or max_blocks < 2
    ):
        raise ValueError(f"max_blocks must be a whole number >= 2; got {max_blocks!r}")
    if looks and max_blocks is None:
        raise ValueError("looks need max_blocks: the blocks the study may grow to")
    for n in looks:
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or not 1 <= n:
            raise ValueError(f"looks are earlier looks' block counts (whole numbers >= 1): {n!r}")
        if max_blocks is not None and n > max_blocks:
            raise ValueError(f"a look at {n} blocks is past max_blocks = {max_blocks}")
