"""What the commands share: one-line errors, the options several take, and --jobs's type."""

from __future__ import annotations

import os
from pathlib import Path

import click

from vaesweep.errors import VaesweepError, shown, visible
from vaesweep.interrupts import EXIT_INTERRUPTED, graceful_interrupts


def say(message: str) -> None:
    """A last line on stderr: in a terminal wrapped at spaces (a terminal's own wrapping splits
    words); anywhere else one unbroken line."""
    from vaesweep.console import make_console

    console = make_console(stderr=True)
    console.print(message, soft_wrap=not console.is_terminal)


class _OneLine(click.ClickException):
    """An error as one 'Error: ...' line (wrapped at spaces in a terminal)."""

    def show(self, file=None) -> None:
        say(f"Error: {self.format_message()}")


class _OneLineUsage(_OneLine):
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
            raise _OneLine(visible(err)) from None
        except KeyboardInterrupt:
            message = (
                "Interrupted: any running trial was recorded as failed and everything finished is "
                "kept; re-run the same command to continue."
                if ctx.invoked_subcommand == "run"
                else "Interrupted; nothing stored was changed."
            )
            say(message)
            raise click.exceptions.Exit(EXIT_INTERRUPTED) from None
        except click.UsageError as err:
            raise _OneLineUsage(visible(err.format_message())) from None
        except (click.exceptions.Exit, click.ClickException):
            raise
        except Exception as err:  # a bug, or a failure nothing above foresaw: still one line
            if os.environ.get("VAESWEEP_DEBUG"):
                raise
            first = str(err).strip().splitlines()[0] if str(err).strip() else repr(err)
            raise _OneLine(
                f"unexpected failure: {visible(first[:300])} ({kept}; "
                "set VAESWEEP_DEBUG=1 to see where it happened)"
            ) from None


class Jobs(click.ParamType):
    """--jobs: worker processes, from 1 to the cores here, or auto (None: the run decides from
    its device, `device.auto_jobs`)."""

    name = "N|auto"

    def convert(self, value, param, ctx) -> int | None:
        if value is None or value == "auto" or isinstance(value, int):
            return None if value in (None, "auto") else value
        try:
            jobs = int(value)
        except ValueError:
            self.fail(f"must be a number or auto; got {shown(value)}", param, ctx)
        cores = os.cpu_count() or 1
        if not 1 <= jobs <= cores:
            self.fail(f"must be between 1 and {cores} (the cores here); got {jobs}", param, ctx)
        return jobs


storage_option = click.option(
    "--storage",
    help="Optuna storage URL: sqlite:///PATH, postgresql://..., or journal:///PATH (a journal "
    "file on a filesystem machines share) [default: sqlite:///RESULTS/vaesweep.db].",
)


def artifacts_option(help: str):
    return click.option("--artifacts", metavar="DIR|s3://BUCKET/PREFIX", help=help)


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


def quiet_optuna() -> None:
    from vaesweep.store.storage import quiet_optuna

    quiet_optuna()
