"""How long Ctrl-C takes, end to end: `vaesweep run` on the real data in its own process group,
SIGINT to the whole group (what a terminal's Ctrl-C sends) a moment after a trial started, then
the seconds to its first words and to its exit. Repeated at several moments of a trial.
.venv/bin/python benchmarks/interrupt_latency.py RESULTS [--repeats N] [--jobs N]
(see BENCHMARKS.md)."""

import argparse
import math
import os
import select
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

STUDY = ["--study", "warmup", "--trials", "3", "--set", "epochs=3"]


def _read(fd: int, timeout: float) -> bytes:
    """What the pipe holds within `timeout` s (b"" at its end or on timeout): read from the file
    descriptor itself, so that nothing waits unseen in a Python buffer."""
    ready, _, _ = select.select([fd], [], [], timeout)
    return os.read(fd, 65536) if ready else b""


def one(results: Path, delay: float, jobs: str) -> tuple[float, float]:
    """(seconds to the first words, seconds to the exit) of a Ctrl-C `delay` s after a trial
    started."""
    vaesweep = str(Path(sys.executable).with_name("vaesweep"))
    process = subprocess.Popen(
        [vaesweep, "run", *STUDY, "--results", str(results), "--jobs", jobs],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    fd, said = process.stdout.fileno(), b""
    while b" started" not in said:  # until a trial starts ("trial 0 started: ...")
        said += _read(fd, 120)
    end = time.monotonic() + delay
    while time.monotonic() < end:  # what is said before the signal is not its reply
        _read(fd, end - time.monotonic())
    sent = time.monotonic()
    os.killpg(process.pid, signal.SIGINT)
    heard = math.nan
    while _read(fd, 120):  # until the pipe ends: the first reply, then the rest
        if math.isnan(heard):
            heard = time.monotonic() - sent
    process.wait(timeout=120)
    return heard, time.monotonic() - sent


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("results", type=Path)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--jobs", default="auto")
    args = parser.parse_args()
    first, exits = [], []
    for i in range(args.repeats):
        words, gone = one(args.results / f"run{i}", 1.0 + 2.0 * i, args.jobs)
        first.append(words)
        exits.append(gone)
        print(
            f"{1.0 + 2.0 * i:.0f} s after a trial started: first words {words:.2f} s, "
            f"exit {gone:.2f} s"
        )
    print(
        f"first words: median {statistics.median(first):.2f} s (max {max(first):.2f}); "
        f"exit: median {statistics.median(exits):.2f} s (max {max(exits):.2f}), "
        f"{args.repeats} runs"
    )
