"""The `vaesweep` command: registers commands; each is a thin call into the library."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from vaesweep import __version__
from vaesweep.errors import VaesweepError


class OneLineErrors(click.Group):
    """Every user error, usage errors included, is one 'Error: ...' line and a non-zero exit."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except VaesweepError as err:
            raise click.ClickException(str(err)) from None
        except click.UsageError as err:
            usage = click.ClickException(err.format_message())
            usage.exit_code = err.exit_code
            raise usage from None


@click.group(cls=OneLineErrors)
@click.version_option(__version__, prog_name="vaesweep")
def main() -> None:
    """Hyperparameter studies of variational autoencoders on Fashion-MNIST."""


@main.command()
@click.option(
    "--study", required=True, help="A study name from studies/ or a path to a .toml file."
)
@click.option("--trials", type=int, required=True, help="Finished trials the study should have.")
@click.option("--storage", help="Optuna storage URL [default: sqlite:///RESULTS/vaesweep.db].")
@click.option(
    "--results",
    type=click.Path(path_type=Path),
    default=Path("results"),
    show_default=True,
    help="Folder for trial folders (and the default SQLite storage).",
)
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a fixed setting, e.g. --set epochs=2. Repeatable.",
)
@click.option("--name", help="Name of the stored study [default: the study's name].")
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    help="Folder with the Fashion-MNIST IDX files [default: $VAESWEEP_DATA, then search].",
)
@click.option(
    "--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True
)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Base seed of sampler and trials."
)
def run(study, trials, storage, results, overrides, name, data_dir, device, seed) -> None:
    """Run a study until it has --trials finished trials (re-running resumes)."""
    from vaesweep.progress import make_progress
    from vaesweep.storage import METRICS_ATTR
    from vaesweep.studies import load_study, parse_overrides
    from vaesweep.sweep import run_study

    _quiet_optuna()
    spec = load_study(study).with_overrides(parse_overrides(overrides))
    console = Console(highlight=False, soft_wrap=True)
    summary = run_study(
        spec,
        trials,
        results,
        make_progress(console),
        storage_url=storage,
        study_name=name,
        data_dir=data_dir,
        device=device,
        seed=seed,
    )
    console.print(
        f"study {summary.study_name}: {summary.finished}/{summary.target} trials finished "
        f"({summary.ran} run now, {summary.failed} failed); storage {summary.storage_url}"
    )
    for trial in summary.best:
        metrics = trial.user_attrs.get(METRICS_ATTR, {})
        shown = ", ".join(f"{k}={v:.4g}" for k, v in metrics.items() if k.startswith("test_"))
        console.print(f"best trial {trial.number} {trial.params}: {shown}")


@main.command()
def studies() -> None:
    """List the studies in studies/ with their descriptions and search spaces."""
    from vaesweep.studies import available_studies, load_study

    table = Table(show_lines=True)
    for column in ("study", "description", "searches", "objectives"):
        table.add_column(column)
    for name in available_studies():
        spec = load_study(name)
        searches = "\n".join(f"{p.name}: {p.describe()}" for p in spec.search)
        table.add_row(name, spec.description, searches, "\n".join(spec.objectives))
    Console(highlight=False).print(table)


@main.command()
@click.option(
    "--study", "study_names", multiple=True, help="A stored study (repeatable) [default: all]."
)
@click.option("--storage", help="Optuna storage URL [default: sqlite:///RESULTS/vaesweep.db].")
@click.option(
    "--results",
    type=click.Path(path_type=Path),
    default=Path("results"),
    show_default=True,
    help="Folder holding the trial folders.",
)
@click.option(
    "--out", type=click.Path(path_type=Path), help="Report folder [default: RESULTS/report]."
)
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    help="Folder with the Fashion-MNIST IDX files [default: $VAESWEEP_DATA, then search].",
)
def report(study_names, storage, results, out, data_dir) -> None:
    """Render figures, tables and index.html for every finished trial (redraws only changes)."""
    from vaesweep.layout import DEFAULT_DB_NAME, REPORT_DIR_NAME
    from vaesweep.report import render_report
    from vaesweep.storage import default_storage_url

    _quiet_optuna()
    if storage is None and not (results / DEFAULT_DB_NAME).is_file():
        raise VaesweepError(f"no results in {results} (no vaesweep.db); run 'vaesweep run' first")
    out = out or results / REPORT_DIR_NAME
    summary = render_report(
        results, out, storage or default_storage_url(results), study_names, data_dir,
        warn=lambda message: click.echo(message, err=True),
    )  # fmt: skip
    trials = sum(len(s.entries) for s in summary.studies)
    click.echo(
        f"report {out / 'index.html'}: {len(summary.studies)} studies, {trials} trials, "
        f"{summary.drawn} figures drawn"
    )


def _quiet_optuna() -> None:
    """Our progress view replaces Optuna's per-trial log lines."""
    import optuna

    optuna.logging.set_verbosity(logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
