"""`vaesweep compare`: stored studies side by side, and whether their best configurations
differ."""

from __future__ import annotations

import math

import click
from rich.table import Table

from vaesweep.commands.common import results_option, storage_option
from vaesweep.errors import visible


@click.command()
@click.argument("study_names", metavar="STUDY STUDY...", nargs=-1, required=True)
@storage_option
@results_option("Folder holding the trial folders.")
@click.option("--objective", help="Compare on this objective [default: the first they share].")
def compare(study_names, storage, results, objective) -> None:
    """Stored studies that share an objective, side by side: each answer, the settings that
    differ, and whether their best configurations differ."""
    from vaesweep import results as stored
    from vaesweep.console import make_console
    from vaesweep.report.side_by_side import side_by_side
    from vaesweep.spec.metric_names import better, label

    console, errors = make_console(), make_console(stderr=True)
    answered = [stored.load(n, storage, results) for n in study_names]
    found = side_by_side(answered, objective)
    for result in answered:  # each answer shown is a look
        if refused := stored.record_look(result):
            errors.print(f"warning: {refused}", soft_wrap=True)
    way = "higher" if better(found.objective) == "maximize" else "lower"
    table = Table(title=f"{found.objective} ({label(found.objective)}; {way} is better)")
    for column in ("study", "configuration with the best mean", "n", "mean (95% CI)"):
        table.add_column(column)
    for row in found.rows:
        interval = "" if math.isnan(row.half_width) else f" ± {row.half_width:.2g}"
        mean = f"{row.mean:.4g}{interval}" if row.best else "—"
        table.add_row(visible(row.study), row.shown, str(row.n or ""), mean)
    console.print(table)
    console.print("settings that differ:" if found.differing else "no setting differs")
    for setting, values in found.differing.items():
        each = ", ".join(
            f"{visible(v)} ({visible(r.study)})" for v, r in zip(values, found.rows, strict=True)
        )
        console.print(f"  {visible(setting)}: {each}", soft_wrap=True)
    console.print(found.verdict, soft_wrap=True)
    for row in found.rows:
        console.print(f"{visible(row.study)}: {visible(row.sentence)}", soft_wrap=True)
