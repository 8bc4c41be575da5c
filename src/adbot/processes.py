"""Child processes that do not outlive their parent.

A parent killed outright (SIGKILL: the OOM killer, ``kill -9``) cannot stop the processes it
started; left running, they keep what they hold (a listening port, a pipe, memory) for good.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import threading
from collections.abc import Callable


def on_parent_exit(then: Callable[[], object]) -> bool:
    """In a process started by ``multiprocessing``: call ``then`` (in a daemon thread) once
    the process that started it has exited. Returns False, doing nothing, in any other
    process."""
    parent = multiprocessing.parent_process()
    if parent is None or parent.sentinel is None:
        return False
    sentinel = parent.sentinel

    def watch() -> None:
        multiprocessing.connection.wait([sentinel])  # readable once the parent has exited
        then()

    threading.Thread(target=watch, name="adbot-parent-watch", daemon=True).start()
    return True
