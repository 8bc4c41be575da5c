"""Signals of the long-running commands (train, tune, quickstart)."""

from __future__ import annotations

import signal
from types import FrameType


def interrupt_on_sigterm() -> None:
    """A ``SIGTERM`` (``kill``, ``timeout``, a stopped container) is then a Ctrl-C: the
    command stops as it does on one, says so in one line and records what it must."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)
