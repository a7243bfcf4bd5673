"""The `vaesweep` command: registers commands; each is a thin call into the library."""

from __future__ import annotations

import dataclasses
import math
import os
import re
from pathlib import Path

import click
from rich.table import Table

from vaesweep import __version__
from vaesweep.errors import VaesweepError, counted, shown, visible
from vaesweep.interrupts import EXIT_INTERRUPTED, graceful_interrupts
from vaesweep.spec.config import ARCHITECTURES, RULES


class _OneLineUsage(click.ClickException):
    """A usage error as one line (no usage block), with click's usage exit status."""

    exit_code = click.UsageError.exit_code


class OneLineErrors(click.Group):
    """Every user error, usage errors included, is one 'Error: ...' line and a non-zero exit."""

    def invoke(self, ctx: click.Context):
        kept = (
            "finished trials are kept; re-running resumes"
            if ctx.invoked_subcommand == "run"
            else "nothing stored was changed"
        )
        try:
            # From the first moment, before the seconds of importing torch: a signal then is an
            # interrupt like any other, never a silent death. (The commands hold it until their
            # imports are done: a KeyboardInterrupt raised inside torch's import, even when
            # handled, makes Python end by SIGINT, exit -2, instead of 130.)
            with graceful_interrupts():
                return super().invoke(ctx)
        except VaesweepError as err:
            raise click.ClickException(visible(err)) from None
        except KeyboardInterrupt:
            message = (
                "Interrupted: any running trial was recorded as failed and everything finished is "
                "kept; re-run the same command to continue."
                if ctx.invoked_subcommand == "run"
                else "Interrupted; nothing stored was changed."
            )
            click.echo(message, err=True)
            raise click.exceptions.Exit(EXIT_INTERRUPTED) from None
        except click.UsageError as err:
            raise _OneLineUsage(visible(err.format_message())) from None
        except (click.exceptions.Exit, click.ClickException):
            raise
        except Exception as err:  # a bug, or a failure nothing above foresaw: still one line
            if os.environ.get("VAESWEEP_DEBUG"):
                raise
            first = str(err).strip().splitlines()[0] if str(err).strip() else repr(err)
            raise click.ClickException(
                f"unexpected failure: {visible(first[:300])} ({kept}; "
                "set VAESWEEP_DEBUG=1 to see where it happened)"
            ) from None


# Options several commands share.
storage_option = click.option(
    "--storage", help="Optuna storage URL [default: sqlite:///RESULTS/vaesweep.db]."
)
data_dir_option = click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    help="Folder with the Fashion-MNIST IDX files [default: $VAESWEEP_DATA, then search].",
)
device_option = click.option(
    "--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True
)


def results_option(help: str):
    return click.option(
        "--results",
        type=click.Path(path_type=Path),
        default=Path("results"),
        show_default=True,
        help=help,
    )


@click.group(cls=OneLineErrors)
@click.version_option(__version__, prog_name="vaesweep")
def main() -> None:
    """Hyperparameter studies of variational autoencoders on Fashion-MNIST."""


@main.command()
@click.option(
    "--study", required=True, help="A study name from studies/ or a path to a .toml file."
)
@click.option("--trials", type=int, required=True, help="Finished trials the study should have.")
@storage_option
@results_option("Folder for trial folders (and the default SQLite storage).")
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a fixed setting, e.g. --set epochs=2. Repeatable.",
)
@click.option("--name", help="Name of the stored study [default: the study's name].")
@data_dir_option
@device_option
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Base seed of sampler and trials."
)
@click.option(
    "--jobs",
    default="auto",
    show_default=True,
    help="Worker processes sharing the study; auto: one per GPU on CUDA, else one per core "
    "(at most 4).",
)
@click.option(
    "--population",
    help="Trials each worker trains at once as one network (1 to 64), or auto: measured on a GPU, "
    "1 on a CPU [default: the study's, else auto].",
)
def run(
    study, trials, storage, results, overrides, name, data_dir, device, seed, jobs, population
) -> None:
    """Run a study until it has --trials finished trials (re-running resumes)."""
    from vaesweep.interrupts import safe_points_only

    with safe_points_only():  # a signal during the imports is taken once they are done
        from vaesweep.spec.studies import check_population, load_study, parse_overrides

    # The study file and the settings first: a typo is refused before torch is imported.
    spec = load_study(study).with_overrides(parse_overrides(overrides))
    if population is not None:
        spec = dataclasses.replace(spec, population=check_population(population, "--population"))
    with safe_points_only():
        from vaesweep.report.dashboard import answer_and_publish, decided
        from vaesweep.report.study_data import look_blocks
        from vaesweep.run.progress import make_console, make_progress
        from vaesweep.run.sweep import Answered, run_study
        from vaesweep.store.storage import redact

    _quiet_optuna()
    # Rich wraps each line at spaces to the terminal's width: no word or number is split.
    console, errors = make_console(), make_console(stderr=True)

    def answered(stored) -> Answered:  # each answer a run ends with is a look (study_data)
        data = answer_and_publish(stored, results)
        return Answered([a.sentence for a in data.answers], decided(data), look_blocks(data))

    with graceful_interrupts():
        summary = run_study(
            spec,
            trials,
            results,
            make_progress(console),
            answered,
            storage_url=storage,
            study_name=name,
            data_dir=data_dir,
            device=device,
            seed=seed,
            jobs=_jobs(jobs),
            warn=lambda message: errors.print(message),  # wrapped at spaces, made visible
        )
    finished = f"{summary.finished}/{summary.target} trials finished"
    if summary.finished > summary.target:  # a smaller --trials than the study has
        finished = f"{summary.finished} trials finished, more than the {summary.target} asked for"
    console.print(
        f"study {visible(summary.study_name)}: {finished} ({summary.ran} run now, "
        f"{summary.failed} failed)"
    )
    # One unbroken line, whatever the width: the URL is there to be copied.
    console.print(f"storage {visible(redact(summary.storage_url))}", soft_wrap=True)
    for line in summary.answers or ["answer: none yet (no trial completed the study's protocol)"]:
        console.print(line)


@main.command()
@storage_option
@results_option("Folder whose stored studies to list too.")
def studies(storage, results) -> None:
    """What you can run (the study files) and what you have run (the stored studies)."""
    from vaesweep.run.progress import make_console
    from vaesweep.spec.studies import STUDIES_DIR, available_studies, load_study

    console = make_console()  # each study a few lines, wrapped at spaces at any width
    for name in available_studies():
        spec = load_study(name)
        detects = spec.detects()
        console.print(f"{name}: {spec.description}", style="bold")
        for line in (
            "searches " + "; ".join(f"{p.name}: {p.describe()}" for p in spec.search),
            f"objective {', '.join(spec.objectives)}; design {spec.design_summary()}",
            "detects "
            + "; ".join(
                f"{o} {detects[o]:.2g} (σ {spec.noise[o]:.2g})" if o in detects else f"{o} —"
                for o in spec.objectives
            ),
        ):
            console.print(f"  {line}")
    console.print(
        f"study files: {STUDIES_DIR} (in a clone, also studies/); run your own with "
        "--study FILE.toml. detects: the smallest true difference between two configurations "
        "that the design's answer finds with 80% power at its first look, at the residual SD σ "
        "measured here (the study file's noise); — where unmeasured or nothing is compared."
    )
    _stored_studies(console, storage, results)


def _stored_studies(console, storage: str | None, results: Path) -> None:
    """Each stored study in a line: its finished trials and the head of the answer last shown
    (its verdict and numbers; read from the storage, so listing is no new look)."""
    import optuna

    from vaesweep.report.study_data import storage_url
    from vaesweep.store.storage import (
        ANSWER_ATTR,
        FINISHED_STATES,
        open_storage,
        redact,
        storage_errors,
    )

    if storage is None and not (results / "vaesweep.db").is_file():
        console.print(f"stored: none yet in {visible(results)}")
        return
    _quiet_optuna()
    url = storage_url(results, storage)
    with storage_errors(url, reading=True):
        stored = open_storage(url)
        names = optuna.get_all_study_names(stored)
        console.print(f"stored in {visible(redact(url))}:" if names else "stored: none yet")
        for name in names:
            study = optuna.load_study(study_name=name, storage=stored)
            finished = len(study.get_trials(deepcopy=False, states=FINISHED_STATES))
            shown = study.user_attrs.get(ANSWER_ATTR, {})
            answers = shown.get("answers") if isinstance(shown, dict) else None
            answer = str(answers[0]) if isinstance(answers, list) and answers else "no answer yet"
            head = re.split(r" \(|; ", answer, maxsplit=1)[0]  # its verdict and numbers
            console.print(f"  {visible(name)}: {finished} finished trials; {visible(head)}")


@main.command()
@click.option(
    "--study", "study_names", multiple=True, help="A stored study (repeatable) [default: all]."
)
@storage_option
@results_option("Folder holding the trial folders.")
@click.option(
    "--out", type=click.Path(path_type=Path), help="Report folder [default: RESULTS/report]."
)
@data_dir_option
def report(study_names, storage, results, out, data_dir) -> None:
    """Render figures, tables and index.html for every finished trial (redraws only changes)."""
    from vaesweep.report.render import render_report
    from vaesweep.run.progress import StudyBars, make_console
    from vaesweep.store.layout import PAGE_FILE, REPORT_DIR_NAME

    _quiet_optuna()
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
        )
    finally:
        bars.stop()
    trials = sum(len(s.entries) for s in summary.studies)
    click.echo(
        f"report {visible(out / PAGE_FILE)}: {counted(len(summary.studies), 'study', 'studies')}, "
        f"{counted(trials, 'trial')}, {counted(summary.drawn, 'figure')} drawn"
    )


@main.command()
@click.argument("study_names", metavar="STUDY STUDY...", nargs=-1, required=True)
@storage_option
@results_option("Folder holding the trial folders.")
@click.option("--objective", help="Compare on this objective [default: the first they share].")
def compare(study_names, storage, results, objective) -> None:
    """Stored studies that share an objective, side by side: each answer, the settings that
    differ, and whether their best configurations differ."""
    from vaesweep import results as stored
    from vaesweep.report.side_by_side import side_by_side
    from vaesweep.run.progress import make_console
    from vaesweep.spec.metric_names import better, label

    found = side_by_side([stored.load(n, storage, results) for n in study_names], objective)
    console = make_console()
    way = "higher" if better(found.objective) == "maximize" else "lower"
    table = Table(title=f"{found.objective} ({label(found.objective)}; {way} is better)")
    for column in ("study", "best configuration", "n", "mean (95% CI)"):
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


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON list of records instead.")
@click.option(
    "--arch",
    "archs",
    multiple=True,
    help=f"Architectures to time (repeatable): {', '.join(ARCHITECTURES)} [default: all].",
)
@click.option(
    "--seconds",
    type=click.FloatRange(min=0.1),
    default=3.0,
    show_default=True,
    help="Time spent on each throughput measurement.",
)
@click.option("--threads", type=click.IntRange(min=1), help="Torch threads [default: all cores].")
@device_option
@data_dir_option
@click.option(
    "--trial-study",
    default="warmup",
    show_default=True,
    help="Time one default trial of this study; '' skips it.",
)
@click.option(
    "--precision-epochs",
    type=click.IntRange(min=0),
    default=3,
    show_default=True,
    help="Epochs of the bf16-vs-fp32 ELBO check; 0 skips it.",
)
@click.option(
    "--population",
    "population_size",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Also time populations of 1, 2, 4, ... up to this many members trained as one network.",
)
def bench(
    as_json,
    archs,
    seconds,
    threads,
    device,
    data_dir,
    trial_study,
    precision_epochs,
    population_size,
) -> None:
    """Measure training throughput, data loading, evaluation and per-trial overhead here."""
    import json

    from vaesweep.interrupts import safe_points_only

    with safe_points_only():  # a signal during the imports is taken once they are done
        import torch

        from vaesweep.run.bench import run_bench
        from vaesweep.run.bench_table import BenchLines, BenchTable
        from vaesweep.run.progress import make_console
        from vaesweep.training.device import resolve_device

    archs = tuple(RULES["arch"].canonical(arch) for arch in archs)  # an old name, the new
    for arch in archs:
        if arch not in ARCHITECTURES:
            raise VaesweepError(f"--arch {shown(arch)}: choose from {', '.join(ARCHITECTURES)}")
    _quiet_optuna()
    if threads:
        torch.set_num_threads(threads)
    console = make_console(stderr=as_json)  # --json: stdout holds the JSON alone
    table = (BenchTable if console.is_terminal else BenchLines)(console)
    records = run_bench(
        resolve_device(device),
        list(archs) or list(ARCHITECTURES),
        seconds,
        data_dir,
        trial_study or None,
        precision_epochs,
        on_record=table.add,
        population_size=population_size,
        on_start=table.measuring,
    )
    table.finish()
    if as_json:
        click.echo(json.dumps(records, indent=1, default=str))


def _jobs(value: str) -> int | None:
    """--jobs: a count, or auto (None: the run decides, from its device; `device.auto_jobs`)."""
    if value == "auto":
        return None
    try:
        return int(value)
    except ValueError:
        raise VaesweepError(f"--jobs must be a number or auto; got {shown(value)}") from None


def _quiet_optuna() -> None:
    from vaesweep.store.storage import quiet_optuna

    quiet_optuna()
