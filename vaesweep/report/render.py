"""`vaesweep report`: storage + trial folders -> figures, tables and index.html. It changes no
trial; it records the answer it shows as a look (`vaesweep.answer.record_look`).

Re-running redraws only what changed: a manifest remembers, for every trial and study, the key
of what was drawn (trial state, completion time, weights file), and figures whose key still
matches are kept.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd

from vaesweep.answer import StoredStudy, StudyAnswer, answer, record_look, stored, tuning
from vaesweep.answer.stored import TrialEntry, recorded_metrics
from vaesweep.errors import VaesweepError, first_line, shown
from vaesweep.report.anchors import PUBLISHED, Anchor, pca_floor
from vaesweep.report.page import TRIAL_FIGURES, write_index
from vaesweep.report.section import Section
from vaesweep.spec.design import Phase
from vaesweep.store.artifact_store import open_store
from vaesweep.store.layout import (
    MANIFEST_FILE,
    check_writable,
    figure_file,
    make_folder,
    trial_folder_name,
)
from vaesweep.store.storage import best_trials

# torch, matplotlib and friends take seconds to import: they are imported only when something
# needs drawing, so an up-to-date report re-runs in about a second.

REPORT_VERSION = 8  # bump when figures change, so every report redraws once
KEY_METRICS = (
    "val_ssim",
    "val_mse",
    "val_knn_accuracy",
    "val_kl",
    "val_nll",
    "val_active_units",
    "test_knn_accuracy",
)
SAMPLE_SEED, SAMPLES_SHOWN = 42, 10
DPI = 100
# Trials whose own figures a report draws by default: those in the answer, then the best of the
# rest. About a second each on a CPU: a 1,000-trial search would take a quarter of an hour;
# `--all-trials` draws every one.
MAX_TRIAL_FIGURES = 30


@dataclass
class ReportSummary:
    out_dir: Path
    studies: list[Section]
    drawn: int  # figures drawn this time
    warnings: list[str]


def render_report(
    results_dir: Path,
    out_dir: Path,
    storage: str | None = None,
    study_names: tuple[str, ...] = (),
    data_dir: Path | None = None,
    warn: Callable[[str], None] = print,
    on_progress: Callable[[str, int, int, str], None] = lambda study, done, total, what: None,
    all_trials: bool = False,
    artifacts: str | None = None,
) -> ReportSummary:
    """`storage` None: the results folder's vaesweep.db, which must exist. `on_progress(study,
    done, total, what)` hears each study's parts (its own figures, then each drawn trial's) as
    each starts: `done` of `total` parts finished, `what` is being drawn ("done" at the end);
    `total` 0 announces a step of unknown length (fetching trial folders).
    Each trial's own figures are drawn for at most MAX_TRIAL_FIGURES trials of a study
    (`_drawn_trials`), unless `all_trials`. `artifacts`: where the run also kept its trial
    folders; those missing under `results_dir` are fetched into it."""
    storage_url = stored.storage_url(results_dir, storage)
    if artifacts is not None:
        open_store(artifacts)  # reachable, before anything is read or drawn
    available = stored.study_names(storage_url)
    for name in study_names:
        if name not in available:
            stored.load(name, storage_url, results_dir)  # says which studies there are
    check_writable(out_dir, "report folder")
    try:
        names = study_names or tuple(available)
        most = None if all_trials else MAX_TRIAL_FIGURES
        return _render(
            results_dir,
            out_dir,
            storage_url,
            names,
            bool(study_names),
            data_dir,
            warn,
            on_progress,
            most,
            artifacts,
        )
    except OSError as err:  # a full disk, say: what is stored was only read
        where = f" ({err.filename})" if err.filename else ""
        raise VaesweepError(
            f"cannot write the report in {out_dir}: {err.strerror or first_line(err)}{where}; "
            "nothing stored was changed; run the report again once there is room"
        ) from None


def _render(
    results_dir: Path,
    out_dir: Path,
    storage_url: str,
    names: tuple[str, ...],
    asked: bool,  # the names were asked for: one without finished trials is an error
    data_dir: Path | None,
    warn: Callable[[str], None],
    on_progress: Callable[[str, int, int, str], None],
    most: int | None,
    artifacts: str | None,
) -> ReportSummary:
    manifest = _load_manifest(out_dir)
    painter = _Painter(out_dir, data_dir, manifest)
    warnings: list[str] = []

    def note(message: str) -> None:
        warnings.append(message)
        warn(f"warning: {message}")

    sections = []
    for name in names:
        if artifacts is not None:  # fetching folders over a network may take a while
            on_progress(
                name, 0, 0, "fetching the trial folders missing here from the artifact store"
            )
        answered = answer(stored.load(name, storage_url, results_dir, note, artifacts))
        if not answered.study.entries:
            if asked:
                raise VaesweepError(f"study {shown(name)} has no finished trials yet")
            note(f"study {shown(name)} has no finished trials yet; skipped")
            continue
        section = Section(answered, look=record_look(answered))  # the page shows it: a look
        if section.look:
            note(section.look)
        make_folder(out_dir, "report folder")  # once a study is known to be drawn
        _draw(section, painter, most, note, on_progress)
        _write_tables(section, out_dir)
        sections.append(section)
        _save_manifest(out_dir, manifest)
    classes = painter.class_samples()
    make_folder(out_dir, "report folder")
    write_index(out_dir, sections, classes, storage_url, [*PUBLISHED, painter.pca_floor()])
    _save_manifest(out_dir, manifest)
    return ReportSummary(out_dir, sections, painter.drawn, warnings)


def _draw(
    section: Section,
    painter: _Painter,
    most: int | None,
    note: Callable[[str], None],
    on_progress: Callable[[str, int, int, str], None],
) -> None:
    """A study's figures, then its drawn trials' (`on_progress` hears each part start)."""
    name = section.study.name
    drawn = _drawn_trials(section.answered, most)
    section.trials_drawn = len(drawn)
    parts = 1 + len(drawn)
    on_progress(name, 0, parts, "the study's figures")
    painter.study_figures(section, note)
    for done, entry in enumerate(drawn, start=1):
        on_progress(name, done, parts, f"trial {entry.trial.number}'s figures")
        painter.trial_figures(section, entry, note)
    on_progress(name, parts, parts, "done")


def _write_tables(section: Section, out_dir: Path) -> None:
    folder = out_dir / section.study.folder
    folder.mkdir(exist_ok=True)
    table = section.table
    _write_if_changed(folder / "trials.csv", table.to_csv(index=False))
    _write_if_changed(folder / "effects.csv", section.answered.effects.to_csv(index=False))
    shown = table.assign(best=table["best"].map({True: "★", False: ""}))
    _write_if_changed(folder / "trials.md", shown.to_markdown(index=False, floatfmt=".4g") + "\n")


def _write_if_changed(path: Path, text: str) -> None:
    if not path.is_file() or path.read_text() != text:
        path.write_text(text)


class _Painter:
    """Draws figures whose manifest key changed; keeps the rest."""

    def __init__(self, out_dir: Path, data_dir: Path | None, manifest: dict[str, str]):
        self.out_dir, self.data_dir, self.manifest = out_dir, data_dir, manifest
        self.drawn = 0
        self._data = None

    @property
    def data(self):
        if self._data is None:
            from vaesweep.training.data import load_fashion_mnist

            self._data = load_fashion_mnist(self.data_dir)
        return self._data

    def _fresh(self, manifest_key: str, key: str, paths: list[Path]) -> bool:
        return self.manifest.get(manifest_key) == key and all(p.is_file() for p in paths)

    def _save(self, figure, path: Path) -> None:
        partial = path.with_name(f".{path.name}.partial")
        figure.savefig(partial, dpi=DPI, format="png")
        os.replace(partial, path)
        self.drawn += 1

    def pca_floor(self) -> Anchor:
        """Computed once per report version and remembered in the manifest."""
        key = f"pca_floor:{REPORT_VERSION}"
        if key not in self.manifest:
            data = self.data
            self.manifest[key] = json.dumps(
                asdict(
                    pca_floor(
                        data.train_x.numpy(),
                        data.train_y.numpy(),
                        data.test_x.numpy(),
                        data.test_y.numpy(),
                    )
                )
            )
        return Anchor(**json.loads(self.manifest[key]))

    def class_samples(self) -> str:
        path = self.out_dir / figure_file("classes")
        if not self._fresh("classes", str(REPORT_VERSION), [path]):
            from vaesweep.report import figures

            self._save(figures.class_samples(self.data.train_x, self.data.train_y), path)
            self.manifest["classes"] = str(REPORT_VERSION)
        return path.name

    def study_figures(self, section: Section, note: Callable[[str], None]) -> None:
        study = section.study
        folder = self.out_dir / study.folder
        planned = _planned_study_figures(section.answered)
        section.figures = {name: f"{study.folder}/{figure_file(name)}" for name in planned}
        key = _digest(
            [REPORT_VERSION, study.objectives, study.equivalence, [e.key for e in study.entries]]
        )
        if self._fresh(f"study:{study.name}", key, [folder / figure_file(n) for n in planned]):
            return
        folder.mkdir(exist_ok=True)
        draw = self._study_drawings(section, note)
        for name in planned:
            figure = draw[name]()
            if figure is None:
                section.figures.pop(name)
            else:
                self._save(figure, folder / figure_file(name))
        self.manifest[f"study:{study.name}"] = key

    def _study_drawings(
        self, section: Section, note: Callable[[str], None]
    ) -> dict[str, Callable[[], Any]]:
        """How to draw each figure a study's section may plan (see `_planned_study_figures`);
        a drawing that has nothing to show gives None."""
        from vaesweep.report import figures

        answered, study = section.answered, section.study
        table = answered.table
        metrics = [m for m in dict.fromkeys([*study.objectives, *KEY_METRICS]) if m in table]

        def importances():
            if found := _importances(study.record, list(study.objectives)):
                return figures.param_importances(found)
            section.notes.append(
                "parameter importances need completed trials with different parameters"
            )
            return None

        draw = {
            "paired-differences": lambda: figures.paired_differences(
                list(answered.answers), study.params
            ),
            "effects": lambda: figures.effects_plot(
                table[table["in_answer"]],
                answered.effects,
                study.params,
                metrics,
                study.design.answer_phase,
            ),
            "learning-curves": lambda: self._learning_curves(section, note),
            "optimization-history": lambda: figures.optimization_history(
                table, study.objectives, study.directions
            ),
            "importances": importances,
            "pareto-front": lambda: figures.pareto_front(
                table, study.objectives, {t.number for t in best_trials(study.record)}
            ),
        }
        return draw | _search_drawings(answered, metrics)

    def _learning_curves(self, section: Section, note: Callable[[str], None]) -> Any:
        from vaesweep.report import figures

        histories = self._histories(section, note)
        drawn = figures.learning_curves(histories, section.study.search[0]["name"])
        if drawn is None and not histories.empty:
            section.notes.append("no learning curves: the trials trained one epoch")
        return drawn

    def _histories(self, section: Section, note: Callable[[str], None]) -> pd.DataFrame:
        from vaesweep.store.artifacts import load_history

        frames = []
        for entry in section.study.entries:
            if section.problem(entry.trial.number) is None:
                assert entry.folder is not None  # a trial without a problem has its folder
                try:
                    history = load_history(entry.folder)
                except VaesweepError as err:
                    _mark(section, entry, str(err), note)
                    continue
                params = _param_columns(section.study, entry)
                frames.append(history.assign(trial=entry.trial.number, **params))
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    def trial_figures(
        self, section: Section, entry: TrialEntry, note: Callable[[str], None]
    ) -> None:
        if entry.problem is not None:
            return
        study, number = section.study.name, entry.trial.number
        where = section.study.folder
        folder = self.out_dir / where / trial_folder_name(number)
        section.trial_figures[number] = {
            n: f"{where}/{folder.name}/{figure_file(n)}" for n in TRIAL_FIGURES
        }
        manifest_key = f"trial:{study}:{number}"
        key = f"{REPORT_VERSION}|{entry.key}"
        if self._fresh(manifest_key, key, [folder / figure_file(n) for n in TRIAL_FIGURES]):
            return

        # Whatever a damaged folder holds, this trial is marked and the rest of the report renders.
        try:
            self._draw_trial(study, entry, folder)
        except VaesweepError as err:
            _mark(section, entry, str(err), note)
            return
        except Exception as err:  # a figure that cannot be drawn from what the folder holds
            _mark(section, entry, f"cannot draw its figures ({first_line(err)})", note)
            return
        self.manifest[manifest_key] = key

    def _draw_trial(self, study: str, entry: TrialEntry, folder: Path) -> None:
        from vaesweep.report import figures
        from vaesweep.store.artifacts import load_history, load_latents, load_model

        number = entry.trial.number
        assert entry.folder is not None  # only trials without a problem are drawn
        model, _ = load_model(entry.folder)
        history = load_history(entry.folder)
        metrics = recorded_metrics(entry.trial)  # the copy the table shows
        folder.mkdir(parents=True, exist_ok=True)
        title = f"{study} trial {number} ({_format_params(entry.trial.params)})"
        means, labels = load_latents(entry.folder)
        originals = self._originals()
        draw = {  # one drawing for each of the page's TRIAL_FIGURES
            "latent": lambda: figures.latent_scatter(
                means, labels, f"{title}: test-set latent means"
            ),
            "manifold": lambda: figures.manifold_grid(
                model, means.std(axis=0), f"{title}: decoded latent grid"
            ),
            "reconstructions": lambda: figures.reconstructions(
                model, originals, f"{title}: test images and z = μ reconstructions"
            ),
            "uncertainty": lambda: figures.uncertainty_maps(model, originals, title),
            "history": lambda: figures.training_history(history, title),
            "kl-per-dim": lambda: figures.kl_per_dimension(
                metrics.get("test_kl_per_dim", []), metrics.get("test_active_units"), title
            ),
        }
        for name in TRIAL_FIGURES:
            self._save(draw[name](), folder / figure_file(name))

    def _originals(self):
        rng = np.random.default_rng(SAMPLE_SEED)
        indices = rng.choice(len(self.data.test_x), size=SAMPLES_SHOWN, replace=False)
        return self.data.test_x[np.sort(indices)]


def _drawn_trials(answered: StudyAnswer, most: int | None) -> list[TrialEntry]:
    """The trials whose own figures are drawn: every one (most None), else those in the answer,
    then the others by the first objective, best first, up to `most`."""
    study = answered.study
    if most is None or len(study.entries) <= most:
        return list(study.entries)
    table = answered.table.set_index("trial")
    objective = study.objectives[0]
    better = 1 if study.directions[0] == "minimize" else -1

    def rank(entry: TrialEntry) -> tuple[bool, float, int]:
        number = entry.trial.number
        value = table[objective].get(number, math.nan) if objective in table else math.nan
        score = better * value if not math.isnan(value) else math.inf
        return (not bool(table["in_answer"].get(number, False)), score, number)

    chosen = sorted(study.entries, key=rank)[:most]
    return sorted(chosen, key=lambda e: e.trial.number)


def _mark(section: Section, entry: TrialEntry, problem: str, note: Callable[[str], None]) -> None:
    """A trial whose figures could not be drawn: said on the page, in its table and to `note`."""
    number = entry.trial.number
    section.problems[number] = problem
    section.trial_figures.pop(number, None)
    note(f"study {shown(section.study.name)} trial {number}: {problem}")


def _search_drawings(answered: StudyAnswer, metrics: list[str]) -> dict[str, Callable[[], Any]]:
    """A sampled search's views of each searched setting, and a tuned study's tuning curves."""
    from vaesweep.report import figures

    study, table = answered.study, answered.table
    draw: dict[str, Callable[[], Any]] = {}
    for param in study.search:
        draw[f"metrics-vs-{param['name']}"] = functools.partial(
            figures.explored,
            table[table["phase"] == Phase.EXPLORE],
            param["name"],
            metrics,
            categorical=param["kind"] == "categorical",
            log=bool(param.get("log")),
        )
    for tuned in study.tuned:
        draw[f"tuning-{tuned.name}"] = functools.partial(
            figures.tuning_curves,
            tuning.tuning_rows(study, table),
            tuning.chosen(study, table),
            tuning.scientific(study),
            tuned,
            study.objectives[0],
        )
    return draw


def _planned_study_figures(answered: StudyAnswer) -> list[str]:
    """The answer's figures first (each configuration minus the best mean of the others, then
    every replicate); exploration views only for sampled searches, and importances only where
    two or more parameters are searched."""
    study = answered.study
    names = []
    if any(a.comparison for a in answered.answers):
        names.append("paired-differences")
    if answered.table["in_answer"].any():
        names.append("effects")
    names += [f"tuning-{p.name}" for p in study.tuned]
    search = study.design.samples
    if search:
        names += [f"metrics-vs-{p['name']}" for p in study.search]
    if study.search:
        names.append("learning-curves")
    if search:
        names.append("optimization-history")
    if len(study.search) >= 2:
        names.append("importances")
    if len(study.objectives) > 1:
        names.append("pareto-front")
    return names


def _signed_value(index: int, sign: float, trial: optuna.trial.FrozenTrial) -> float:
    return sign * trial.values[index]


def _importances(study: optuna.Study, objectives: list[str]) -> dict[str, dict[str, float]]:
    """Optuna's default parameter importances per objective; empty with too little to compare."""
    result = {}
    for index, (objective, direction) in enumerate(zip(objectives, study.directions, strict=True)):
        # The evaluator ranks parameters for low targets, so maximised objectives are negated.
        sign = -1.0 if direction == optuna.study.StudyDirection.MAXIMIZE else 1.0
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                values = optuna.importance.get_param_importances(
                    study, target=functools.partial(_signed_value, index, sign)
                )
        except (ValueError, RuntimeError):
            return {}
        if not values:
            return {}
        result[objective] = values
    return result


def _param_columns(study: StoredStudy, entry: TrialEntry) -> dict[str, Any]:
    return {p["name"]: entry.trial.params.get(p["name"]) for p in study.search}


def _format_params(params: dict[str, Any]) -> str:
    return ", ".join(
        f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items()
    )


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, default=str).encode()).hexdigest()[:16]


def _load_manifest(out_dir: Path) -> dict[str, str]:
    try:
        return json.loads((out_dir / MANIFEST_FILE).read_text())
    except (OSError, ValueError):
        return {}  # no manifest or a damaged one: draw everything


def _save_manifest(out_dir: Path, manifest: dict[str, str]) -> None:
    partial = out_dir / f".{MANIFEST_FILE}.partial"
    partial.write_text(json.dumps(manifest, indent=1, sort_keys=True))
    os.replace(partial, out_dir / MANIFEST_FILE)
