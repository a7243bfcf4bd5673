"""`vaesweep bench`: training throughput, data loading, evaluation and per-trial overhead on
this machine."""

from __future__ import annotations

import click

from vaesweep.commands.common import data_dir_option, device_option, quiet_optuna
from vaesweep.errors import VaesweepError, shown
from vaesweep.spec.config import ARCHITECTURES


@click.command()
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

        from vaesweep.console import make_console
        from vaesweep.run.bench import run_bench
        from vaesweep.run.bench_table import BenchLines, BenchTable
        from vaesweep.training.device import resolve_device

    for arch in archs:
        if arch not in ARCHITECTURES:
            raise VaesweepError(f"--arch {shown(arch)}: choose from {', '.join(ARCHITECTURES)}")
    quiet_optuna()
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
