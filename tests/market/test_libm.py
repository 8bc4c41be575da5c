"""``adbot.market.libm``: the C library's math element by element, and no numpy math elsewhere.

numpy's float64 transcendental functions are its own AVX-512 code on an AVX-512 CPU and the C
library's elsewhere, so anything the training env computes with them trains another agent on
another CPU. The packages the env and its evaluation run (market, rl, bidding) use ``libm`` or
Python's ``math`` instead; the last tests read their sources to keep it so.
"""

from __future__ import annotations

import ast
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from numpy._core._multiarray_umath import __cpu_dispatch__

from adbot.market import libm

PACKAGE = Path(libm.__file__).resolve().parents[1]
CHECKED_PACKAGES = ("market", "rl", "bidding")
# numpy functions whose float64 results depend on the SIMD code numpy picks for the CPU.
DISPATCHED = {
    "exp", "exp2", "expm1", "log", "log2", "log10", "log1p", "power", "float_power",
    "sin", "cos", "tan", "arcsin", "arccos", "arctan", "arctan2", "sinh", "cosh", "tanh",
    "arcsinh", "arccosh", "arctanh", "cbrt", "hypot", "geomspace", "logspace",
}  # fmt: skip


def _inputs(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    scales = rng.choice([1e-300, 1e-8, 1.0, 1e8, 1e300], 20_000)
    return rng.normal(0.0, 3.0, 20_000) * scales


def test_exp_is_the_c_library_exp_element_by_element() -> None:
    x = np.clip(_inputs(0), -745.0, 709.0)
    expected = np.array([math.exp(v) for v in x])
    assert np.array_equal(libm.exp(x), expected)
    assert np.array_equal(libm.exp(np.array([-np.inf, np.inf, 1000.0])), [0.0, np.inf, np.inf])
    assert np.isnan(libm.exp(np.array([np.nan]))).all()


def test_log_is_the_c_library_log_and_numpy_at_the_edges() -> None:
    x = np.abs(_inputs(1)) + 1e-320
    assert np.array_equal(libm.log(x), [math.log(v) for v in x])
    edges = libm.log(np.array([0.0, -1.0, np.inf, np.nan]))
    assert edges[0] == -np.inf and np.isnan(edges[1]) and edges[2] == np.inf
    assert np.isnan(edges[3])


def test_power_is_math_pow() -> None:
    x = np.abs(_inputs(2)[:5000]) + 1e-3
    for exponent in (-1.1, -0.3, 0.7, 1.3, 3.0):
        expected = [math.pow(v, exponent) if v < 1e200 or exponent < 1 else math.inf for v in x]
        assert np.array_equal(libm.power(x, exponent), expected), exponent


def test_results_keep_the_shape_and_out_is_written_in_place() -> None:
    x = np.linspace(-2.0, 2.0, 12).reshape(3, 4)
    got = libm.exp(x)
    assert got.shape == (3, 4) and np.array_equal(got.ravel(), [math.exp(v) for v in x.ravel()])
    out = x.copy()
    assert libm.exp(out, out=out) is out and np.array_equal(out, got)
    with pytest.raises(ValueError, match="out must be"):
        libm.exp(x, out=np.empty(5))
    with pytest.raises(ValueError, match="out must be"):
        libm.log(x, out=np.empty((3, 4), dtype=np.float32))


def test_geomspace_has_exact_ends_and_even_log_steps() -> None:
    grid = libm.geomspace(0.02, 50.0, 193)
    assert grid[0] == 0.02 and grid[-1] == 50.0
    steps = np.diff(np.log(grid))
    assert np.all(steps > 0) and np.ptp(steps) < 1e-12
    with pytest.raises(ValueError, match="0 < low < high"):
        libm.geomspace(1.0, 1.0, 5)
    with pytest.raises(ValueError, match="points >= 2"):
        libm.geomspace(0.5, 2.0, 1)


# What the test below runs with numpy's AVX-512 code switched off, in a process of its own.
_SAME_AS_NUMPY = """
import numpy as np
from adbot.market import libm
rng = np.random.default_rng(3)
x = rng.normal(0.0, 3.0, 20_000) * rng.choice([1e-300, 1e-8, 1.0, 1e8], 20_000)
positive, bases = np.abs(x) + 1e-300, np.abs(x[:5000]) + 1e-3
checks = {
    "exp": np.array_equal(libm.exp(np.clip(x, -700, 700)), np.exp(np.clip(x, -700, 700))),
    "log": np.array_equal(libm.log(positive), np.log(positive)),
    "power": np.array_equal(libm.power(bases, -1.1), bases**-1.1),
}
for low, high, points in ((0.02, 50.0, 193), (0.02, 50.0, 96), (1e-3, 1e5, 2000)):
    checks[f"geomspace {points}"] = np.array_equal(
        libm.geomspace(low, high, points), np.geomspace(low, high, points)
    )
print(sorted(name for name, same in checks.items() if not same))
"""


def test_without_numpys_avx512_code_every_function_gives_numpys_floats() -> None:
    """With its AVX-512 targets switched off (on a CPU without AVX-512 they never run) numpy's
    functions are the C library's: there libm changes no number, so agents trained before it
    on such CPUs are trained again exactly."""
    avx512 = [t for t in __cpu_dispatch__ if t.startswith(("X86_V4", "AVX512"))]
    env = {**os.environ, "NPY_DISABLE_CPU_FEATURES": " ".join(avx512)}
    run = subprocess.run(
        [sys.executable, "-c", _SAME_AS_NUMPY], capture_output=True, text=True, env=env
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]", f"libm differs from numpy in: {run.stdout}"


def _dispatched_math(path: Path) -> list[str]:
    """``np.<function>`` calls of :data:`DISPATCHED` and ``a ** b`` whose exponent is not an
    integer literal and whose base is not a number literal (a numpy array would run numpy's
    ``power``), as ``file:line`` strings."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in {"np", "numpy"}
            and node.attr in DISPATCHED
        ):
            found.append(f"{path.name}:{node.lineno} np.{node.attr}")
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow):
            exponent, base = node.right, node.left
            if isinstance(exponent, ast.UnaryOp) and isinstance(exponent.op, ast.USub):
                exponent = exponent.operand
            integer_exponent = isinstance(exponent, ast.Constant) and type(exponent.value) is int
            number_base = isinstance(base, ast.Constant) and isinstance(base.value, int | float)
            if not (integer_exponent or number_base):
                found.append(f"{path.name}:{node.lineno} **")
    return sorted(found, key=lambda hit: int(hit.split(":")[1].split()[0]))


def test_the_env_and_evaluation_packages_call_no_dispatched_numpy_math() -> None:
    sources = [
        path
        for name in CHECKED_PACKAGES
        for path in (PACKAGE / name).rglob("*.py")
        if path.name != "libm.py"  # its compiled loops are the C library's math
    ]
    assert len(sources) > 20
    found = [hit for path in sources for hit in _dispatched_math(path)]
    assert found == [], f"use adbot.market.libm or math instead: {found}"


def test_the_source_check_finds_what_it_looks_for(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import numpy as np\n"
        "a = np.exp(x)\n"
        "b = np.geomspace(1, 2, 3)\n"
        "c = x ** 1.5\n"
        "d = x ** -zipf\n"
        "e = x ** 2 + y ** -1 + 0.5 ** (1 / n)\n"
        "f = np.sqrt(x) + np.maximum(x, 1)\n"
    )
    assert _dispatched_math(sample) == [
        "sample.py:2 np.exp",
        "sample.py:3 np.geomspace",
        "sample.py:4 **",
        "sample.py:5 **",
    ]


def test_numba_compiles_without_intels_vector_math() -> None:
    """Loaded after ``adbot.market``, numba does not map ``math.exp`` loops to SVML."""
    code = "import adbot.market, numba; print(numba.config.DISABLE_INTEL_SVML)"
    env_check = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={k: v for k, v in os.environ.items() if k != "NUMBA_DISABLE_INTEL_SVML"},
    )
    assert env_check.stdout.strip() in {"1", "True"}
