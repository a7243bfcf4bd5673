"""Error spent across looks: a study that grows after its answer was shown is tested again on
data it was already tested on, so each look may claim only the share of the error rate that an
alpha-spending function (Lan & DeMets, 1983) gives the information it adds.

Information is counted in blocks (seed blocks, or replicates of each configuration): a look at
n of at most `max_blocks` blocks has information fraction t = n / max_blocks. The
cumulative error spent by t follows the Hwang-Shih-DeCani family with gamma = 3: 82% of the error
by half the blocks (the default `max_blocks` is twice the design's), so the design's own look
keeps most of its power and extensions keep the rest (benchmarks/spending.py compares shapes and
sizes: at the design's look the winner is named 74-77% of the time where the whole 5% would name
it 80%, and after growing to `max_blocks` 96-100%). A shape that spends more early than an
earlier one (gamma = 1 spent 62% by half) keeps a study's earlier looks within the 5%. Each
look tests at its own increment of that function, and a union bound over the looks keeps the
total at `alpha` whatever the looks were and whatever rule chose them (stopping once decided
included). This is exact for t-tests of any degrees of freedom,
where group-sequential boundaries that use the looks' correlation are only approximate with
few blocks (5.9% instead of 5% in a simulation of looks at every block from 3 to 20); it costs
power only at repeated looks. A look at the same number of blocks as the previous one is the
same look; past `max_blocks` no error is left, and nothing new can be claimed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

GAMMA = 3.0  # Hwang-Shih-DeCani shape: 1 is Pocock-like, -4 O'Brien-Fleming-like


def spent(t: float, alpha: float) -> float:
    """Cumulative error spent by information fraction t (Hwang, Shih & DeCani, 1990)."""
    t = min(max(t, 0.0), 1.0)
    return alpha * (1 - math.exp(-GAMMA * t)) / (1 - math.exp(-GAMMA))


def look_level(blocks: int, earlier: Sequence[int], max_blocks: int | None, alpha: float) -> float:
    """The error rate of a look at `blocks`, after looks at the `earlier` block counts.
    Without `max_blocks`, a single fixed-size analysis: the whole `alpha`."""
    if max_blocks is None:
        return alpha
    before = max((n for n in earlier if n < blocks), default=0)
    return spent(blocks / max_blocks, alpha) - spent(before / max_blocks, alpha)
