"""Do configurations differ in seed noise on real studies? Per configuration of each study's
answer: the SD of its objective over the seed blocks (95% chi-square interval), and the SD of
its paired differences with the best (BENCHMARKS.md, "Seed noise by configuration").

    .venv/bin/python benchmarks/real_noise.py --results DIR STUDY [STUDY ...]
"""

from __future__ import annotations

import argparse
import math

import numpy as np
from scipy import stats

from vaesweep import results
from vaesweep.answer.effects import configuration


def sd_interval(values: np.ndarray) -> str:
    df = len(values) - 1
    sd = float(np.std(values, ddof=1))
    low = sd * math.sqrt(df / stats.chi2.ppf(0.975, df))
    high = sd * math.sqrt(df / stats.chi2.ppf(0.025, df))
    return f"{sd:.3g} ({low:.2g}–{high:.2g})"


def _natural(label: str) -> tuple:
    try:
        return (0, float(label), "")
    except ValueError:
        return (1, 0.0, label)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--results", default="results")
    parser.add_argument("studies", nargs="+")
    args = parser.parse_args()
    print(
        "| study | objective | configuration | blocks | SD over seeds (95% CI) "
        "| SD of its difference with the best |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for name in args.studies:
        data = results.load(name, results=args.results)
        rows = data.table[data.table["in_answer"] & (data.table["state"] == "COMPLETE")]
        for answer in data.answers:
            wide = (
                rows.assign(_c=configuration(rows, data.params))
                .pivot_table(index="replicate", columns="_c", values=answer.objective)
                .dropna()
            )
            best = wide[answer.best]
            for config in sorted(wide.columns, key=_natural):
                diff = (
                    "the best"
                    if config == answer.best
                    else f"{np.std(wide[config] - best, ddof=1):.3g}"
                )
                print(
                    f"| {name} | {answer.objective} | {config} | {len(wide)} | "
                    f"{sd_interval(wide[config].to_numpy())} | {diff} |"
                )


if __name__ == "__main__":
    main()
