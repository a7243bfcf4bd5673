"""Where `vaesweep report`'s time goes: renders a results folder's report from scratch (into a
scratch folder) with every figure function and every PNG save timed, and prints the seconds per
figure kind, split into drawing (with its layout) and saving.
.venv/bin/python benchmarks/report_time.py RESULTS (see BENCHMARKS.md)."""

import collections
import functools
import sys
import tempfile
import time
from pathlib import Path

from matplotlib.figure import Figure

from vaesweep.report import figures, render

spent: dict[str, list[float]] = collections.defaultdict(list)


def timed(name: str, function):
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            spent[name].append(time.perf_counter() - start)

    return wrapper


def main(results: Path) -> None:
    for name in dir(figures):
        function = getattr(figures, name)
        if callable(function) and not name.startswith("_") and name[0].islower():
            if getattr(function, "__module__", "") == figures.__name__:
                setattr(figures, name, timed(f"draw {name}", function))
    savefig = Figure.savefig

    def save(figure, path, **kwargs):  # the report writes ".NAME.png.partial", then renames
        kind = "trial" if Path(path).parent.name.startswith("trial-") else "study"
        name = Path(path).name.lstrip(".").split(".")[0]
        return timed(f"save {kind} {name}", savefig)(figure, path, **kwargs)

    Figure.savefig = save
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        summary = render.render_report(results, Path(out), None, (), None)
        total = time.perf_counter() - start
    print(f"{summary.drawn} figures in {total:.1f} s")
    for name, times in sorted(spent.items(), key=lambda kv: -sum(kv[1])):
        share = sum(times) / total
        print(
            f"{name:32} {len(times):4d} x {sum(times) / len(times):.3f} s = {sum(times):6.1f} s "
            f"({share:.0%})"
        )


if __name__ == "__main__":
    main(Path(sys.argv[1]))
