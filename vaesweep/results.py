"""A stored study's results from Python: its trials as a pandas table, its answer and effects,
and a trial's history. `vaesweep run` (its last lines), `report` and `compare` read studies
through the same answer stage (`vaesweep.answer`).

    from vaesweep import results

    warmup = results.load("warmup")       # results/vaesweep.db, where `vaesweep run` stores it
    warmup.table                          # one row per finished trial
    print(warmup.answers[0].sentence)     # the study's answer, as the report words it
    warmup.effects                        # per configuration and metric: mean, 95% CI, diff, ...
    warmup.history(7)                     # trial 7's history.csv

Reading only: these never write to the storage, so they work on a read-only copy (an SQLite URL
with `?mode=ro`). An answer you act on is a look: `record_look` records it, as `vaesweep report`
does, so that later answers account for it. Light (no torch) except for `history`.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from vaesweep.answer import Answer, StudyAnswer, load, record_look
from vaesweep.answer.stored import DEFAULT_RESULTS, storage_url, study_names

__all__ = [
    "StudyAnswer",
    "answer",
    "history",
    "load",
    "record_look",
    "storage_url",
    "study_names",
    "trials",
]


def trials(
    study: str, storage: str | None = None, results: str | Path = DEFAULT_RESULTS
) -> pd.DataFrame:
    """One row per finished trial (see `load`)."""
    return load(study, storage, results).table


def answer(
    study: str, storage: str | None = None, results: str | Path = DEFAULT_RESULTS
) -> tuple[Answer | None, pd.DataFrame]:
    """The answer for the study's first objective (None before any trial completed its
    protocol), and the effects table: per compared configuration and metric n, mean, sd, ci_low,
    ci_high, best, diff, diff_low, diff_high, paired (what the report writes as effects.csv)."""
    data = load(study, storage, results)
    return (data.answers[0] if data.answers else None), data.effects


def history(
    study: str, trial: int, storage: str | None = None, results: str | Path = DEFAULT_RESULTS
) -> pd.DataFrame:
    """A finished trial's per-epoch history.csv: epoch (0 is the first, as stored; figures
    number from 1), beta, lr, train_loss, val_loss, val_elbo and the loss terms."""
    return load(study, storage, results).history(trial)
