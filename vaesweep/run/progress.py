"""What a run tells whoever watches it (`Progress`, the interface), and its watchers: a rich
live view in a terminal, plain lines anywhere else, and a pipe from a worker to its parent."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from optuna.trial import FrozenTrial
from rich.console import Console, Group
from rich.live import Live
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
)
from rich.progress import (
    Progress as RichProgress,
)
from rich.table import Column, Table
from rich.text import Text

from vaesweep.console import make_console
from vaesweep.errors import visible
from vaesweep.store.storage import PRUNE_REASON_ATTR, fail_reason

TABLE_ROWS = 12


def _format_params(params: Mapping[str, Any]) -> str:
    """Names and values as they are stored (a categorical value is any string): made visible."""
    return visible(
        " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())
    )


def _format_values(trial: FrozenTrial) -> str:
    if trial.values is None:
        return ""
    return ", ".join(f"{v:.4g}" for v in trial.values)


def _outcome(trial: FrozenTrial) -> str:
    """The objective value(s) of a completed trial, else why it stopped."""
    reason = trial.user_attrs.get(PRUNE_REASON_ATTR)
    if trial.state.name == "FAIL":
        reason = fail_reason(trial)
    if reason:
        return f": {visible(reason)}"
    return f" value {_format_values(trial)}" if trial.values else ""


def _epoch_summary(record: Mapping[str, float]) -> str:
    return (
        f"loss={record['train_loss']:.2f} recon={record['train_recon']:.2f} "
        f"kl={record['train_kl']:.2f} beta={record['beta']:.2f} val_elbo={record['val_elbo']:.2f}"
    )


class Progress:
    """The events of a run, in order: start, then per trial started, epochs finished and
    finished, then stop. This base shows nothing; each watcher overrides what it shows."""

    def start(self, study: str, objectives: Sequence[str], target: int, finished: int) -> None:
        pass

    def trial_started(
        self, number: int, params: Mapping[str, Any], epochs: int, device: str = "cpu"
    ) -> None:
        pass

    def epoch_finished(self, number: int, record: Mapping[str, float]) -> None:
        pass

    def evaluating(self, number: int, step: str, done: int, total: int) -> None:
        """Trial `number` starts step `done` + 1 of its `total` final evaluation steps."""

    def trial_finished(self, trial: FrozenTrial, finished: int) -> None:
        pass

    def waiting(self, text: str) -> None:
        """A worker with nothing to start says what it waits for (every few seconds)."""

    def stop(self) -> None:
        pass


class PlainProgress(Progress):
    """Plain lines, at most one per epoch: for pipes, log files and CI."""

    def __init__(self, console: Console | None = None):
        self.console = console or make_console()
        self.epochs: dict[int, int] = {}  # running trial -> its maximum epochs

    def start(self, study: str, objectives: Sequence[str], target: int, finished: int) -> None:
        self.console.print(
            f"study {visible(study)}: {finished}/{target} trials finished; "
            f"objective: {', '.join(objectives)}"
        )

    def trial_started(
        self, number: int, params: Mapping[str, Any], epochs: int, device: str = "cpu"
    ) -> None:
        self.epochs[number] = epochs
        self.console.print(f"trial {number} started{_on(device)}: {_format_params(params)}")

    def epoch_finished(self, number: int, record: Mapping[str, float]) -> None:
        epoch = int(record["epoch"]) + 1
        total = self.epochs.get(number, "?")
        self.console.print(f"trial {number} epoch {epoch}/{total} {_epoch_summary(record)}")

    def evaluating(self, number: int, step: str, done: int, total: int) -> None:
        self.console.print(f"trial {number} evaluating {done + 1}/{total}: {step}")

    def trial_finished(self, trial: FrozenTrial, finished: int) -> None:
        self.epochs.pop(trial.number, None)
        self.console.print(f"trial {trial.number} {trial.state.name.lower()}{_outcome(trial)}")

    def waiting(self, text: str) -> None:
        self.console.print(text)


MIN_TRIALS_FOR_ETA = 3


class EtaColumn(ProgressColumn):
    """Time left at this run's own pace (trials it finished per second since it started), once it
    has finished MIN_TRIALS_FOR_ETA trials: before that, one trial's time says little (a long one
    may be pruned early the next time), and a resumed study's earlier trials are not this run's."""

    def render(self, task: Task) -> Text:
        first = task.fields.get("first", 0)
        done = task.completed - first
        if task.total is not None and task.completed >= task.total:
            return Text("done", style="progress.remaining")
        if task.total is not None and task.total - first < MIN_TRIALS_FOR_ETA:
            return Text("")  # too few trials in this run to estimate from
        if task.total is None or task.elapsed is None or done < MIN_TRIALS_FOR_ETA:
            return Text(f"ETA after {MIN_TRIALS_FOR_ETA} trials", style="progress.remaining")
        left = round((task.total - task.completed) * task.elapsed / done)
        return Text(
            f"ETA {left // 3600}:{left // 60 % 60:02d}:{left % 60:02d}", style="progress.remaining"
        )


class LiveProgress(Progress):
    """Overall progress with ETA, each running trial's epochs (one bar per worker's trial), and a
    table of the latest finished trials."""

    def __init__(self, console: Console | None = None):
        self.console = console or make_console()
        self.epochs: dict[int, Any] = {}  # running trial -> its epochs bar
        self.trials = RichProgress(
            TextColumn("{task.description}", style="bold", markup=False),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            EtaColumn(),
            console=self.console,
        )
        # The trial, its epoch k/N, its loss and beta and the bar keep their width; the
        # parameters and the other terms (one column, so the terms take whatever the parameters
        # leave) wrap at spaces within theirs on a narrow terminal, never cut.
        fixed: dict[str, Any] = {"no_wrap": True}
        elastic: dict[str, Any] = {"overflow": "fold", "ratio": 1, "min_width": 8}
        self.epochs_bar = RichProgress(
            TextColumn("trial {task.fields[number]}", markup=False, table_column=Column(**fixed)),
            TextColumn(
                "epoch {task.completed}/{task.total}", markup=False, table_column=Column(**fixed)
            ),
            TextColumn("{task.fields[short]}", markup=False, table_column=Column(**fixed)),
            BarColumn(bar_width=12),
            TextColumn(
                "{task.fields[params]}  {task.fields[more]}",
                markup=False,
                table_column=Column(**elastic),
            ),
            console=self.console,
            expand=True,  # the elastic columns share what the fixed ones leave
        )
        self.status = "loading Fashion-MNIST and starting the workers..."
        self.rows: list[FrozenTrial] = []
        self.objectives: Sequence[str] = ()
        self.live = Live(self._render(), console=self.console, refresh_per_second=4)

    def start(self, study: str, objectives: Sequence[str], target: int, finished: int) -> None:
        self.objectives = objectives
        self.trials_task = self.trials.add_task(
            f"study {visible(study)}", total=target, completed=finished, first=finished
        )
        self.live.update(self._render())  # the objectives' names head the table from the start
        self.live.start(refresh=True)

    def trial_started(
        self, number: int, params: Mapping[str, Any], epochs: int, device: str = "cpu"
    ) -> None:
        self.status = ""
        where = "" if device == "cpu" else f"{device} "  # a GPU run names each trial's GPU
        self.epochs[number] = self.epochs_bar.add_task(
            "",
            total=epochs,
            number=number,
            params=where + _format_params(params),
            short="",
            more="",
        )
        self.live.update(self._render())

    def epoch_finished(self, number: int, record: Mapping[str, float]) -> None:
        if number in self.epochs:
            self.epochs_bar.update(
                self.epochs[number],
                advance=1,
                short=f"loss {record['train_loss']:.1f} β {record['beta']:.2f}",
                more=(
                    f"recon {record['train_recon']:.1f} kl {record['train_kl']:.2f} "
                    f"val_elbo {record['val_elbo']:.1f}"
                ),
            )

    def evaluating(self, number: int, step: str, done: int, total: int) -> None:
        if number in self.epochs:
            self.epochs_bar.update(
                self.epochs[number], short=f"evaluating {done + 1}/{total}", more=step
            )

    def trial_finished(self, trial: FrozenTrial, finished: int) -> None:
        if trial.number in self.epochs:
            self.epochs_bar.remove_task(self.epochs.pop(trial.number))
        self.trials.update(self.trials_task, completed=finished)
        self.rows.append(trial)
        self.status = ""  # a wait for a running trial may have ended with this one
        self.live.update(self._render())

    def waiting(self, text: str) -> None:
        self.status = text
        self.live.update(self._render())

    def stop(self) -> None:
        self.live.stop()

    def _render(self) -> Group:
        table = Table(title="finished trials", expand=False)
        for column in ("trial", "state", "parameters", ", ".join(self.objectives) or "value", "s"):
            table.add_column(column)
        # The latest trials, unranked: which configuration is best is the answer's to say, from
        # every seed block, when the run ends (one trial's value is one seed's).
        for trial in sorted(self.rows[-TABLE_ROWS:], key=lambda row: row.number):
            seconds = trial.duration.total_seconds() if trial.duration else 0.0
            table.add_row(
                str(trial.number),
                trial.state.name.lower(),
                _format_params(trial.params),
                _format_values(trial) if trial.state.name == "COMPLETE" else _outcome(trial)[2:],
                f"{seconds:.0f}",
            )
        status = [Text(self.status, style="italic")] if self.status else []
        return Group(self.trials, *status, self.epochs_bar, table)


def _on(device: str) -> str:
    """' on cuda:1' where a trial trains on a GPU; nothing on the CPU."""
    return "" if device == "cpu" else f" on {device}"


def make_progress(console: Console | None = None) -> Progress:
    console = console or make_console()
    return LiveProgress(console) if console.is_terminal else PlainProgress(console)


class TrialStarted(NamedTuple):
    number: int
    params: dict[str, Any]
    epochs: int
    device: str

    def show(self, progress: Progress) -> None:
        progress.trial_started(self.number, self.params, self.epochs, self.device)


class EpochFinished(NamedTuple):
    number: int
    record: dict[str, float]

    def show(self, progress: Progress) -> None:
        progress.epoch_finished(self.number, self.record)


class Evaluating(NamedTuple):
    number: int
    step: str
    done: int
    total: int

    def show(self, progress: Progress) -> None:
        progress.evaluating(self.number, self.step, self.done, self.total)


class Waiting(NamedTuple):
    text: str

    def show(self, progress: Progress) -> None:
        progress.waiting(self.text)


class TrialFinished(NamedTuple):
    trial: FrozenTrial
    finished: int

    def show(self, progress: Progress) -> None:
        progress.trial_finished(self.trial, self.finished)


class PipeProgress(Progress):
    """In a worker process: sends each event to the parent, which shows them all."""

    def __init__(self, pipe, worker: int):
        self.pipe, self.worker = pipe, worker

    def trial_started(
        self, number: int, params: Mapping[str, Any], epochs: int, device: str = "cpu"
    ) -> None:
        self.pipe.put((self.worker, TrialStarted(number, dict(params), epochs, device)))

    def epoch_finished(self, number: int, record: Mapping[str, float]) -> None:
        self.pipe.put((self.worker, EpochFinished(number, dict(record))))

    def evaluating(self, number: int, step: str, done: int, total: int) -> None:
        self.pipe.put((self.worker, Evaluating(number, step, done, total)))

    def trial_finished(self, trial: FrozenTrial, finished: int) -> None:
        self.pipe.put((self.worker, TrialFinished(trial, finished)))

    def waiting(self, text: str) -> None:
        self.pipe.put((self.worker, Waiting(text)))
