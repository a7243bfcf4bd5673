"""The on-screen table of `vaesweep bench`, filled in as measurements arrive."""

from __future__ import annotations

from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

COLUMNS = (
    "measure",
    "arch",
    "precision",
    "memory format",
    "threads",
    "samples/s",
    "seconds",
    "detail",
)


def _detail(record: dict[str, Any]) -> str:
    if record["kind"] == "train" and record.get("peak_gflops"):
        share = record["gflops"] / record["peak_gflops"]
        kernel = "Linear in oneDNN: " if record.get("linear") == "onednn" else ""
        return (
            f"{kernel}{share:.0%} of this machine's limit ({record['gflops']:.1f} of "
            f"{record['peak_gflops']:.1f} GFLOP/s, its best {record['precision']} "
            f"{record['peak_kernel']})"
        )
    if record["kind"] == "trial":
        return (
            f"{record['study']} {record['params']}, {record['epochs']} epochs: training steps "
            f"{record['training_steps_s']:.1f} s, validation {record['validation_s']:.1f} s, "
            f"rest {record['rest_s']:.1f} s; overhead {record['overhead_fraction']:.1%}"
        )
    if record["kind"] == "population":
        return (
            f"{record['members']} members: {record['per_member']:,.0f} samples/s each; "
            f"{record['samples_per_s'] / record['alone']:.2f}x one network alone "
            f"({record['alone']:,.0f})"
        )
    if record["kind"] == "evaluation":
        return f"{record['step']} ({record['images']} images)"
    if record["kind"] == "precision_check":
        verdict = "within" if record["within_tolerance"] else "OUTSIDE"
        return (
            f"best val ELBO {record['val_elbo']:.2f} after {record['epochs']} epochs; "
            f"bf16 vs fp32 gap {record['relative_gap']:.2%} ({verdict} 1%)"
        )
    return ""


def _cells(r: dict[str, Any]) -> list[str]:
    rate = f"{r['samples_per_s']:,.0f}" if r["samples_per_s"] else ""
    seconds = f"{r['seconds']:.2f}" if r["seconds"] is not None else ""
    return [
        r["kind"],
        r["arch"] or "",
        r["precision"] or "",
        r["memory_format"] or "",
        str(r["threads"]),
        rate,
        seconds,
        _detail(r),
    ]


class BenchTable:
    """In a terminal: the table, filled in as measurements arrive, and what is being measured."""

    def __init__(self, console: Console):
        self.rows: list[dict[str, Any]] = []
        self.now = ""
        self.live = Live(self._render(), console=console, refresh_per_second=4)
        self.live.start()

    def measuring(self, what: str) -> None:
        self.now = what
        self.live.update(self._render(), refresh=True)

    def add(self, record: dict[str, Any]) -> None:
        self.rows.append(record)
        self.live.update(self._render(), refresh=True)

    def finish(self) -> None:
        self.now = ""
        self.live.update(self._render(), refresh=True)
        self.live.stop()

    def _render(self) -> Group:
        table = Table(title="vaesweep bench")
        for column in COLUMNS:
            table.add_column(
                column, justify="right" if column in ("samples/s", "seconds") else "left"
            )
        for r in self.rows:
            table.add_row(*_cells(r))
        return Group(table, Text(f"measuring {self.now}..." if self.now else "", style="italic"))


class BenchLines:
    """Off a terminal (a pipe, a log): a line as each measurement starts and one per result,
    every field written out, so nothing is cut at the pipe's width."""

    def __init__(self, console: Console):
        self.console = console

    def measuring(self, what: str) -> None:
        self.console.print(f"measuring {what}...")

    def add(self, record: dict[str, Any]) -> None:
        cells = _cells(record)
        named = [f"{c}: {v}" for c, v in zip(COLUMNS[1:], cells[1:], strict=True) if v]
        self.console.print(f"{cells[0]}: {', '.join(named)}", soft_wrap=True)

    def finish(self) -> None:
        pass
