"""One `vaesweep` command run by another commit's code and by this tree's, alternated, on one
machine in one session: each run's wall time, and the ratio of their medians.

    python benchmarks/side_by_side.py REV --rounds 2 -- run --study warmup --trials 4 \\
        --set precision=fp32

REV is checked out in a temporary git worktree and run with this environment's packages, its
folder first on PYTHONPATH; every run gets a fresh `--results` folder, so neither resumes the
other's study. Keep the machine otherwise quiet: both cores are the measurement's.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def timed(code: Path, args: list[str], results: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(code)}
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "vaesweep", *args, "--results", str(results)],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        cwd=results.parent,
    )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rev", help="the other commit")
    parser.add_argument("--rounds", type=int, default=2)
    ours = sys.argv[1 : sys.argv.index("--")] if "--" in sys.argv else sys.argv[1:]
    options = parser.parse_args(ours)
    args = sys.argv[len(ours) + 2 :]  # vaesweep's, after the --
    with tempfile.TemporaryDirectory(prefix="side-by-side-") as scratch:
        other = Path(scratch) / "other"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(other), options.rev],
            check=True,
            capture_output=True,
        )
        try:
            times: dict[str, list[float]] = {options.rev: [], "this tree": []}
            for round_ in range(options.rounds):
                for label, code in ((options.rev, other), ("this tree", ROOT)):
                    results = Path(scratch) / f"results-{round_}-{'new' if code == ROOT else 'old'}"
                    seconds = timed(code, args, results.resolve())
                    times[label].append(seconds)
                    print(f"round {round_ + 1}: {label}: {seconds:.1f} s", flush=True)
        finally:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(other)],
                capture_output=True,
            )
    old, new = (statistics.median(t) for t in times.values())
    print(f"median: {options.rev} {old:.1f} s, this tree {new:.1f} s: {new / old:.2f}x the time")


if __name__ == "__main__":
    main()
