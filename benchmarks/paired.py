"""Helpers of the benchmarks that compare policies pair by pair (same episodes)."""

from __future__ import annotations

import argparse
import math
import statistics


def mean_and_error(values: list[float]) -> tuple[float, float]:
    """The mean and its standard error (NaN for a single value; both NaN for none, as when
    the oracle scored nothing on every episode and no ratio exists)."""
    if not values:
        return math.nan, math.nan
    error = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else math.nan
    return statistics.fmean(values), error


def positive(text: str) -> int:
    """An argparse type: an integer of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def paired_gap(ratios: list[float | None], first: list[float | None]) -> tuple[float, float]:
    """Mean and standard error of ``ratios - first`` over the episodes where both exist."""
    return mean_and_error(
        [a - b for a, b in zip(ratios, first, strict=True) if a is not None and b is not None]
    )
