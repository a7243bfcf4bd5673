"""How long a study that already has its trials takes to answer, and how much of that is Python
and the libraries vaesweep imports. Run on a results folder that holds a finished study:
.venv/bin/python benchmarks/answer_time.py RESULTS STUDY TRIALS [--set K=V ...] (see BENCHMARKS.md).
"""

import statistics
import subprocess
import sys
import time
from pathlib import Path

REPEATS = 5
LIBRARIES = (
    "import optuna, pandas, scipy.stats, scipy.optimize, rich.console, rich.table, click, "
    "sqlalchemy, numpy, tenacity, filelock, jinja2, alembic.context"
)


def seconds(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - start


if __name__ == "__main__":
    results, study, trials, *settings = sys.argv[1:]
    vaesweep = str(Path(sys.executable).with_name("vaesweep"))
    answer = [vaesweep, "run", "--results", results, "--study", study, "--trials", trials]
    answer += settings
    seconds(answer)  # the first look is recorded; later ones are the same look
    runs = {"answer": [], "libraries": []}
    for _ in range(REPEATS):  # alternated, so a busy moment touches both
        runs["answer"].append(seconds(answer))
        runs["libraries"].append(seconds([sys.executable, "-c", LIBRARIES]))
    for name, times in runs.items():
        spread = f"{min(times):.2f}-{max(times):.2f}"
        print(f"{name}: median {statistics.median(times):.2f} s of {REPEATS} ({spread})")
    own = statistics.median(a - b for a, b in zip(runs["answer"], runs["libraries"], strict=True))
    print(f"vaesweep's own: {own:.2f} s")
