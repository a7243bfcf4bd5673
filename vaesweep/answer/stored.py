"""A stored study as the answer reads it: its definition, its finished trials with their folders,
and one row per trial in the trials table. Reading only: nothing here writes to the storage.

Light (no torch, no matplotlib), so `vaesweep run` can print the answer too.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import optuna
import pandas as pd
from optuna.trial import FrozenTrial, TrialState

from vaesweep.answer.effects import configuration
from vaesweep.answer.looks import stored_looks
from vaesweep.errors import VaesweepError, shown, visible
from vaesweep.spec.design import Design
from vaesweep.spec.metric_names import TABLE_COLUMNS
from vaesweep.spec.search_space import ParamSpec
from vaesweep.store.artifact_store import TrialFiles, open_store
from vaesweep.store.binding import mismatch, read_stamp
from vaesweep.store.fate import Fate, fate_of
from vaesweep.store.layout import (
    DEFAULT_DB_NAME,
    STUDY_NAME,
    check_readable,
    check_writable,
    report_folder_name,
    trial_folder,
)
from vaesweep.store.storage import (
    ANALYSIS_ATTR,
    DEFINITION_ATTR,
    DESCRIPTION_ATTR,
    EPOCHS_DONE_ATTR,
    FAIL_REASON_ATTR,
    FINISHED_STATES,
    FOLDER_ATTR,
    LOOKS_ATTR,
    METRICS_ATTR,
    PHASE_ATTR,
    PRUNE_REASON_ATTR,
    REPLICATE_ATTR,
    WARNINGS_ATTR,
    default_storage_url,
    open_storage,
    quiet_optuna,
    redact,
    storage_errors,
)

DEFAULT_RESULTS = Path("results")


@dataclass(frozen=True)
class TrialEntry:
    """One finished trial with its folder; `problem` says why the folder cannot be read as the
    trial's (None: it can)."""

    trial: FrozenTrial
    folder: Path | None
    problem: str | None = None

    @property
    def key(self) -> str:
        """What the trial's figures are drawn from: its record, and the size and time of every
        file in its folder, so a file damaged or removed after a report is redrawn (and found)."""
        files = sorted(self.folder.iterdir()) if self.folder and self.folder.is_dir() else []
        stamps = [(f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in files if f.is_file()]
        # The stored relative folder, so a moved results folder keeps its figures.
        relative = self.trial.user_attrs.get(FOLDER_ATTR)
        return f"{self.trial.state.name}|{self.trial.datetime_complete}|{relative}|{stamps}"


@dataclass(frozen=True)
class StoredStudy:
    """What the storage and the trial folders hold of one study, read once."""

    name: str
    description: str
    objectives: tuple[str, ...]
    directions: tuple[str, ...]
    search: tuple[dict[str, Any], ...]
    fixed: dict[str, Any]
    design: Design
    entries: tuple[TrialEntry, ...]
    record: optuna.Study  # the storage's study, for Optuna's own readers (importances)
    diverged: tuple[FrozenTrial, ...] = ()  # failures that are data
    looks: tuple[int, ...] = ()  # block counts of the answers recorded before this one
    equivalence: dict[str, float] | None = None  # objective -> margin
    note: str = ""  # the study file's note, shown under the question
    warnings: tuple[str, ...] = ()  # what the latest run warned of the study
    # (setting, the study file's value, the study's) where --set changed it: the description
    # and note were written for the file's
    overridden: tuple[tuple[str, Any, Any], ...] = ()
    nuisance: tuple[dict[str, Any], ...] = ()  # tuned per configuration
    made_by_vaesweep: bool = True

    def entry(self, number: int) -> TrialEntry:
        for entry in self.entries:
            if entry.trial.number == number:
                return entry
        finished = ", ".join(str(e.trial.number) for e in self.entries[:20]) or "none"
        raise VaesweepError(
            f"study {shown(self.name)} has no finished trial {number} (finished: {finished})"
        )

    def folder_of(self, number: int) -> Path:
        """Finished trial `number`'s folder, readable as its own."""
        entry = self.entry(number)
        if entry.folder is None or entry.problem:
            raise VaesweepError(f"study {shown(self.name)} trial {number}: {entry.problem}")
        return entry.folder

    def history(self, number: int) -> pd.DataFrame:
        """Trial `number`'s per-epoch history, as its folder's history.csv stores it."""
        from vaesweep.store.artifacts import load_history  # torch: only when a history is asked for

        folder = self.folder_of(number)
        try:
            return load_history(folder)
        except VaesweepError as err:
            raise VaesweepError(f"study {shown(self.name)} trial {number}: {err}") from None

    def __repr__(self) -> str:
        return f"<StoredStudy {self.name!r}: {len(self.entries)} finished trials>"

    @property
    def folder(self) -> str:
        """This study's folder in a report."""
        return report_folder_name(self.name)

    @property
    def environments(self) -> list[tuple[str, int]]:
        """Where the trials ran, from each folder's trial.json, most trials first."""
        found: Counter[str] = Counter()
        for entry in self.entries:
            stamp = read_stamp(entry.folder) if entry.folder and not entry.problem else None
            found[describe_environment((stamp or {}).get("environment"))] += 1
        return found.most_common()

    @property
    def params(self) -> list[str]:
        """What names a configuration: the searched settings and, in a tuned study, the
        nuisance values each was confirmed at."""
        names = [p["name"] for p in self.search + self.nuisance]
        return names or sorted({name for e in self.entries for name in e.trial.params})

    @property
    def tuned(self) -> list[ParamSpec]:
        """The nuisance parameters a tuned study tuned for each configuration."""
        return [ParamSpec(**{**p, "choices": tuple(p.get("choices", ()))}) for p in self.nuisance]

    def _shape(self) -> tuple[int, int]:
        """The design's grid size and tuning points, from the stored search."""
        grid = self.design.configurations([SimpleNamespace(**p) for p in self.search])
        tuning = math.prod(len(p.points(self.design.tune)) for p in self.tuned) if self.tuned else 0
        return len(grid or ()), tuning

    @property
    def design_summary(self) -> str:
        return self.design.describe(*self._shape())

    def trials_at(self, blocks: int) -> int:
        """The `--trials` that completes the design with `blocks` seed blocks (replicates)."""
        return self.design.trials_to_complete(*self._shape(), blocks)


def describe_environment(environment: dict[str, str] | None) -> str:
    if not isinstance(environment, dict):
        return "versions not recorded (trials from before vaesweep recorded them, or unreadable)"
    names = {"vaesweep": "vaesweep", "torch": "PyTorch", "optuna": "Optuna", "python": "Python"}
    versions = ", ".join(f"{label} {environment.get(key, '?')}" for key, label in names.items())
    return f"{versions} on {environment.get('processor', '?')}"


def read(
    study: optuna.Study,
    results_dir: Path,
    note: Callable[[str], None] = lambda _: None,
    files: TrialFiles | None = None,
) -> StoredStudy:
    """What the storage and the trial folders hold of a study; `note` hears each trial whose
    folder cannot be read as its own (a study vaesweep did not make has no folders). With
    `files`, a folder missing here is fetched from the artifact store into `results_dir`."""
    made_by_vaesweep = DEFINITION_ATTR in study.user_attrs
    definition = _definition(study)
    directions = tuple(d.name.lower() for d in study.directions)
    objectives = definition.get("objectives") or [f"objective_{i}" for i in range(len(directions))]
    failed = study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
    entries = []
    for trial in study.get_trials(deepcopy=False, states=FINISHED_STATES):
        entry = TrialEntry(trial, *_bound_folder(results_dir, study.study_name, trial, files))
        if entry.problem and made_by_vaesweep:
            note(f"study {shown(study.study_name)} trial {trial.number}: {entry.problem}")
        entries.append(entry)
    if not made_by_vaesweep and entries:
        note(f"study {shown(study.study_name)} was not made by vaesweep: no trial figures")
    analysis = study.user_attrs.get(ANALYSIS_ATTR, {})
    return StoredStudy(
        name=study.study_name,
        description=study.user_attrs.get(DESCRIPTION_ATTR, ""),
        objectives=tuple(objectives),
        directions=directions,
        search=tuple(definition.get("search", [])),
        nuisance=tuple(definition.get("nuisance", [])),
        fixed=definition.get("fixed", {}),
        design=definition["design"],
        entries=tuple(entries),
        record=study,
        diverged=tuple(t for t in failed if fate_of(t) == Fate.DIVERGED),
        looks=stored_looks(study.user_attrs.get(LOOKS_ATTR)),
        equivalence=analysis.get("equivalence", {}),
        note=str(analysis.get("note") or ""),
        warnings=tuple(_strings(study.user_attrs.get(WARNINGS_ATTR))),
        overridden=_changes(analysis.get("overridden")),
        made_by_vaesweep=made_by_vaesweep,
    )


def _definition(study: optuna.Study) -> dict[str, Any]:
    """The study's stored definition, its design read (`{}` for a study vaesweep did not make);
    one this version cannot read is one line, not a traceback."""
    stored = study.user_attrs.get(DEFINITION_ATTR, {})
    design = stored.get("design", {}) if isinstance(stored, dict) else None
    known = {field.name for field in dataclasses.fields(Design)}
    if not isinstance(design, dict) or not set(design) <= known:
        unknown = ", ".join(sorted(set(design) - known)) if isinstance(design, dict) else ""
        what = f"keys it does not know: {shown(unknown)}" if unknown else "a malformed design"
        raise VaesweepError(
            f"study {shown(study.study_name)}: its stored definition has {what}; was it stored "
            "by another version of vaesweep?"
        )
    return {**stored, "design": Design.from_stored(design)}


def _changes(stored: Any) -> tuple[tuple[str, Any, Any], ...]:
    """The stored (setting, file's value, study's value) triples, whatever a storage holds."""
    if not isinstance(stored, list):
        return ()
    return tuple(
        (str(c[0]), c[1], c[2]) for c in stored if isinstance(c, list | tuple) and len(c) == 3
    )


def _strings(stored: Any) -> list[str]:
    """A stored list of sentences, whatever a storage holds there."""
    return [str(s) for s in stored] if isinstance(stored, list) else []


def _bound_folder(
    results_dir: Path, study_name: str, trial: FrozenTrial, files: TrialFiles | None = None
) -> tuple[Path | None, str | None]:
    """The trial's folder where vaesweep writes it (never a path read from the storage), and why
    it cannot be read as this trial's, if so (see binding.py)."""
    if trial.user_attrs.get(FOLDER_ATTR) is None:
        return None, "no trial folder recorded"
    if not STUDY_NAME.fullmatch(study_name):  # not a name vaesweep runs under
        return None, "its study's name is not a folder name"
    folder = trial_folder(results_dir, study_name, trial.number)
    if not folder.is_dir() and files is not None:
        if problem := files.fetch(trial, folder):
            return None, problem
    if not folder.is_dir():
        return None, f"trial folder {folder} is missing"
    return folder, mismatch(folder, trial)


def recorded_metrics(trial: FrozenTrial) -> dict[str, Any]:
    """The trial's metrics, stored once in its record ({} where a record has none, or none that
    vaesweep could have written)."""
    metrics = trial.user_attrs.get(METRICS_ATTR)
    return metrics if isinstance(metrics, dict) else {}


def trials_table(data: StoredStudy) -> pd.DataFrame:
    """One row per finished trial, and per diverged one (state FAIL: a failure is data), the
    numbers exactly as stored; `in_answer` marks the trials that share the study's protocol
    (completed or diverged, in the answer's phase)."""
    rows = []
    problems = {e.trial.number: e.problem for e in data.entries}
    for trial in sorted(
        [e.trial for e in data.entries] + list(data.diverged), key=lambda t: t.number
    ):
        metrics = recorded_metrics(trial)
        row: dict[str, Any] = {"trial": trial.number, "state": trial.state.name, "best": False}
        row["phase"] = trial.user_attrs.get(PHASE_ATTR)  # None: stored before designs existed
        row["replicate"] = trial.user_attrs.get(REPLICATE_ATTR, 0)
        row |= {name: trial.params.get(name) for name in data.params}
        row["duration_s"] = trial.duration.total_seconds() if trial.duration else None
        row["epochs_run"] = trial.user_attrs.get(EPOCHS_DONE_ATTR)
        row |= {column: metrics.get(column) for column in TABLE_COLUMNS}
        # A study not made by vaesweep has its objectives only as Optuna's values.
        row |= {
            name: value
            for name, value in zip(data.objectives, trial.values or (), strict=False)
            if row.get(name) is None
        }
        row["note"] = (
            problems.get(trial.number)
            or trial.user_attrs.get(PRUNE_REASON_ATTR)
            or trial.user_attrs.get(FAIL_REASON_ATTR, "")
        )
        rows.append(row)
    table = pd.DataFrame(rows)
    if not table.empty:
        counted = table["state"].isin(["COMPLETE", "FAIL"])  # FAIL: diverged, ranked last
        in_answer = counted & (table["phase"] == data.design.answer_phase)
        if data.design.shares_seeds and in_answer.any():
            # Blocks are compared whole: a block some configuration has not completed waits.
            configs = configuration(table[in_answer], data.params)
            blocks = table.loc[in_answer, "replicate"]
            per_block = configs.groupby(blocks).nunique()
            complete = table["replicate"].isin(per_block[per_block == configs.nunique()].index)
            waiting = in_answer & ~complete
            table.loc[waiting & (table["note"] == ""), "note"] = "its seed block is incomplete"
            in_answer &= complete
        table.insert(3, "in_answer", in_answer)
    return table


def storage_url(results: str | Path = DEFAULT_RESULTS, storage: str | None = None) -> str:
    """The storage a results folder's studies are read from: `storage`, else its SQLite file,
    which must exist (reading never creates one)."""
    results = Path(results)
    check_readable(results)
    if storage is None and not (results / DEFAULT_DB_NAME).is_file():
        raise VaesweepError(
            f"no results yet: the folder {visible(results)} holds no {DEFAULT_DB_NAME}; run "
            "'vaesweep run' first, or give the results folder with --results"
        )
    return storage or default_storage_url(results)


def study_names(url: str) -> list[str]:
    """The studies stored at `url`, in the order they were created."""
    with storage_errors(url, reading=True):
        names = optuna.get_all_study_names(open_storage(url, reading=True))
    if not names:
        raise VaesweepError(f"no studies in {redact(url)}; run 'vaesweep run' first")
    return names


def load(
    study: str,
    storage: str | None = None,
    results: str | Path = DEFAULT_RESULTS,
    note: Callable[[str], None] = lambda _: None,
    artifacts: str | None = None,
) -> StoredStudy:
    """A stored study read whole, by name; `note` hears what cannot be read (a damaged trial
    folder, say). With `artifacts` (a folder or s3://BUCKET/PREFIX that a run stored its trials
    in), trial folders missing under `results` are fetched into it first."""
    quiet_optuna()
    url = storage_url(results, storage)
    store = open_store(artifacts) if artifacts is not None else None
    if store is not None:
        check_writable(Path(results), "results folder (where trial folders are fetched)")
    available = study_names(url)
    if study not in available:
        listed = ", ".join(shown(n, 40) for n in available[:10])
        listed += ", ..." if len(available) > 10 else ""
        raise VaesweepError(
            f"unknown study {shown(study)} in {redact(url)} (studies there: {listed})"
        )
    with storage_errors(url, reading=True):
        opened = open_storage(url, reading=True)
        record = optuna.load_study(study_name=study, storage=opened)
        files = TrialFiles(store, opened) if store is not None else None
        return read(record, Path(results), note, files)
