"""What a report (or the end of a run) knows of a stored study: its definition, one row per
finished trial, and the answer computed from the trials that share the study's protocol.

Light (no torch, no matplotlib), so `vaesweep run` can print the answer too. Its one write: an
answer shown at more blocks than before is recorded as a look (`_record_look`), so that later
answers spend only the error rate it left.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import optuna
import pandas as pd
from optuna.trial import FrozenTrial, TrialState

from vaesweep.errors import VaesweepError, shown, visible
from vaesweep.report import effects
from vaesweep.spec.design import Design
from vaesweep.spec.metric_names import COMPARED_COLUMNS, TABLE_COLUMNS
from vaesweep.spec.search_space import ParamSpec
from vaesweep.stats import Looks
from vaesweep.store.binding import mismatch, read_stamp
from vaesweep.store.fate import Fate, fate_of
from vaesweep.store.layout import (
    DEFAULT_DB_NAME,
    STUDY_NAME,
    check_length,
    report_folder_name,
    trial_folder,
)
from vaesweep.store.storage import (
    ANALYSIS_ATTR,
    ANSWER_ATTR,
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
    STORAGE_FAILURES,
    WARNINGS_ATTR,
    default_storage_url,
    open_storage,
    quiet_optuna,
    redact,
    storage_errors,
)

# The answer's procedure, stored with the looks: a study without it was answered by an earlier
# vaesweep (repeated-measures ANOVA and Tukey intervals), whose looks were not recorded.
PROCEDURE = 2


@dataclass
class TrialEntry:
    """One finished trial as the report sees it; `problem` says why its figures are missing."""

    trial: FrozenTrial
    folder: Path | None
    problem: str | None = None
    figures: dict[str, str] = field(default_factory=dict)  # name -> path relative to the report

    @property
    def key(self) -> str:
        """What the trial's figures are drawn from: its record, and the size and time of every
        file in its folder, so a file damaged or removed after a report is redrawn (and found)."""
        files = sorted(self.folder.iterdir()) if self.folder and self.folder.is_dir() else []
        stamps = [(f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in files if f.is_file()]
        # The stored relative folder, so a moved results folder keeps its figures.
        relative = self.trial.user_attrs.get(FOLDER_ATTR)
        return f"{self.trial.state.name}|{self.trial.datetime_complete}|{relative}|{stamps}"


@dataclass
class StudyData:
    name: str
    description: str
    objectives: list[str]
    directions: list[str]
    search: list[dict[str, Any]]
    fixed: dict[str, Any]
    design: Design
    entries: list[TrialEntry]
    diverged: list[FrozenTrial] = field(default_factory=list)  # failures that are data
    looks: tuple[int, ...] = ()  # block counts of the answers shown before this one
    # An earlier vaesweep showed an answer with its own procedure, and recorded no looks.
    answered_earlier: bool = False
    equivalence: dict[str, float] = field(default_factory=dict)  # objective -> margin
    note: str = ""  # the study file's note, shown under the question
    table: pd.DataFrame = field(default_factory=pd.DataFrame)  # one row per finished trial
    effects: pd.DataFrame = field(default_factory=pd.DataFrame)  # see effects.effects_table
    answers: list[effects.Answer] = field(default_factory=list)  # one per objective
    trials_drawn: int | None = None  # trials whose own figures the report drew (None: all)
    figures: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # what the latest run warned of the study
    record: optuna.Study | None = None  # the stored study this was collected from
    nuisance: list[dict[str, Any]] = field(default_factory=list)  # tuned per configuration

    def entry(self, number: int) -> TrialEntry:
        for entry in self.entries:
            if entry.trial.number == number:
                return entry
        finished = ", ".join(str(e.trial.number) for e in self.entries[:20]) or "none"
        raise VaesweepError(
            f"study {shown(self.name)} has no finished trial {number} (finished: {finished})"
        )

    def history(self, number: int) -> pd.DataFrame:
        """Trial `number`'s per-epoch history, as its folder's history.csv stores it."""
        from vaesweep.store.artifacts import load_history  # torch: only when a history is asked for

        entry = self.entry(number)
        if entry.folder is None or entry.problem:
            raise VaesweepError(f"study {shown(self.name)} trial {number}: {entry.problem}")
        try:
            return load_history(entry.folder)
        except VaesweepError as err:
            raise VaesweepError(f"study {shown(self.name)} trial {number}: {err}") from None

    @property
    def folder(self) -> str:
        """This study's folder in the report."""
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

    @property
    def design_summary(self) -> str:
        # The stored search as plain attributes, whichever version of vaesweep stored it.
        grid = self.design.configurations([SimpleNamespace(**p) for p in self.search])
        tuning = math.prod(len(p.points(self.design.tune)) for p in self.tuned) if self.tuned else 0
        return self.design.describe(len(grid or ()), tuning)

    @property
    def best(self) -> set[int]:
        """The trials marked best (★, the table's `best` column): the first answer's configuration,
        only where the answer shows it better than some other; none otherwise."""
        return self.best_mean if self.answers and self.answers[0].shown_best else set()

    @property
    def best_mean(self) -> set[int]:
        """Trials of the configuration with the best mean first objective (comparable ones),
        whether or not it is distinguishable from the others."""
        if not self.answers or self.table.empty:
            return set()
        rows = self.table[self.table["in_answer"]]
        labels = effects.configuration(rows, self.params)
        return set(rows.loc[labels == self.answers[0].best, "trial"])


def describe_environment(environment: dict[str, str] | None) -> str:
    if not isinstance(environment, dict):
        return "versions not recorded (trials from before vaesweep recorded them, or unreadable)"
    names = {"vaesweep": "vaesweep", "torch": "PyTorch", "optuna": "Optuna", "python": "Python"}
    versions = ", ".join(f"{label} {environment.get(key, '?')}" for key, label in names.items())
    return f"{versions} on {environment.get('processor', '?')}"


def collect(
    study: optuna.Study, results_dir: Path, note: Callable[[str], None] = lambda _: None
) -> StudyData:
    """A stored study read whole: its trials and their folders, the trials table, the effects
    and the answers (a look, recorded on a study vaesweep made)."""
    made_by_vaesweep = DEFINITION_ATTR in study.user_attrs
    data = _read(study, results_dir, note if made_by_vaesweep else lambda _: None)
    if not made_by_vaesweep and data.entries:
        note(f"study {shown(study.study_name)} was not made by vaesweep: no trial figures")
    data.table = trials_table(data)
    _answer(data)
    if not data.table.empty:
        data.table["best"] = data.table["trial"].isin(data.best)
    if made_by_vaesweep:
        _record_look(data, note)
    return data


def _read(study: optuna.Study, results_dir: Path, note: Callable[[str], None]) -> StudyData:
    """What the storage and the trial folders hold of a study (a trial's folder problem noted)."""
    definition = study.user_attrs.get(DEFINITION_ATTR, {})
    directions = [d.name.lower() for d in study.directions]
    objectives = definition.get("objectives") or [f"objective_{i}" for i in range(len(directions))]
    diverged = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
        if fate_of(t) == Fate.DIVERGED
    ]
    entries = []
    for trial in study.get_trials(deepcopy=False, states=FINISHED_STATES):
        entry = TrialEntry(trial, *_bound_folder(results_dir, study.study_name, trial))
        if entry.problem:
            note(f"study {shown(study.study_name)} trial {trial.number}: {entry.problem}")
        entries.append(entry)
    return StudyData(
        name=study.study_name,
        description=study.user_attrs.get(DESCRIPTION_ATTR, ""),
        objectives=objectives,
        directions=directions,
        search=definition.get("search", []),
        nuisance=definition.get("nuisance", []),
        fixed=definition.get("fixed", {}),
        design=Design.from_stored(definition.get("design", {})),
        entries=entries,
        diverged=diverged,
        looks=_looks(study.user_attrs.get(LOOKS_ATTR)),
        answered_earlier=_answered_earlier(study.user_attrs),
        equivalence=study.user_attrs.get(ANALYSIS_ATTR, {}).get("equivalence", {}),
        note=str(study.user_attrs.get(ANALYSIS_ATTR, {}).get("note") or ""),
        warnings=_strings(study.user_attrs.get(WARNINGS_ATTR)),
        record=study,
    )


def _answer(data: StudyData) -> None:
    """The effects table and an answer per objective, from the trials in the answer."""
    fair = data.table[data.table["in_answer"]] if not data.table.empty else data.table
    directions = dict(zip(data.objectives, data.directions, strict=True))
    metrics = [m for m in dict.fromkeys([*data.objectives, *COMPARED_COLUMNS]) if m in fair]
    blocked = data.design.shares_seeds
    looks = Looks(data.looks, data.design.most_replicates)
    answered = [o for o in data.objectives if o in fair]
    compared = effects.compare_objectives(
        fair, data.params, answered, directions, blocked, data.equivalence, looks
    )
    data.effects = effects.effects_table(fair, data.params, metrics, blocked, directions, compared)
    answers = (
        effects.answer(
            fair,
            data.params,
            objective,
            directions[objective],
            blocked,
            data.equivalence.get(objective),
            len(answered),
            looks,
            compared,
        )
        for objective in answered
    )
    data.answers = [a for a in answers if a is not None]  # None: nothing comparable


def _strings(stored: Any) -> list[str]:
    """A stored list of sentences, whatever a storage holds there."""
    return [str(s) for s in stored] if isinstance(stored, list) else []


def _looks(stored: Any) -> tuple[int, ...]:
    """The stored looks (block counts), whatever a storage holds there."""
    blocks = stored.get("blocks") if isinstance(stored, dict) else None
    if not isinstance(blocks, list):
        return ()
    return tuple(sorted({b for b in blocks if isinstance(b, int) and not isinstance(b, bool)}))


def _answered_earlier(attrs: dict[str, Any]) -> bool:
    """Whether a vaesweep from before recorded looks showed this study's answer: an answer
    stored without the procedure that wrote it (this version names it, `dashboard.publish`),
    and no look recorded since."""
    looks = attrs.get(LOOKS_ATTR)
    if isinstance(looks, dict):
        return bool(looks.get("answered_earlier"))
    shown = attrs.get(ANSWER_ATTR)
    return (
        isinstance(shown, dict)
        and "procedure" not in shown
        and shown.get("answers") != ["none yet"]
    )


EARLIER_PROCEDURE = (
    "An earlier vaesweep showed this study's answer with its own procedure (a repeated-measures "
    "ANOVA and Tukey intervals, which assume equal variances and correlations, and no account "
    "of looks); this answer is computed anew with the present one, so it may differ, and the "
    "looks taken then were not recorded."
)


def look_blocks(data: StudyData) -> int | None:
    """The blocks (or replicates) this study's answer saw; None without a comparison."""
    seen = [a.comparison.replicates for a in data.answers if a.comparison is not None]
    return max(seen) if seen else None


def _record_look(data: StudyData, note: Callable[[str], None]) -> None:
    """An answer shown at more blocks than before is a new look: stored, so that later answers
    spend only the error it left (stats.sequential). A storage that refuses the write (read-only)
    keeps the answer valid now; a later look then cannot know of this one, and is told so."""
    blocks = look_blocks(data)
    if blocks is None or blocks in data.looks or data.record is None:
        return
    try:
        data.record.set_user_attr(
            LOOKS_ATTR,
            {
                "blocks": sorted({*data.looks, blocks}),
                "procedure": PROCEDURE,
                "answered_earlier": data.answered_earlier,
            },
        )
    except STORAGE_FAILURES:
        note(
            f"study {shown(data.name)}: this look at {blocks} blocks could not be recorded "
            "(the storage refused the write); an answer shown after more blocks will not "
            "account for it"
        )


def _bound_folder(
    results_dir: Path, study_name: str, trial: FrozenTrial
) -> tuple[Path | None, str | None]:
    """The trial's folder where vaesweep writes it (never a path read from the storage), and why
    it cannot be read as this trial's, if so (see binding.py)."""
    if trial.user_attrs.get(FOLDER_ATTR) is None:
        return None, "no trial folder recorded"
    if not STUDY_NAME.fullmatch(study_name):  # not a name vaesweep runs under
        return None, "its study's name is not a folder name"
    folder = trial_folder(results_dir, study_name, trial.number)
    if not folder.is_dir():
        return None, f"trial folder {folder} is missing"
    return folder, mismatch(folder, trial)


def recorded_metrics(trial: FrozenTrial) -> dict[str, Any]:
    """The trial's metrics, stored once in its record ({} where a record has none, or none that
    vaesweep could have written)."""
    metrics = trial.user_attrs.get(METRICS_ATTR)
    return metrics if isinstance(metrics, dict) else {}


def trials_table(data: StudyData) -> pd.DataFrame:
    """One row per finished trial, and per diverged one (state FAIL: a failure is data), the
    numbers exactly as stored; `in_answer` marks the trials that share the study's protocol
    (completed or diverged, in the answer's phase)."""
    rows = []
    problems = {e.trial.number: e.problem for e in data.entries}
    for trial in sorted([e.trial for e in data.entries] + data.diverged, key=lambda t: t.number):
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
            configs = effects.configuration(table[in_answer], data.params)
            blocks = table.loc[in_answer, "replicate"]
            per_block = configs.groupby(blocks).nunique()
            complete = table["replicate"].isin(per_block[per_block == configs.nunique()].index)
            waiting = in_answer & ~complete
            table.loc[waiting & (table["note"] == ""), "note"] = "its seed block is incomplete"
            in_answer &= complete
        table.insert(3, "in_answer", in_answer)
    return table


DEFAULT_RESULTS = Path("results")


def storage_url(results: str | Path = DEFAULT_RESULTS, storage: str | None = None) -> str:
    """The storage a results folder's studies are read from: `storage`, else its SQLite file,
    which must exist (reading never creates one)."""
    results = Path(results)
    check_length(results, "results folder")
    if storage is None and not (results / DEFAULT_DB_NAME).is_file():
        raise VaesweepError(
            f"no results yet: the folder {visible(results)} holds no {DEFAULT_DB_NAME}; run "
            "'vaesweep run' first, or give the results folder with --results"
        )
    return storage or default_storage_url(results)


def study_names(url: str) -> list[str]:
    """The studies stored at `url`, in the order they were created."""
    with storage_errors(url, reading=True):
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
    with storage_errors(url, reading=True):
        record = optuna.load_study(study_name=study, storage=open_storage(url))
        return collect(record, Path(results), note)
