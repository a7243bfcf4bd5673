"""A stored study's results from Python: its trials as a pandas table, its answer and effects,
and a trial's history. `vaesweep run` (its last lines), `report` and `compare` read studies
through these same functions.

    from vaesweep import results

    warmup = results.load("warmup")       # results/vaesweep.db, where `vaesweep run` stores it
    warmup.table                          # one row per finished trial
    print(warmup.answers[0].sentence)     # the study's answer, as the report words it
    warmup.effects                        # per configuration and metric: mean, 95% CI, diff, ...
    warmup.history(7)                     # trial 7's history.csv

Light (no torch) except for `history`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import optuna
import pandas as pd

from vaesweep.effects import Answer
from vaesweep.errors import VaesweepError, shown
from vaesweep.layout import DEFAULT_DB_NAME
from vaesweep.storage import default_storage_url, open_storage, quiet_optuna, redact
from vaesweep.study_data import StudyData, collect

DEFAULT_RESULTS = Path("results")


def storage_url(results: str | Path = DEFAULT_RESULTS, storage: str | None = None) -> str:
    """The storage a results folder's studies are read from: `storage`, else its SQLite file,
    which must exist (reading never creates one)."""
    results = Path(results)
    if storage is None and not (results / DEFAULT_DB_NAME).is_file():
        raise VaesweepError(
            f"no results in {results} (no {DEFAULT_DB_NAME}); run 'vaesweep run' first"
        )
    return storage or default_storage_url(results)


def study_names(url: str) -> list[str]:
    """The studies stored at `url`, in the order they were created."""
    names = optuna.get_all_study_names(open_storage(url))
    if not names:
        raise VaesweepError(f"no studies in {redact(url)}; run 'vaesweep run' first")
    return names


def load(
    study: str,
    storage: str | None = None,
    results: str | Path = DEFAULT_RESULTS,
    note: Callable[[str], None] = lambda _: None,
) -> StudyData:
    """A stored study: `.table` (one row per finished trial: trial, state, best, in_answer, phase,
    replicate, the searched parameters, duration_s, epochs_run, every val_ and test_ metric,
    note), `.answers` (one per objective), `.effects`, `.history(trial)`. `note` hears what
    cannot be read (a damaged trial folder, say)."""
    quiet_optuna()
    url = storage_url(results, storage)
    available = study_names(url)
    if study not in available:
        listed = ", ".join(shown(n, 40) for n in available[:10])
        listed += ", ..." if len(available) > 10 else ""
        raise VaesweepError(
            f"unknown study {shown(study)} in {redact(url)} (studies there: {listed})"
        )
    record = optuna.load_study(study_name=study, storage=open_storage(url))
    return collect(record, Path(results), note)


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
