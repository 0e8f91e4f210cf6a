"""Pearson's chi-square goodness-of-fit test against the uniform distribution."""

from __future__ import annotations

import math
from collections.abc import Sequence


def uniformity_p_value(counts: Sequence[int]) -> float:
    """P(a uniform draw deviates at least this much) for ``counts`` over equal cells.

    Exact survival function of chi-square for an even number of degrees of freedom
    (pass an odd number of cells): exp(-x/2) * sum over i < df/2 of (x/2)^i / i!.
    """
    cells, total = len(counts), sum(counts)
    degrees_of_freedom = cells - 1
    if degrees_of_freedom % 2:
        raise ValueError("pass an odd number of cells (an even number of degrees of freedom)")
    expected = total / cells
    statistic = sum((observed - expected) ** 2 / expected for observed in counts)
    half = statistic / 2
    term, survival = 1.0, 0.0
    for i in range(degrees_of_freedom // 2):
        if i:
            term *= half / i
        survival += term
    return math.exp(-half) * survival
