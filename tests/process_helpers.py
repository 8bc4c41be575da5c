"""Processes seen through /proc, for the tests that check nothing outlives its parent."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path


def alive(pid: int) -> bool:
    """Running, not a zombie (an orphan's zombie lasts until init reaps it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_gone(pids: list[int], seconds: float, what: str) -> None:
    """Fail unless every process of ``pids`` has ended within ``seconds``."""
    deadline = time.monotonic() + seconds
    while any(alive(pid) for pid in pids):
        assert time.monotonic() < deadline, f"{what} by {seconds:g} s"
        time.sleep(0.1)


def spawned_children(pid: int) -> list[int]:
    """The worker processes ``pid`` started with multiprocessing's spawn (not its resource
    tracker, nor other children)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            if parent == pid and b"spawn_main" in (stat.parent / "cmdline").read_bytes():
                found.append(int(stat.parent.name))
    return found
