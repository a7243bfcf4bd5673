"""index.html of a report: every study, table and figure, by relative links (no server needed)."""

from __future__ import annotations

import math
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

import numpy as np

from vaesweep.layout import PAGE_FILE
from vaesweep.metric_names import label
from vaesweep.side_by_side import SideBySide, groups
from vaesweep.storage import redact

if TYPE_CHECKING:
    from vaesweep.anchors import Anchor
    from vaesweep.study_data import StudyData, TrialEntry

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.2rem auto; max-width: 1300px; color: #222; }
h1, h2, h3 { font-weight: 600; margin: 0.6rem 0 0.3rem; } nav a { margin-right: 1rem; }
table { border-collapse: collapse; font-size: 0.8rem; margin: 0.5rem 0 1rem; }
th, td { border: 1px solid #ccc; padding: 0.2rem 0.4rem; text-align: right; white-space: nowrap; }
.scroll { overflow: auto; max-height: 24rem; border: 1px solid #eee; }
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
"""
FLOAT_FORMAT = "{:.4g}".format

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


def _figure(path: str, caption: str, width: str = "48%") -> str:
    return (
        f'<figure style="width:{width}"><a href="{_link(path)}"><img src="{_link(path)}" '
        f'alt="{escape(caption)}" loading="lazy"></a>'
        f"<figcaption>{escape(caption)}</figcaption></figure>"
    )


def _link(path: str) -> str:
    """A relative file link: every character that could make it a URL of its own is quoted."""
    return escape(quote(path, safe="/"))


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, bool | np.bool_):
        return "✓" if value else ""
    if isinstance(value, float):
        return FLOAT_FORMAT(value)
    return escape(str(value))


def _trials_table(report: StudyData) -> str:
    """Best configuration's rows first, then the other comparable ones, then the trials that
    never enter an estimate (greyed)."""
    table = report.table.assign(best=report.table["best"].map({True: "★", False: ""}))
    order = table.assign(
        _rank=(~report.table["best"]).astype(int) + (~report.table["in_answer"]) * 2
    ).sort_values(["_rank", "trial"], kind="stable")
    head = "".join(f"<th>{escape(str(c))}</th>" for c in table.columns)
    rows = []
    for _, row in order.drop(columns="_rank").iterrows():
        kind = "best" if row["best"] else ("" if row["in_answer"] else "excluded")
        cells = "".join(f"<td>{_cell(v)}</td>" for v in row.to_numpy())
        rows.append(f'<tr class="{kind}">{cells}</tr>')
    return f'<div class="scroll"><table><tr>{head}</tr>{"".join(rows)}</table></div>'


def _trial_section(entry: TrialEntry, best: bool) -> str:
    trial = entry.trial
    params = ", ".join(f"{k}={v}" for k, v in trial.params.items())
    star = "★ " if best else ""
    summary = f"{star}trial {trial.number} — {trial.state.name.lower()} — {params}"
    if entry.problem:
        problem = f'<span class="note">({escape(entry.problem)})</span>'
        return f"<details><summary>{escape(summary)} {problem}</summary></details>"
    figures = "".join(_figure(path, *TRIAL_FIGURES[name]) for name, path in entry.figures.items())
    return f"<details><summary>{escape(summary)}</summary>{figures}</details>"


def _answer_block(report: StudyData) -> str:
    """The question, the answer, its paired-differences figure and what it rests on: first on the
    study's section, so the first screen holds them."""
    design = report.design
    fair = report.table["in_answer"]
    excluded = len(report.table) - int(fair.sum())
    answers = "".join(f"<p><b>Answer:</b> {escape(a.sentence)}</p>" for a in report.answers)
    if not answers:
        answers = (
            '<p class="note">No answer yet: no trial has completed the study\'s protocol '
            f"({escape(design.answer_phase)} phase, full budget"
            + (", complete seed blocks" if design.shares_seeds else "")
            + ").</p>"
        )
    figure = report.figures.get("paired-differences")
    evidence = _figure(figure, "each configuration minus the best", "80%") if figure else ""
    fixed = ", ".join(f"{k} = {v}" for k, v in sorted(report.fixed.items())) or "defaults"
    pairing = (
        "Replicate r of every configuration shares seed r (a block: the same initial weights, "
        "batch order and noise), so differences are taken within blocks. "
        if design.shares_seeds
        else "Replicates are independent (unblocked). "
    )
    return (
        f'<div class="answer"><p><b>Question:</b> {escape(report.description)}</p>{answers}'
        f"{evidence}"
        f"<p>Compared: {int(fair.sum())} completed {escape(design.answer_phase)} trials "
        f"(design: {escape(report.design_summary)}); "
        + (
            f"{excluded} other finished trials (pruned, explorations, or in an incomplete seed "
            "block) are greyed and never enter an estimate. "
            if excluded
            else "every finished trial is compared. "
        )
        + pairing
        + "A mean's interval is a Student-t 95% interval over replicates; a difference's is "
        "Tukey's 95% simultaneous interval, valid for every configuration at once although "
        "the best is picked from the data; a configuration is better only where its interval "
        "excludes 0 and the ANOVA rejects at 5%.</p>"
        f'<p class="fixed">Fixed settings: {escape(fixed)}</p>'
        f'<p class="fixed">Trained with: {escape(_environments(report))}</p></div>'
    )


def _environments(report: StudyData) -> str:
    """Where the trials ran: the same weights give the same metrics only with the same versions
    and processor, so a study trained in several places says so."""
    found = report.environments
    if len(found) == 1:
        return found[0][0]
    return "; ".join(f"{where} ({n} trials)" for where, n in found) + (
        ". Rounding differs between these, so the last digits of their trials may too."
    )


def _anchors(report: StudyData, anchors: list[Anchor]) -> str:
    """Reference numbers for the metrics this study measured, beside its best configuration's."""
    if not report.answers or report.effects.empty:
        return ""
    best = report.effects[report.effects["value"] == report.answers[0].best]
    best_trials = report.table[report.table["best"]]
    settings = dict(report.fixed)
    if not best_trials.empty:
        settings |= {p: best_trials.iloc[0][p] for p in report.params}
    rows = []
    for anchor in anchors:
        mine = best[best["metric"] == anchor.metric]
        if mine.empty or not anchor.applies_to(settings):
            continue
        here = mine.iloc[0]
        rows.append(
            f"<tr><td>{escape(anchor.name)}</td><td>{escape(anchor.metric)}</td>"
            f"<td>{anchor.value:.4g}</td><td>{here['mean']:.4g} "
            f"({_cell(here['ci_low'])}–{_cell(here['ci_high'])})</td>"
            f'<td style="text-align:left; white-space:normal">{escape(anchor.protocol)}; '
            f"{escape(anchor.source)}</td></tr>"
        )
    if not rows:
        return ""
    head = (
        "<tr><th>anchor</th><th>metric</th><th>anchor's value</th>"
        "<th>this study's best configuration (95% CI)</th><th>protocol; source</th></tr>"
    )
    return (
        "<h3>anchors</h3><p>Reference results under their own protocols (which differ from "
        f"this study's: compare with care).</p><table>{head}{''.join(rows)}</table>"
    )


def _study_section(report: StudyData, anchors: list[Anchor]) -> str:
    name = escape(report.name)
    links = " · ".join(
        f'<a href="{_link(f"{report.folder}/{file}")}">{file}</a>'
        for file in ("effects.csv", "trials.csv", "trials.md")
    )
    figures = dict(report.figures)
    figures.pop("paired-differences", None)  # in the answer block
    effect = figures.pop("effects", None)
    effect_html = _figure(effect, "effect of each configuration", "98%") if effect else ""
    wide = ("metrics-vs-", "learning-curves", "optimization-history")
    others = "".join(
        _figure(path, name.replace("-", " "), "98%" if name.startswith(wide) else "48%")
        for name, path in figures.items()
    )
    notes = "".join(f'<p class="note">{escape(note)}</p>' for note in report.notes)
    trials = "".join(_trial_section(e, e.trial.number in report.best) for e in report.entries)
    return (
        f'<section id="{_link(report.folder)}"><h2>study {name}</h2>'
        f"{_answer_block(report)}{effect_html}"
        f"{_anchors(report, anchors)}"
        f"<h3>trials</h3><p>{len(report.entries)} finished trials · ★ the configuration with "
        f"the best mean (see the answer for whether it is distinguishable) · greyed: not "
        f"compared · {links}</p>{_trials_table(report)}"
        f"<h3>more figures</h3>{others}{notes}<h3>per trial</h3>{trials}</section>"
    )


def _side_by_side(compared: list[SideBySide]) -> str:
    parts = []
    for found in compared:
        rows = "".join(
            f"<tr><td>{escape(r.study)}</td><td>{escape(r.shown)}</td><td>{r.n}</td>"
            f"<td>{_cell(r.mean)}{'' if math.isnan(r.half_width) else f' ± {r.half_width:.2g}'}"
            "</td></tr>"
            for r in found.rows
        )
        names = [r.study for r in found.rows]
        differing = "".join(
            f"<li>{escape(k)}: "
            + escape(", ".join(f"{v} ({n})" for v, n in zip(values, names, strict=True)))
            + "</li>"
            for k, values in found.differing.items()
        )
        parts.append(
            f"<h3>{escape(label(found.objective))}</h3><table><tr><th>study</th>"
            f"<th>best configuration</th><th>n</th><th>mean (95% CI)</th></tr>{rows}</table>"
            f"<p>Settings that differ:</p><ul>{differing or '<li>none</li>'}</ul>"
            f"<p>{escape(found.verdict[:1].upper() + found.verdict[1:])}</p>"
        )
    return (
        '<section id="side-by-side"><h2>studies side by side</h2><p>Studies that share an '
        "objective, each by its best configuration (as <code>vaesweep compare</code> shows "
        f"them).</p>{''.join(parts)}</section>"
    )


def write_index(
    out_dir: Path,
    reports: list[StudyData],
    classes: str,
    storage_url: str,
    anchors: list[Anchor],
) -> Path:
    nav = "".join(f'<a href="#{_link(r.folder)}">{escape(r.name)}</a>' for r in reports)
    summary = "".join(
        f'<li><a href="#{_link(r.folder)}">{escape(r.name)}</a>: '
        + escape(" ".join(a.sentence for a in r.answers) or "no answer yet")
        + "</li>"
        for r in reports
    )
    body = "".join(_study_section(report, anchors) for report in reports)
    compared = groups(reports)
    if compared:
        nav += '<a href="#side-by-side">studies side by side</a>'
        body += _side_by_side(compared)
    page = (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>vaesweep report</title><style>{STYLE}</style></head><body>"
        f"<h1>vaesweep report</h1><ul class=answers>{summary}</ul>"
        f"<nav>studies: {nav}</nav>{body}"
        f"<h2>Fashion-MNIST</h2>{_figure(classes, 'one random sample per class', '70%')}"
        f"<p>storage: <code>{escape(redact(storage_url))}</code></p></body></html>\n"
    )
    path = out_dir / PAGE_FILE
    if not path.is_file() or path.read_text() != page:
        path.write_text(page)
    return path
