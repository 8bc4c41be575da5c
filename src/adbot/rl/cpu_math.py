"""Fixed CPU code paths for PyTorch's math, so that training depends less on the CPU it runs on.

PyTorch chooses its kernels by the CPU it runs on: MKL, its BLAS on x86-64, by instruction
set and vendor; ATen, for its element-wise kernels, among portable, AVX2 and AVX-512 code.
Sums then differ in their last bits from one kind of CPU to another, and PPO amplifies those
bits into another agent. Both libraries read a variable when they load, which pins the path:

- ``MKL_CBWR=COMPATIBLE``: MKL's conditional numerical reproducibility on the branch that
  MKL documents as giving the same results on Intel and compatible processors. The
  instruction-set branches (``AVX2``, ``AVX512``) are Intel-only: on this VM's AMD EPYC, MKL
  reports ``AUTO`` for them, the CPU's own path.
- ``ATEN_CPU_CAPABILITY=default``: ATen's portable kernels, which every CPU runs.

Measured with three PPO updates of the default config (docs/RL_NOTES.md, twelfth session):
each of MKL's default path, its CNR branches and ATen's portable kernels gives other weights,
and with both variables set the weights stay the same when numba compiles for another
CPU (haswell, generic x86-64), numpy's SIMD is held to AVX2 or SSE4 and OpenBLAS to another
core type. A PPO minibatch update costs about 1.5 times as much (2.2 ms against 1.5 ms), a
few seconds over a whole training run. Not enough, though, to reproduce agents across CPU
vendors: retrained on an Intel Xeon with AVX-512, agents trained on an AMD EPYC with AVX-512
came out different (thirteenth session, docs/RL_NOTES.md), while they evaluate the same there.

They must be in the environment before torch loads, so importing :mod:`adbot.rl` sets them
(:func:`pin_cpu_math`); a value the user set is kept.
"""

from __future__ import annotations

import os
import sys

PINNED: dict[str, str] = {"MKL_CBWR": "COMPATIBLE", "ATEN_CPU_CAPABILITY": "default"}


def pin_cpu_math() -> bool:
    """Set each variable of :data:`PINNED` that is not set yet, if torch has not loaded.

    Returns whether torch will run on the pinned paths; False when torch had already
    loaded (the variables are then left alone: they would not take effect) or the user
    chose other values.
    """
    if "torch" in sys.modules:
        return is_pinned()
    for name, value in PINNED.items():
        os.environ.setdefault(name, value)
    return is_pinned()


def is_pinned() -> bool:
    """Whether the environment holds :data:`PINNED` (case as MKL and ATen read it)."""
    return all(os.environ.get(name, "").lower() == value.lower() for name, value in PINNED.items())


def cpu_math() -> dict[str, str]:
    """The code paths this process's torch runs on, recorded with every checkpoint."""
    import torch

    return {
        "torch": torch.__version__,
        "aten_capability": torch.backends.cpu.get_cpu_capability(),
        "mkl_cbwr": os.environ.get("MKL_CBWR", "unset"),
        "threads": str(torch.get_num_threads()),
        "pinned": str(is_pinned() and torch.backends.cpu.get_cpu_capability() == "DEFAULT"),
    }
