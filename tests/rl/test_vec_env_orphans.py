"""The env workers of a learner killed outright (SIGKILL, the OOM killer) stop by themselves.

A real SIGKILL is the point, so the learner is a subprocess: it builds the training's vec
env and waits to be killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from process_helpers import alive, wait_gone

pytestmark = pytest.mark.slow

LEARNER = """
import sys, time
from adbot.rl.config import TrainingConfig
from adbot.rl.train import build_vec_env

config = TrainingConfig(
    name="tiny", n_envs=int(sys.argv[1]), vec_env="subproc", vec_workers=int(sys.argv[2]),
    env={"max_daily_queries": 1500.0},
)
venv = build_vec_env(config)
venv.reset()
print(type(venv.venv).__name__, flush=True)
time.sleep(120)
"""


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        children = (task / "children").read_text().split()
        found += [int(child) for child in children]
    return found


@pytest.fixture
def leftovers() -> Iterator[list[int]]:
    """Worker ids to kill at the end if the test failed with them alive."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize(
    ("n_envs", "n_workers", "kind"), [(2, 2, "SubprocVecEnv"), (6, 3, "GroupedSubprocVecEnv")]
)
def test_the_env_workers_stop_when_the_learner_is_killed(
    n_envs: int, n_workers: int, kind: str, leftovers: list[int]
) -> None:
    """Before, the workers (each holding a copy of the other's pipe, so none saw its own
    close) waited forever, as orphans, for a command from the dead learner."""
    learner = subprocess.Popen(
        [sys.executable, "-c", LEARNER, str(n_envs), str(n_workers)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert learner.stdout is not None
        assert learner.stdout.readline().strip() == kind
        workers = _children(learner.pid)
        leftovers += workers
        assert len(workers) == 2  # the grouped one steps its first group itself
    finally:
        learner.kill()
        learner.wait(timeout=30)
    wait_gone(workers, 10, "the env workers outlived their learner")
