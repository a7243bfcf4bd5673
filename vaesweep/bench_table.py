"""The on-screen table of `vaesweep bench`, filled in as measurements arrive."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

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
    if record["kind"] == "precision_check":
        verdict = "within" if record["within_tolerance"] else "OUTSIDE"
        return (
            f"best val ELBO {record['val_elbo']:.2f} after {record['epochs']} epochs; "
            f"bf16 vs fp32 gap {record['relative_gap']:.2%} ({verdict} 1%)"
        )
    return ""


class BenchTable:
    def __init__(self, console: Console):
        self.rows: list[dict[str, Any]] = []
        self.live = Live(self._render(), console=console, refresh_per_second=4)
        self.live.start()

    def add(self, record: dict[str, Any]) -> None:
        self.rows.append(record)
        self.live.update(self._render())

    def finish(self) -> None:
        self.live.stop()

    def _render(self) -> Table:
        table = Table(title="vaesweep bench")
        for column in COLUMNS:
            table.add_column(
                column, justify="right" if column in ("samples/s", "seconds") else "left"
            )
        for r in self.rows:
            rate = f"{r['samples_per_s']:,.0f}" if r["samples_per_s"] else ""
            seconds = f"{r['seconds']:.2f}" if r["seconds"] is not None else ""
            table.add_row(
                r["kind"], r["arch"] or "", r["precision"] or "", r["memory_format"] or "",
                str(r["threads"]), rate, seconds, _detail(r),
            )  # fmt: skip
        return table
