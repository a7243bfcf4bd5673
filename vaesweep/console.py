"""The console every command prints with, and `vaesweep report`'s progress: stage-neutral, so
reading a study never imports the run stage for them."""

from __future__ import annotations

import os
import time
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.progress import Progress as RichProgress
from rich.text import Text

from vaesweep.errors import counted, visible

# Off a terminal (a pipe, a file) nothing limits a line, so tables are laid out this wide rather
# than at rich's 80 columns, which cut their cells ("val_knn_accur…").
PIPE_WIDTH = 240


class _VisibleConsole(Console):
    """A console that shows every string it is given (printed, or a table's cell) with its
    control and bidirectional characters made visible (`errors.visible`), line breaks kept."""

    def render_str(self, text: str, **options: Any) -> Text:
        return super().render_str(visible(text, keep="\n"), **options)


def make_console(**options: Any) -> Console:
    """The console of every command: what it prints (paths, names, reasons, values) is shown as
    it is, never read as rich markup nor as terminal control sequences."""
    console = _VisibleConsole(highlight=False, markup=False, emoji=False, **options)
    if not console.is_terminal and "COLUMNS" not in os.environ and "width" not in options:
        console.width = PIPE_WIDTH
    return console


class StudyBars:
    """`vaesweep report`'s progress: in a terminal a bar per study (its figures, then each
    trial's) saying what is being drawn, with the time spent and left; off one, a line as each
    study starts and one, with its time, as it ends."""

    def __init__(self, console: Console):
        self.console = console
        self.bars = RichProgress(
            TextColumn("{task.description}", markup=False),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
        )
        self.tasks: dict[str, Any] = {}
        self.started: dict[str, float] = {}
        if console.is_terminal:
            self.bars.start()

    def __call__(self, study: str, done: int, total: int, what: str) -> None:
        """`total` 0: a step before the drawing, of unknown length (fetching trial folders)."""
        said = f"study {visible(study)}: {what}"
        if self.console.is_terminal:
            if study not in self.tasks:
                self.tasks[study] = self.bars.add_task(said, total=total or None)
            self.bars.update(
                self.tasks[study], completed=done, total=total or None, description=said
            )
        elif total == 0:
            self.console.print(said)
        elif done == 0:
            self.started[study] = time.monotonic()
            self.console.print(
                f"study {visible(study)}: drawing its figures and those of "
                f"{counted(total - 1, 'trial')}"
            )
        elif done == total:
            seconds = time.monotonic() - self.started.pop(study, time.monotonic())
            self.console.print(f"study {visible(study)}: done in {seconds:.0f} s")

    def stop(self) -> None:
        if self.console.is_terminal:
            self.bars.stop()
