"""Files written whole (``adbot.files``): the permissions of a plain new file, and nothing
left beside the name when the writing fails."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from adbot.files import new_part_file, write_whole


@pytest.fixture
def umask_027() -> Iterator[None]:
    previous = os.umask(0o027)
    try:
        yield
    finally:
        os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.usefixtures("umask_027")
def test_a_part_file_has_the_permissions_the_umask_gives(tmp_path: Path) -> None:
    """``mkstemp`` alone makes 0600 files, which keep that mode under their final name."""
    plain = tmp_path / "plain"
    plain.touch()
    part = new_part_file(tmp_path, "page-", ".html.part")
    assert part.parent == tmp_path and part.name.startswith("page-")
    assert part.name.endswith(".html.part") and part.read_text() == ""
    assert _mode(part) == _mode(plain) == 0o640


@pytest.mark.usefixtures("umask_027")
def test_write_whole_replaces_the_file_in_one_step(tmp_path: Path) -> None:
    path = tmp_path / "trace.csv"
    path.write_text("old\n")
    write_whole(path, lambda part: part.write_text("new\n"))
    assert path.read_text() == "new\n" and _mode(path) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["trace.csv"]


def test_a_failed_write_leaves_the_old_file_and_no_part(tmp_path: Path) -> None:
    path = tmp_path / "trace.csv"
    path.write_text("old\n")

    def half_then_full(part: Path) -> None:
        part.write_text("ne")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        write_whole(path, half_then_full)
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["trace.csv"]
