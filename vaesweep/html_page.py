"""index.html of a report: every study, table and figure, by relative links (no server needed)."""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import TYPE_CHECKING

from vaesweep.storage import redact

if TYPE_CHECKING:
    from vaesweep.report import StudyReport, TrialEntry

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1300px; color: #222; }
h1, h2, h3 { font-weight: 600; } nav a { margin-right: 1rem; }
table { border-collapse: collapse; font-size: 0.8rem; margin: 0.5rem 0 1rem; }
th, td { border: 1px solid #ccc; padding: 0.2rem 0.4rem; text-align: right; white-space: nowrap; }
.scroll { overflow: auto; max-height: 32rem; border: 1px solid #eee; }
th { background: #f2f4f8; position: sticky; top: 0; }
tr.best td { background: #e7f6e7; font-weight: 600; }
figure { display: inline-block; margin: 0.5rem; vertical-align: top; }
figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: 0.8rem; color: #555; }
details { margin: 0.3rem 0; } summary { cursor: pointer; }
.note { color: #a33; }
"""
FLOAT_FORMAT = "{:.4g}".format


def _figure(path: str, caption: str, width: str = "48%") -> str:
    return (
        f'<figure style="width:{width}"><a href="{escape(path)}"><img src="{escape(path)}" '
        f'alt="{escape(caption)}" loading="lazy"></a>'
        f"<figcaption>{escape(caption)}</figcaption></figure>"
    )


def _trials_table(report: StudyReport) -> str:
    table = report.table.assign(best=report.table["best"].map({True: "★", False: ""}))
    html = table.to_html(index=False, float_format=FLOAT_FORMAT, na_rep="", border=0, escape=True)
    for number in report.best:  # highlight the best rows
        html = html.replace(
            f"<tr>\n      <td>{number}</td>", f'<tr class="best">\n      <td>{number}</td>', 1
        )
    return f'<div class="scroll">{html}</div>'


def _trial_section(entry: TrialEntry, best: bool) -> str:
    trial = entry.trial
    params = ", ".join(f"{k}={v}" for k, v in trial.params.items())
    star = "★ " if best else ""
    summary = f"{star}trial {trial.number} — {trial.state.name.lower()} — {params}"
    if entry.problem:
        problem = f'<span class="note">({escape(entry.problem)})</span>'
        return f"<details><summary>{escape(summary)} {problem}</summary></details>"
    captions = {
        "latent": "test-set latent means by class",
        "manifold": "decoded 15×15 latent grid over [-3, 3]²",
        "reconstructions": "originals and z = μ reconstructions", "uncertainty": "uncertainty maps",
        "history": "training history",
    }  # fmt: skip
    width = {"latent": "38%", "manifold": "38%", "history": "78%"}
    figures = "".join(
        _figure(path, captions[name], width.get(name, "78%"))
        for name, path in entry.figures.items()
    )
    return f"<details><summary>{escape(summary)}</summary>{figures}</details>"


def _study_section(report: StudyReport) -> str:
    name = escape(report.name)
    links = " · ".join(f'<a href="{name}/trials.{ext}">trials.{ext}</a>' for ext in ("csv", "md"))
    wide = ("metrics-vs-", "learning-curves", "optimization-history")
    figures = "".join(
        _figure(path, name.replace("-", " "), "98%" if name.startswith(wide) else "48%")
        for name, path in report.figures.items()
    )
    notes = "".join(f'<p class="note">{escape(note)}</p>' for note in report.notes)
    trials = "".join(_trial_section(e, e.trial.number in report.best) for e in report.entries)
    return (
        f'<section id="{name}"><h2>study {name}</h2><p>{escape(report.description)}</p>'
        f"<p>objectives: {escape(', '.join(report.objectives))} · "
        f"{len(report.entries)} finished trials · "
        f"best: {escape(', '.join(map(str, sorted(report.best))) or 'none')}</p>"
        f"<h3>trials</h3><p>{links}</p>{_trials_table(report)}"
        f"<h3>comparisons</h3>{figures}{notes}<h3>per trial</h3>{trials}</section>"
    )


def write_index(out_dir: Path, reports: list[StudyReport], classes: str, storage_url: str) -> Path:
    nav = "".join(f'<a href="#{escape(r.name)}">{escape(r.name)}</a>' for r in reports)
    body = "".join(_study_section(report) for report in reports)
    page = (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>vaesweep report</title><style>{STYLE}</style></head><body>"
        f"<h1>vaesweep report</h1><p>storage: <code>{escape(redact(storage_url))}</code></p>"
        f"<nav>studies: {nav}</nav>"
        f"<h2>Fashion-MNIST</h2>{_figure(classes, 'one random sample per class', '70%')}"
        f"{body}</body></html>\n"
    )
    path = out_dir / "index.html"
    if not path.is_file() or path.read_text() != page:
        path.write_text(page)
    return path
