"""Element-wise exp, log and power from the C library: the same floats on every x86-64 CPU.

numpy computes float64 ``exp``, ``log``, ``power``, ``sin``, ``cos`` (and ``geomspace``, built
on them) with its own AVX-512 code on a CPU that has AVX-512 and with the C library's functions
on one that has not; the two differ in the last bit on some inputs. Those bits reach the
market's draws (conversion values, rivals' bid jitter), so an agent trained on an AVX-512
machine learnt from other rewards than one trained on an AVX2 machine, and PPO makes another
agent of them (docs/RL_NOTES.md, fourteenth and sixteenth sessions). Everything the training
env computes uses these instead (or Python's ``math``, the same C functions);
``tests/market/test_libm.py`` checks that the market and RL packages call none of numpy's.

``geomspace`` does numpy's arithmetic, so on a CPU without AVX-512 (where numpy's functions
are the C library's) every function here gives numpy's floats exactly.

The loops are compiled and as fast as numpy's loop on a CPU without AVX-512. Numba would turn
them into calls to Intel's vector math library (SVML) if that library were installed;
``adbot.kernel_cache`` turns that off before numba loads.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numba
import numpy as np


@numba.njit(cache=True)
def _exp_into(x: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover - compiled
    for i in range(x.size):
        out[i] = math.exp(x[i])


@numba.njit(cache=True)
def _log_into(x: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover - compiled
    for i in range(x.size):
        value = x[i]
        # math.log raises at 0 and below; numpy's gives -inf and NaN, as this does.
        out[i] = math.log(value) if value > 0.0 else (-math.inf if value == 0.0 else math.nan)


@numba.njit(cache=True)
def _power_into(x: np.ndarray, out: np.ndarray, exponent: float) -> None:  # pragma: no cover
    for i in range(x.size):
        out[i] = x[i] ** exponent


def _apply(
    kernel: Callable[..., None], x: np.ndarray, out: np.ndarray | None, *args: float
) -> np.ndarray:
    values = np.ascontiguousarray(x, dtype=np.float64)
    if out is None:
        out = np.empty_like(values)
    elif out.dtype != np.float64 or out.shape != values.shape or not out.flags.c_contiguous:
        raise ValueError("out must be a C-contiguous float64 array of the input's shape")
    kernel(values.reshape(-1), out.reshape(-1), *args)
    return out


def exp(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``e ** x`` element by element, as ``math.exp`` gives it (``out`` may be ``x``)."""
    return _apply(_exp_into, x, out)


def log(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """The natural log element by element, as ``math.log`` gives it; -inf at 0, NaN below."""
    return _apply(_log_into, x, out)


def power(x: np.ndarray, exponent: float) -> np.ndarray:
    """``x ** exponent`` element by element, as ``math.pow`` gives it (inf and NaN where it
    raises)."""
    return _apply(_power_into, x, None, float(exponent))


def geomspace(low: float, high: float, points: int) -> np.ndarray:
    """``np.geomspace(low, high, points)``, the same floats, computed through the C library:
    ``10 ** linspace(log10(low), log10(high))`` with both ends exact, as numpy does it."""
    if not (0 < low < high) or points < 2:
        raise ValueError(f"need 0 < low < high and points >= 2, got {low}, {high}, {points}")
    exponents = np.linspace(math.log10(low), math.log10(high), points).tolist()
    grid = np.array([math.pow(10.0, e) for e in exponents])
    grid[0], grid[-1] = low, high
    return grid
