"""A stored study's results from Python: its trials as a pandas table, its answer and effects,
and a trial's history. `vaesweep run` (its last lines), `report` and `compare` read studies
through the same answer stage (`vaesweep.answer`).

    from vaesweep import results

    warmup = results.load("warmup")       # results/vaesweep.db, where `vaesweep run` stores it
    warmup.table                          # one row per finished trial
    print(warmup.answers[0].sentence)     # the study's answer, as the report words it
    warmup.effects                        # per configuration and metric: mean, 95% CI, diff, ...
    warmup.history(7)                     # trial 7's history.csv
    model, config = load_model(study="warmup", trial=7)   # its network (torch)

On a machine that did not run the trials, give the storage and the artifact store the run kept
them in (`storage=`, `artifacts="s3://BUCKET/PREFIX"` or a folder): the trial folders are then
fetched into `results`, the local cache, the first time they are needed.

Reading only: these never write to the storage, so they work on a read-only copy (an SQLite URL
with `?mode=ro`). An answer you act on is a look: `record_look` records it, as `vaesweep report`
does, so that later answers account for it. Light (no torch) except for `history` and `load_model`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from vaesweep.answer import Answer, StudyAnswer, record_look
from vaesweep.answer import load as load_answer
from vaesweep.answer.stored import DEFAULT_RESULTS, storage_url, study_names
from vaesweep.answer.stored import load as load_stored
from vaesweep.errors import VaesweepError

if TYPE_CHECKING:
    from vaesweep.spec.config import TrainConfig
    from vaesweep.training.model import VAE

__all__ = [
    "StudyAnswer",
    "answer",
    "history",
    "load",
    "load_model",
    "record_look",
    "storage_url",
    "study_names",
    "trials",
]


def load(
    study: str,
    storage: str | None = None,
    results: str | Path = DEFAULT_RESULTS,
    artifacts: str | None = None,
) -> StudyAnswer:
    """A stored study's answer, by name: `.table` (one row per finished trial), `.answers` (one
    per objective), `.effects`, `.history(trial)` and `.study` (what is stored). `storage`:
    an Optuna storage URL [default: results/vaesweep.db]; `artifacts`: where a run also kept
    its trial folders, fetched into `results` when missing there."""
    return load_answer(study, storage, results, artifacts=artifacts)


def trials(
    study: str,
    storage: str | None = None,
    results: str | Path = DEFAULT_RESULTS,
    artifacts: str | None = None,
) -> pd.DataFrame:
    """One row per finished trial (see `load`)."""
    return load(study, storage, results, artifacts).table


def answer(
    study: str,
    storage: str | None = None,
    results: str | Path = DEFAULT_RESULTS,
    artifacts: str | None = None,
) -> tuple[Answer | None, pd.DataFrame]:
    """The answer for the study's first objective (None before any trial completed its
    protocol), and the effects table: per compared configuration and metric n, mean, sd, ci_low,
    ci_high, best, diff, diff_low, diff_high, paired (what the report writes as effects.csv)."""
    data = load(study, storage, results, artifacts)
    return (data.answers[0] if data.answers else None), data.effects


def history(
    study: str,
    trial: int,
    storage: str | None = None,
    results: str | Path = DEFAULT_RESULTS,
    artifacts: str | None = None,
) -> pd.DataFrame:
    """A finished trial's per-epoch history.csv: epoch (0 is the first, as stored; figures
    number from 1), beta, lr, train_loss, val_loss, val_elbo and the loss terms."""
    return load(study, storage, results, artifacts).history(trial)


def load_model(
    folder: str | Path | None = None,
    *,
    study: str | None = None,
    trial: int | None = None,
    storage: str | None = None,
    results: str | Path = DEFAULT_RESULTS,
    artifacts: str | None = None,
) -> tuple[VAE, TrainConfig]:
    """A trained network (eval mode, on the CPU) and its settings: from a trial `folder`, or
    from a stored `study`'s finished `trial` (its folder fetched from `artifacts` if missing).
    `model.decode(z)` gives logits; `model.reconstruct(x)` images in [0, 1]."""
    from vaesweep.store.artifacts import load_model as from_folder

    if (folder is None) == (study is None or trial is None):
        raise VaesweepError("load_model: give a trial folder, or study= and trial=")
    if folder is None:
        assert study is not None and trial is not None
        data = load_stored(study, storage, results, artifacts=artifacts)
        folder = data.folder_of(trial)
    return from_folder(folder)
