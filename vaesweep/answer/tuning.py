"""A tuned study's nuisance values: which each configuration was confirmed at, and whether that
value sits at the edge of its range, where a better one may lie outside it (the tuning
playbook's check)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from vaesweep.answer import effects
from vaesweep.errors import visible
from vaesweep.spec.design import CONFIRM, TUNE

if TYPE_CHECKING:
    from vaesweep.answer.stored import StoredStudy

EDGE = 0.1  # a chosen value within this fraction of either end of its range is at the edge


def scientific(data: StoredStudy) -> list[str]:
    """The settings the study compares (not the tuned ones)."""
    return [p["name"] for p in data.search]


def chosen(data: StoredStudy, table: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration confirmed: its scientific values and the nuisance values it
    was confirmed at (its best tuning point)."""
    names = scientific(data) + [p.name for p in data.tuned]
    if not data.tuned or table.empty or not set(names) <= set(table):
        return pd.DataFrame(columns=names)
    rows = table[table["phase"] == CONFIRM]
    return rows[names].drop_duplicates().reset_index(drop=True)


def tuning_rows(data: StoredStudy, table: pd.DataFrame) -> pd.DataFrame:
    """The completed tuning trials, the configuration each tuned named in `_config`."""
    if not data.tuned or table.empty:
        return table.iloc[0:0]
    rows = table[(table["phase"] == TUNE) & (table["state"] == "COMPLETE")]
    return rows.assign(_config=effects.configuration(rows, scientific(data)))


def edge_warnings(data: StoredStudy, table: pd.DataFrame) -> list[str]:
    """A warning per configuration whose chosen nuisance value lies in the outer tenth of its
    range: "lr for warmup_epochs = 4 is at the top of its range (0.008): widen the range"."""
    picks = chosen(data, table)
    if picks.empty:
        return []
    labels = effects.configuration(picks, scientific(data))
    named = f"{scientific(data)[0]} = " if len(scientific(data)) == 1 else ""
    warnings = []
    for param in data.tuned:
        for label, value in zip(labels, picks[param.name], strict=True):
            where = param.position(value)
            if where is None or EDGE < where < 1 - EDGE:
                continue
            side = "top" if where >= 1 - EDGE else "bottom"
            at = "at" if where in (0, 1) else "near"
            end = param.high if side == "top" else param.low
            warnings.append(
                f"warning: {param.name} for {visible(named + label)} is {at} the {side} of its "
                f"range ({end:g}; chosen {value:.3g}): widen the range"
            )
    return warnings
