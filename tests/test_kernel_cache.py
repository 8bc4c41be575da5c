"""Numba's cached kernels are dropped when any kernel package's source changes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from adbot import kernel_cache


def _tree(root: Path) -> dict[str, Path]:
    """A package root with one module per kernel package, each with a cached kernel (index and
    data) and a bytecode file beside it."""
    files = {}
    for package in kernel_cache.KERNEL_PACKAGES:
        (root / package / "__pycache__").mkdir(parents=True)
        (root / package / "kernels.py").write_text("X = 1\n")
        for suffix in (".nbi", ".1.nbc", ".cpython-311.pyc"):
            path = root / package / "__pycache__" / f"kernels._step-10.py311{suffix}"
            path.write_bytes(b"cached")
            files[f"{package}{suffix}"] = path
    return files


def _kept(files: dict[str, Path]) -> set[str]:
    return {name for name, path in files.items() if path.exists()}


def test_cached_kernels_go_when_a_source_in_another_file_changes(tmp_path: Path) -> None:
    files = _tree(tmp_path)
    bytecode = {name for name in files if name.endswith(".pyc")}
    assert kernel_cache.refresh(tmp_path)  # no digest recorded yet: the cache's age is unknown
    assert _kept(files) == bytecode  # numba's files removed, Python's left
    for path in files.values():
        path.write_bytes(b"cached")
    assert not kernel_cache.refresh(tmp_path)  # sources unchanged: the cache stays
    assert _kept(files) == set(files)
    (tmp_path / "rl" / "kernels.py").write_text("X = 2\n")  # a constant the market kernel reads
    assert kernel_cache.refresh(tmp_path)
    assert _kept(files) == bytecode
    recorded = (tmp_path / kernel_cache.DIGEST_FILE).read_text().strip()
    assert recorded == kernel_cache.sources_digest(tmp_path)


def test_the_digest_is_written_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A process starting beside another must read the old digest or the new, never half of one.
    _tree(tmp_path)
    assert kernel_cache.refresh(tmp_path)
    record = tmp_path / kernel_cache.DIGEST_FILE
    old = record.read_text()
    (tmp_path / "rl" / "kernels.py").write_text("X = 3\n")

    def cut(self: Path, text: str) -> None:
        Path.write_bytes(self, text.encode()[:10])  # half of it written, then the disk is full
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_text", cut)
    assert kernel_cache.refresh(tmp_path)  # the kernels went; the digest was not recorded
    monkeypatch.undo()
    assert record.read_text() == old
    assert sorted(p.name for p in record.parent.iterdir()) == [record.name]  # no part left


def test_a_new_or_renamed_module_changes_the_digest(tmp_path: Path) -> None:
    _tree(tmp_path)
    before = kernel_cache.sources_digest(tmp_path)
    (tmp_path / "market" / "kernels.py").rename(tmp_path / "market" / "moved.py")
    assert kernel_cache.sources_digest(tmp_path) != before


def test_a_cache_it_cannot_write_is_left_to_numba(tmp_path: Path) -> None:
    files = _tree(tmp_path)
    (tmp_path / "__pycache__").write_text("a file where the digest's directory would be")
    assert kernel_cache.refresh(tmp_path)  # no exception: numba copes, at worst compiling
    assert not (tmp_path / kernel_cache.DIGEST_FILE).exists()
    assert _kept(files) != set(files)  # the stale kernels were still removed first


def test_every_module_that_uses_numba_is_in_a_kernel_package() -> None:
    """A kernel outside these packages would be cached without the cross-file check."""
    root = kernel_cache.PACKAGE_ROOT
    users = {
        path.relative_to(root).parts[0]
        for path in root.rglob("*.py")
        if re.search(r"^\s*(import numba|from numba)", path.read_text(), re.MULTILINE)
    }
    assert users and users <= set(kernel_cache.KERNEL_PACKAGES), users
