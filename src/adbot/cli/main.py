"""Entry point of the ``adbot`` command (its commands: :mod:`adbot.cli.app`).

This module imports the standard library only: the console script imports it before it
calls :func:`main`, and the CLI's own imports, the first two seconds of every command, run
in :func:`main`, where a Ctrl-C is one line rather than a traceback.
"""

from __future__ import annotations

import errno
import os
import sys
from typing import NoReturn

CANCELLED_STARTING = "cancelled while adbot was starting; nothing was done"
# Errors of a write that no command handles itself: a full or read-only disk, an output
# redirected to /dev/full. Any other OSError is a bug and keeps its traceback.
OUTPUT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO, errno.EROFS})


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; an ``AdbotError`` becomes one line on stderr and exit code 1, a Ctrl-C
    before the command runs one line and exit code 130. (Typer ends a command stopped by
    Ctrl-C with 130 too; ``adbot train`` and ``adbot tune`` say what was recorded.)"""
    try:
        from adbot.cli.app import app
        from adbot.errors import AdbotError
    except KeyboardInterrupt:
        sys.stderr.write(f"{CANCELLED_STARTING}\n")
        sys.exit(130)
    try:
        app(args=argv, prog_name="adbot")
    except AdbotError as exc:
        _fail(exc.message)
    except MemoryError:
        _fail(
            "out of memory: the run needs more memory than this machine has (a smaller "
            "scenario, fewer episodes or fewer workers need less)"
        )
    except BrokenPipeError:
        _drop_stdout()  # its reader went away (``adbot evaluate --json | head``)
        sys.exit(1)
    except OSError as exc:
        if exc.errno not in OUTPUT_ERRNOS:
            raise
        _drop_stdout()
        where = exc.filename if exc.filename is not None else "the output"
        _fail(f"cannot write {where}: {exc.strerror}")


def _drop_stdout() -> None:
    """Point stdout at /dev/null: what is left in its buffer would fail again at exit,
    as "Exception ignored ..." on stderr."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # no file descriptor behind it (a test's capture)
        pass


def _fail(message: str) -> NoReturn:
    from rich.text import Text

    from adbot.cli._console import err

    err.print(Text.assemble(("error:", "bold red"), " ", message), highlight=False, soft_wrap=True)
    sys.exit(1)


if __name__ == "__main__":
    main()
