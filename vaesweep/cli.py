"""The `vaesweep` command: registers the commands, a module each in vaesweep/commands/."""

from __future__ import annotations

import click

from vaesweep import __version__
from vaesweep.commands import bench, compare, report, run, serve, studies
from vaesweep.commands.common import OneLineErrors
from vaesweep.interrupts import as_program, skip_final_collection


@click.group(cls=OneLineErrors)
@click.version_option(__version__, prog_name="vaesweep")
def main() -> None:
    """Hyperparameter studies of variational autoencoders on Fashion-MNIST."""


for command in (
    run.run,
    studies.studies,
    report.report,
    compare.compare,
    bench.bench,
    serve.serve_storage,
):
    main.add_command(command)


def program() -> None:
    """The `vaesweep` program (its console script, and `python -m vaesweep`): the commands, with
    signals ignored once a command has finished (`interrupts.as_program`), and a quick exit."""
    as_program()
    try:
        main()
    finally:
        skip_final_collection()
