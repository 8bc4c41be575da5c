"""PyTorch's CPU math is pinned before torch loads (``adbot.rl.cpu_math``), in fresh processes:
this test process may have loaded torch long before."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from adbot.rl.cpu_math import PINNED

_REPORT = """
import json, os, sys
{before}
loaded_before = "torch" in sys.modules
import torch
from adbot.rl.cpu_math import cpu_math
print(json.dumps({{"loaded_before": loaded_before, "cpu_math": cpu_math(),
    "env": {{name: os.environ.get(name) for name in {names!r}}}}}))
"""


def _report(before: str, **env: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if k not in PINNED}
    code = _REPORT.format(before=before, names=list(PINNED))
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout)


@pytest.mark.parametrize(
    "entry", ["import adbot.rl", "import adbot.cli.main", "from adbot.bidding import make_policy"]
)
def test_importing_adbot_pins_torch_math_before_torch_loads(entry: str) -> None:
    """The CLI (``adbot train``, ``adbot evaluate``) loads torch only after adbot.rl."""
    before = entry if entry == "import adbot.rl" else f"{entry}\nimport adbot.rl"
    report = _report(before)
    assert not report["loaded_before"]
    assert report["env"] == PINNED
    assert report["cpu_math"]["aten_capability"] == "DEFAULT"
    assert report["cpu_math"]["mkl_cbwr"] == "COMPATIBLE"
    assert report["cpu_math"]["pinned"] == "True"


def test_a_users_own_setting_is_kept_and_reported_unpinned() -> None:
    report = _report("import adbot.rl", MKL_CBWR="AUTO")
    assert report["env"] == {"MKL_CBWR": "AUTO", "ATEN_CPU_CAPABILITY": "default"}
    assert report["cpu_math"]["pinned"] == "False"


def test_torch_loaded_first_is_left_alone() -> None:
    """Set after torch loaded, the variables would not take effect but would claim so."""
    report = _report("import torch\nimport adbot.rl")
    assert report["env"] == {name: None for name in PINNED}
    assert report["cpu_math"]["pinned"] == "False"
    assert report["cpu_math"]["aten_capability"] != "DEFAULT" or _cpu_has_no_simd()


def _cpu_has_no_simd() -> bool:
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    return "avx2" not in flags
