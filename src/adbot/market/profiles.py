"""Intraday traffic profiles: the named shapes of MARKET.md and their resampling to steps."""

from __future__ import annotations

import numpy as np

# Relative query volume per hour of the day (00:00 .. 23:00), before normalisation.
# retail: quiet nights, a morning ramp, lunch bump, evening peak (shopping from home).
# b2b: office hours only; a small tail in the early evening.
NAMED_HOURLY: dict[str, tuple[float, ...]] = {
    "flat": (1.0,) * 24,
    "retail": (
        0.25, 0.15, 0.10, 0.08, 0.08, 0.12, 0.30, 0.55, 0.80, 0.95, 1.00, 1.05,
        1.15, 1.10, 1.00, 1.00, 1.05, 1.15, 1.35, 1.55, 1.65, 1.45, 1.00, 0.55,
    ),
    "b2b": (
        0.04, 0.03, 0.03, 0.03, 0.04, 0.08, 0.20, 0.60, 1.30, 1.70, 1.80, 1.75,
        1.40, 1.60, 1.75, 1.70, 1.50, 1.10, 0.60, 0.35, 0.25, 0.18, 0.10, 0.06,
    ),
}  # fmt: skip


def resample_hourly(hourly: tuple[float, ...], steps_per_day: int) -> np.ndarray:
    """Weights of ``steps_per_day`` equal steps covering 24 hours, summing to 1.

    The 24 hourly weights are read as a piecewise-constant rate; a step's weight is that
    rate's integral over the step's share of the day.
    """
    rate = np.asarray(hourly, dtype=np.float64)
    cumulative = np.concatenate(([0.0], np.cumsum(rate)))
    edges = np.linspace(0.0, 24.0, steps_per_day + 1)
    weights = np.diff(np.interp(edges, np.arange(25.0), cumulative))
    return weights / weights.sum()


def step_weights(profile: str | tuple[float, ...], steps_per_day: int) -> np.ndarray:
    """Share of a day's queries falling in each decision step (sums to 1)."""
    if isinstance(profile, str):
        return resample_hourly(NAMED_HOURLY[profile], steps_per_day)
    weights = np.asarray(profile, dtype=np.float64)
    return weights / weights.sum()


def weekday_factors(profile: tuple[float, ...], weekdays: np.ndarray) -> np.ndarray:
    """MARKET.md's day factor ``weekday[d] / mean(weekday)`` of each of ``weekdays``.

    Weights whose mean underflows (a weight of 5e-324 beside zeros: the mean is 0 and the
    factor infinite) are first divided by the largest, which leaves the factors as they are;
    any other profile is computed as written."""
    weekday = np.asarray(profile, dtype=np.float64)
    mean = weekday.mean()
    if not mean >= np.finfo(np.float64).tiny:
        weekday = weekday / weekday.max()
        mean = weekday.mean()
    return weekday[weekdays] / mean
