"""Numba's on-disk cache of AdBot's kernels, kept in step with all of their sources.

Numba reuses a cached kernel as long as the kernel's own source file is unchanged; it does not
notice a change in another file that the kernel compiled in: a jitted function it calls or a
module constant it reads (a limitation numba documents). After a ``git pull`` that changed only
``rl/planner.py``, the features kernel that calls the planner's kept running the old planner,
silently. So before any kernel is loaded (importing this module calls :func:`refresh`;
``adbot.market`` imports it first, and every kernel module imports ``adbot.market``), the
digest of every source file in the packages that hold kernels is compared with the one recorded
beside the cache; when they differ, AdBot's cached kernels are removed (numba compiles them again,
about 10 s) and the new digest is recorded.

An installed package whose directory is not writable is left alone: installing a version
rewrites every file, which numba does notice.

Also before numba loads: ``NUMBA_DISABLE_INTEL_SVML=1`` (unless set), so that a compiled loop
over ``math.exp`` calls the C library's ``exp`` even where Intel's vector math library is
installed, whose last bits differ (``adbot.market.libm``).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from adbot.files import write_whole

os.environ.setdefault("NUMBA_DISABLE_INTEL_SVML", "1")

PACKAGE_ROOT = Path(__file__).resolve().parent
KERNEL_PACKAGES = ("market", "rl")  # every module that uses numba is in one of these
CACHE_SUFFIXES = (".nbi", ".nbc")  # numba's index and data files, in each __pycache__
DIGEST_FILE = Path("__pycache__") / "kernel-sources.sha256"


def sources_digest(root: Path = PACKAGE_ROOT) -> str:
    """sha256 over the path and bytes of every ``.py`` file of the kernel packages."""
    digest = hashlib.sha256()
    for package in KERNEL_PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            digest.update(str(path.relative_to(root)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def cached_kernels(root: Path = PACKAGE_ROOT) -> list[Path]:
    """Numba's cache files of the kernel packages."""
    return sorted(
        path
        for package in KERNEL_PACKAGES
        for path in (root / package).rglob("__pycache__/*")
        if path.suffix in CACHE_SUFFIXES
    )


def refresh(root: Path = PACKAGE_ROOT) -> bool:
    """Remove the cached kernels if any kernel package's source changed since they were
    recorded; whether it removed them. Never raises: a cache it cannot read or write is
    numba's to handle, at worst by compiling again."""
    record = root / DIGEST_FILE
    removed = False
    try:
        current = sources_digest(root)
        if record.is_file() and record.read_text().strip() == current:
            return False
        for path in cached_kernels(root):
            path.unlink(missing_ok=True)
        removed = True
        record.parent.mkdir(exist_ok=True)
        # Whole or not at all: a process starting beside this one must not read half a digest
        # (and remove the kernels this one is compiling again).
        write_whole(record, lambda part: part.write_text(current + "\n"))
    except OSError:  # a read-only install, a file removed by a concurrent process
        return removed  # the digest unrecorded: the next process removes them again
    return True


refresh()
