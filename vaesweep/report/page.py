"""index.html of a report: every study, table and figure, by relative links (no server needed).

The markup is the template's (templates/index.html.j2, autoescaped, so every name and number is
shown as text, with control characters made visible); this module hands it each section's values
in page order."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import jinja2
import markupsafe
import numpy as np
import pandas as pd

from vaesweep.errors import counted, visible
from vaesweep.report.side_by_side import groups
from vaesweep.spec.metric_names import label
from vaesweep.store.layout import PAGE_FILE
from vaesweep.store.storage import redact

if TYPE_CHECKING:
    from vaesweep.answer import StoredStudy, StudyAnswer
    from vaesweep.answer.stored import TrialEntry
    from vaesweep.report.anchors import Anchor
    from vaesweep.report.section import Section

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.2rem auto; max-width: 1300px; color: #222;
  padding: 0 1.5rem; }
h1, h2, h3 { font-weight: 600; margin: 0.6rem 0 0.3rem; } nav a { margin-right: 1rem; }
table { border-collapse: collapse; font-size: 0.8rem; margin: 0.5rem 0 1rem; }
th, td { border: 1px solid #ccc; padding: 0.2rem 0.4rem; text-align: right; white-space: nowrap; }
.scroll { overflow-x: auto; border: 1px solid #eee; }
th { background: #f2f4f8; position: sticky; top: 0; }
tr.best td { background: #e7f6e7; font-weight: 600; }
tr.excluded td { color: #999; }
figure { display: inline-block; margin: 0.5rem; vertical-align: top; }
figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: 0.8rem; color: #555; }
details { margin: 0.3rem 0; } summary { cursor: pointer; }
.note { color: #a33; }
.answer { background: #f6f8fb; border-left: 4px solid #3a6ea5; padding: 0.4rem 0.9rem; }
.answer p { margin: 0.35rem 0; } .fixed { font-size: 0.8rem; color: #444; }
ul.answers li { margin: 0.25rem 0; }
table.verdicts { margin: 0.4rem 0; background: #fff; }
"""
FLOAT_FORMAT = "{:.4g}".format

# Study figures drawn the page's full width; the others take half.
WIDE_FIGURES = ("metrics-vs-", "learning-curves", "optimization-history", "tuning-")
# Every trial's figures, in page order: name (the file's stem) -> (caption, width on the page).
# The report draws exactly these; a study's figures are named where the report plans them.
TRIAL_FIGURES = {
    "latent": ("test-set latent means by class", "38%"),
    "manifold": ("decoded 15×15 latent grid over [-3, 3]²", "38%"),
    "reconstructions": ("originals and z = μ reconstructions", "78%"),
    "uncertainty": ("uncertainty maps", "78%"),
    "history": ("training history", "78%"),
    "kl-per-dim": ("KL per latent dimension (test set)", "78%"),
}


def _link(path: str) -> str:
    """A relative file link: every character that could make it a URL of its own is quoted
    (the template then escapes it for the attribute)."""
    return quote(path, safe="/")


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, bool | np.bool_):
        return "✓" if value else ""
    if isinstance(value, float):
        return FLOAT_FORMAT(value)
    return str(value)


# The page's trials table: what a trial is and what it scored on the study's objectives, so it
# fits a 1280 px screen; every other metric is in trials.csv and trials.md, linked above it.
PAGE_COLUMNS = ("trial", "best", "state", "in_answer", "phase", "replicate")
PAGE_TAIL = ("duration_s", "epochs_run", "note")


def _page_columns(study: StoredStudy, table: pd.DataFrame) -> list[str]:
    wanted = [*PAGE_COLUMNS, *study.params, *study.objectives, *PAGE_TAIL]
    return [c for c in dict.fromkeys(wanted) if c in table and table[c].notna().any()]


def _trial_rows(study: StoredStudy, trials: pd.DataFrame) -> list[tuple[str, list[Any]]]:
    """(row class, cells of `_page_columns`): the best configuration's rows first, then the
    other comparable ones, then the trials that never enter an estimate (greyed)."""
    table = trials.assign(best=trials["best"].map({True: "★", False: ""}))
    table = table[_page_columns(study, trials)]
    order = table.assign(
        _rank=(~trials["best"]).astype(int) + (~trials["in_answer"]) * 2
    ).sort_values(["_rank", "trial"], kind="stable")
    rows = []
    for _, row in order.drop(columns="_rank").iterrows():
        kind = "best" if row["best"] else ("" if row["in_answer"] else "excluded")
        rows.append((kind, list(row.to_numpy())))
    return rows


def _trial(section: Section, entry: TrialEntry) -> dict[str, Any]:
    trial = entry.trial
    params = ", ".join(f"{k}={v}" for k, v in trial.params.items())
    star = "★ " if trial.number in section.answered.best else ""
    problem = section.problem(trial.number)
    figures = section.trial_figures.get(trial.number, {})
    return {
        "summary": f"{star}trial {trial.number} — {trial.state.name.lower()} — {params}",
        "problem": problem,
        "figures": [] if problem else list(figures.items()),
    }


def _drawn_note(section: Section) -> str:
    """Which trials' own figures are on the page, where the report drew only some."""
    drawn, total = section.trials_drawn, len(section.study.entries)
    if drawn is None or drawn >= total:
        return ""
    in_answer = int(section.answered.table["in_answer"].sum())
    which = (
        "those in the answer, then the best"
        if drawn >= in_answer
        else (f"{drawn} of the {in_answer} in the answer, the best")
    )
    return (
        f"Figures of {drawn} of {total} trials: {which} by {label(section.study.objectives[0])}. "
        "vaesweep report --all-trials draws every trial's."
    )


def _environments(study: StoredStudy) -> str:
    """Where the trials ran: the same weights give the same metrics only with the same versions
    and processor, so a study trained in several places says so."""
    found = study.environments
    if len(found) == 1:
        return found[0][0]
    return "; ".join(f"{where} ({counted(n, 'trial')})" for where, n in found) + (
        ". Rounding differs between these, so the last digits of their trials may too."
    )


def _anchors(report: StudyAnswer, anchors: list[Anchor]) -> list[dict[str, Any]]:
    """Reference numbers for the metrics this study measured, beside its best configuration's."""
    if not report.answers or report.effects.empty:
        return []
    best = report.effects[report.effects["value"] == report.answers[0].best]
    best_trials = report.table[report.table["trial"].isin(report.best_mean)]
    settings = dict(report.study.fixed)
    if not best_trials.empty:
        settings |= {p: best_trials.iloc[0][p] for p in report.study.params}
    rows = []
    for anchor in anchors:
        mine = best[best["metric"] == anchor.metric]
        if mine.empty or not anchor.applies_to(settings):
            continue
        here = mine.iloc[0]
        rows.append(
            {
                "name": anchor.name,
                "metric": anchor.metric,
                "value": anchor.value,
                "mean": here["mean"],
                "low": here["ci_low"],
                "high": here["ci_high"],
                "protocol": anchor.protocol,
                "source": anchor.source,
            }
        )
    return rows


def _section(section: Section, anchors: list[Anchor]) -> dict[str, Any]:
    """One study's values for the template, in its section's order."""
    study, answered, table = section.study, section.answered, section.table
    figures = dict(section.figures)
    evidence = figures.pop("paired-differences", None)  # in the answer block
    effect = figures.pop("effects", None)
    fair = table["in_answer"]
    return {
        "section": section,
        "study": study,
        "answered": answered,
        "design": study.design,
        "compared": int(fair.sum()),
        "excluded": len(table) - int(fair.sum()),
        "evidence": evidence,
        "effect": effect,
        "fixed": ", ".join(f"{k} = {v}" for k, v in sorted(study.fixed.items())) or "defaults",
        "environments": _environments(study),
        "anchors": _anchors(answered, anchors),
        "anchored": (  # the answer's configuration: its best mean, "best" only if shown so
            f"this study at its best mean of {label(answered.answers[0].objective)} (95% CI)"
            if answered.answers
            else ""
        ),
        "files": ("effects.csv", "trials.csv", "trials.md"),
        "columns": _page_columns(study, table),
        "rows": _trial_rows(study, table),
        "others": [
            (name.replace("-", " "), path, "98%" if name.startswith(WIDE_FIGURES) else "48%")
            for name, path in figures.items()
        ],
        "trials": [
            _trial(section, e)
            for e in study.entries
            if e.trial.number in section.trial_figures or section.problem(e.trial.number)
        ],
        "drawn": _drawn_note(section),
        "tuning": list(answered.range_warnings),
        "params": ", ".join(study.params),
        "verdicts": [_verdicts(answered, a.objective) for a in answered.answers],
        "headline": _headline(answered),
        "overridden": ", ".join(
            f"{key} to {new} (the file's: {old})" for key, old, new in study.overridden
        ),
    }


def _headline(answered: StudyAnswer) -> str:
    """The study's answer in a line for the page's top: each objective's verdict and best mean
    with its interval ("val SSIM: best likelihood = bce (best mean 0.4864 ± 0.0047)"); the
    sentences, with what they rest on, are in the study's section."""
    parts = []
    for a in answered.answers:
        interval = "" if math.isnan(a.half_width) else f" ± {a.half_width:.2g}"
        parts.append(f"{label(a.objective)}: {a.headline} (best mean {a.mean:.4g}{interval})")
    return "; ".join(parts) or "no answer yet"


def _verdicts(answered: StudyAnswer, objective: str) -> list[dict[str, Any]]:
    """An objective's rows of the effects table, as the answer's table shows them above its
    sentence (none without a comparison)."""
    rows = answered.effects[answered.effects["metric"] == objective]
    if rows.empty or rows["verdict"].isna().all():
        return []
    return rows.to_dict("records")


def _visible(value: Any) -> Any:
    """Every value the page shows, with control and bidirectional characters made visible (a
    stored name can hold them; escaping markup alone keeps them raw). Markup (a macro's output)
    is the template's own, made of values already shown so."""
    if isinstance(value, str) and not isinstance(value, markupsafe.Markup):
        return visible(value, keep="\n")
    return value


_TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("vaesweep.report", "templates"),
    autoescape=True,
    finalize=_visible,
    undefined=jinja2.StrictUndefined,  # a misspelt name fails the tests, not the page
    keep_trailing_newline=True,
)
_TEMPLATES.filters |= {"link": _link, "cell": _cell, "num": "{:.4g}".format, "label": label}
_TEMPLATES.tests["finite"] = math.isfinite
_TEMPLATES.globals |= {"trial_figures": TRIAL_FIGURES, "zip": zip}


def write_index(
    out_dir: Path,
    sections: list[Section],
    classes: str,
    storage_url: str,
    anchors: list[Anchor],
) -> Path:
    page = _TEMPLATES.get_template("index.html.j2").render(
        style=STYLE,
        sections=[_section(section, anchors) for section in sections],
        compared=groups([section.answered for section in sections]),
        classes=classes,
        storage=redact(storage_url),
    )
    path = out_dir / PAGE_FILE
    if not path.is_file() or path.read_text() != page:
        path.write_text(page)
    return path
