"""`vaesweep run`: run a study until it has --trials finished trials, then say its answer."""

from __future__ import annotations

import dataclasses
import shlex
from pathlib import Path

import click

from vaesweep.commands.common import (
    Jobs,
    artifacts_option,
    data_dir_option,
    device_option,
    quiet_optuna,
    results_option,
    storage_option,
)
from vaesweep.errors import visible
from vaesweep.interrupts import graceful_interrupts, safe_points_only

# A bound that says what a typo (an extra zero or three) would mean: the 1,000-trial study of
# BENCHMARKS.md took 1 min 45 s of tiny trials; 100,000 real ones would take months on a CPU.
MAX_TRIALS = 100_000


@click.command()
@click.option(
    "--study", required=True, help="A study name from studies/ or a path to a .toml file."
)
@click.option(
    "--trials",
    type=click.IntRange(min=1, max=MAX_TRIALS),
    required=True,
    help=f"Finished trials the study should have (at most {MAX_TRIALS:,}).",
)
@storage_option
@results_option("Folder for trial folders (and the default SQLite storage).")
@artifacts_option(
    "Also keep each trial's folder in this Optuna artifact store (a folder, or an S3 bucket: "
    "credentials and AWS_ENDPOINT_URL from the environment), for machines that share no disk."
)
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a fixed setting, e.g. --set epochs=2. Repeatable. The settings, with their "
    "defaults: the table under 'Training settings' in docs/studies.md.",
)
@click.option("--name", help="Name of the stored study [default: the study's name].")
@data_dir_option
@device_option
@click.option(
    "--seed",
    type=click.IntRange(0, 2**32 - 1),
    default=0,
    show_default=True,
    help="Base seed of sampler and trials.",
)
@click.option(
    "--jobs",
    type=Jobs(),
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
    study,
    trials,
    storage,
    results,
    artifacts,
    overrides,
    name,
    data_dir,
    device,
    seed,
    jobs,
    population,
) -> None:
    """Run a study until it has --trials finished trials (re-running resumes)."""
    with safe_points_only():  # a signal during the imports is taken once they are done
        from vaesweep.spec.studies import check_population, load_study, parse_overrides

    # The study file and the settings first: a typo is refused before torch is imported.
    spec = load_study(study).with_overrides(parse_overrides(overrides))
    if population is not None:
        spec = dataclasses.replace(spec, population=check_population(population, "--population"))
    with safe_points_only():
        from vaesweep.console import make_console
        from vaesweep.run.progress import make_progress
        from vaesweep.run.sweep import RunOptions, execute, plan_run
    quiet_optuna()
    # Rich wraps each line at spaces to the terminal's width: no word or number is split.
    console, errors = make_console(), make_console(stderr=True)
    options = RunOptions(
        n_trials=trials,
        results_dir=results,
        storage_url=storage,
        study_name=name,
        data_dir=data_dir,
        device=device,
        seed=seed,
        jobs=jobs,
        artifacts=artifacts,
    )
    with graceful_interrupts():
        plan = plan_run(spec, options)
        summary = execute(
            plan,
            make_progress(console),
            warn=lambda message: errors.print(message),  # wrapped at spaces, made visible
        )
    same = {"study": study, "name": name, "results": results, "storage": storage}
    same |= {"artifacts": artifacts}
    same |= {"overrides": overrides, "data_dir": data_dir, "seed": seed}
    _print_summary(console, summary, same)


def _print_summary(console, summary, same: dict) -> None:
    from vaesweep.store.storage import redact

    finished = f"{summary.finished}/{summary.target} trials finished"
    if summary.finished > summary.target:  # a smaller --trials than the study has
        finished = f"{summary.finished} trials finished, more than the {summary.target} asked for"
    console.print(
        f"study {visible(summary.study_name)}: {finished} ({summary.ran} run now, "
        f"{summary.failed} failed)"
    )
    if summary.phases:
        console.print(summary.phases)
    # One unbroken line, whatever the width: the URL is there to be copied.
    console.print(f"storage {visible(redact(summary.storage_url))}", soft_wrap=True)
    for line in summary.answers or ["answer: none yet (no trial completed the study's protocol)"]:
        console.print(line)
    if summary.next_trials is not None:
        console.print(f"next ({summary.next_step}):")
        command = visible(next_command(summary.next_trials, **same))
        console.print(f"  {command}", soft_wrap=True)  # one unbroken line, to be pasted


def next_command(
    trials: int, study, name, results, storage, artifacts, overrides, data_dir, seed
) -> str:
    """This run's command with another --trials: the same study, name, results folder, storage
    (its password hidden), settings, data and seed, so that it resumes the same study."""
    from vaesweep.store.storage import redact

    words = ["vaesweep", "run", "--study", study, "--trials", str(trials)]
    words += ["--name", name] if name else []
    words += ["--results", str(results)] if Path(results) != Path("results") else []
    words += ["--storage", redact(storage)] if storage else []
    words += ["--artifacts", artifacts] if artifacts else []
    for override in overrides:
        words += ["--set", override]
    words += ["--data-dir", str(data_dir)] if data_dir else []
    words += ["--seed", str(seed)] if seed else []
    return shlex.join(words)
