"""How the error rate is spent across looks: power at the design's look against power after the
study grows (BENCHMARKS.md, "Spending the error rate across looks").

For each shipped design (k configurations x b blocks), a spending shape (Hwang-Shih-DeCani γ)
and a largest size (`max_blocks` as a multiple of b): the share of the 5% the design's own
look keeps, and how often a configuration Δ better than the others is named the best at that
look, and by the end when the study grows once to `max_blocks` (a second look). Δ is what
the design names with 80% power with the whole 5% at one look. 4,000 seeded studies a cell.

    .venv/bin/python benchmarks/spending.py
"""

from __future__ import annotations

import math

import numpy as np

from vaesweep.stats.power import _closed, detectable

ALPHA = 0.05
DESIGNS = {"warmup 3 × 10": (3, 10), "latent 5 × 6": (5, 6), "likelihood 2 × 5": (2, 5)}


def spent(t: float, gamma: float) -> float:
    return ALPHA * (1 - math.exp(-gamma * t)) / (1 - math.exp(-gamma))


def named(values: np.ndarray, level: float) -> np.ndarray:
    return _closed(values, True, level)[:, 1:].all(axis=1)


def main() -> None:
    print("| design | γ | max_blocks | share at the design's look | named there | by the end |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, (k, b) in DESIGNS.items():
        delta = detectable(1.0, k, b, True, ALPHA)["winner"]
        for factor in (1.5, 2, 3):
            top = math.ceil(factor * b)
            rng = np.random.default_rng(7)
            values = rng.standard_normal((4000, k, top))
            values[:, 0] += delta
            for gamma in (1, 2, 3, 4):
                first = spent(b / top, gamma)
                there = named(values[:, :, :b], first)
                later = named(values, ALPHA - first)
                print(
                    f"| {name} | {gamma} | {top} ({factor:g}b) | {first / ALPHA:.0%} | "
                    f"{there.mean():.0%} | {(there | later).mean():.0%} |"
                )


if __name__ == "__main__":
    main()
