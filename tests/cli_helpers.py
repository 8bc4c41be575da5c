"""What the CLI tests share: the default agent config and ``run_cli``'s result type
(the ``run_cli`` fixture is in ``tests/conftest.py``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "agents" / "default.yaml"


class CliResult(NamedTuple):
    """Exit code, stdout, stderr (a tuple: ``code, out, err = run_cli(argv)``)."""

    code: int | str | None
    out: str
    err: str

    @property
    def err_lines(self) -> list[str]:
        return self.err.strip().splitlines()


RunCli = Callable[[list[str]], CliResult]
