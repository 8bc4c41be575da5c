"""Files written whole: made beside their name, then moved into place.

A reader (or a later run) sees the old file or the new one, never half of one: a full disk,
a Ctrl-C or a crash while writing leaves the old file as it was and nothing beside it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def new_part_file(folder: Path, prefix: str, suffix: str) -> Path:
    """A new, empty file of a name of its own in ``folder`` (which must exist), with the
    permissions a plain ``open`` gives a new file (``mkstemp`` makes it 0600 whatever the
    umask, which the file would keep under its final name: unreadable to a web server or
    another user)."""
    handle, name = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=folder)
    try:
        os.fchmod(handle, 0o666 & ~_umask())
    finally:
        os.close(handle)
    return Path(name)


def write_whole(path: Path, write: Callable[[Path], object]) -> None:
    """``write(part)`` to a new file beside ``path``, then that file renamed to ``path``
    (replacing it). ``OSError`` as the writing or the renaming raised it, the part removed."""
    part = new_part_file(path.parent, f".{path.name}.", ".part")
    try:
        write(part)
        os.replace(part, path)
    finally:
        part.unlink(missing_ok=True)
