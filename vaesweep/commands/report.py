"""`vaesweep report`: figures, tables and an HTML page of every finished trial, the answer
first."""

from __future__ import annotations

from pathlib import Path

import click

from vaesweep.commands.common import (
    artifacts_option,
    data_dir_option,
    quiet_optuna,
    results_option,
    storage_option,
)
from vaesweep.errors import counted, visible


@click.command()
@click.option(
    "--study", "study_names", multiple=True, help="A stored study (repeatable) [default: all]."
)
@storage_option
@results_option("Folder holding the trial folders.")
@artifacts_option(
    "The artifact store the run kept trial folders in: those missing under --results are "
    "fetched into it."
)
@click.option(
    "--out", type=click.Path(path_type=Path), help="Report folder [default: RESULTS/report]."
)
@data_dir_option
@click.option(
    "--all-trials",
    is_flag=True,
    help="Draw every trial's own figures [default: those in the answer, then the best, "
    "30 a study].",
)
def report(study_names, storage, results, artifacts, out, data_dir, all_trials) -> None:
    """Render figures, tables and index.html of every study (redraws only changes)."""
    from vaesweep.console import StudyBars, make_console
    from vaesweep.report.render import render_report
    from vaesweep.store.layout import PAGE_FILE, REPORT_DIR_NAME

    quiet_optuna()
    out = out or results / REPORT_DIR_NAME
    bars = StudyBars(make_console(stderr=True))  # stdout keeps the one summary line
    try:
        summary = render_report(
            results,
            out,
            storage,
            study_names,
            data_dir,
            warn=lambda message: bars.console.print(message, soft_wrap=True),
            on_progress=bars,
            all_trials=all_trials,
            artifacts=artifacts,
        )
    finally:
        bars.stop()
    trials = sum(len(s.study.entries) for s in summary.studies)
    click.echo(
        f"report {visible(out / PAGE_FILE)}: {counted(len(summary.studies), 'study', 'studies')}, "
        f"{counted(trials, 'trial')}, {counted(summary.drawn, 'figure')} drawn"
    )
