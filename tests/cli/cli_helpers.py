"""What the CLI tests share: the default agent config and ``run_cli``'s result type."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "agents" / "default.yaml"


@dataclass(frozen=True)
class CliResult:
    code: int | str | None
    out: str
    err: str

    @property
    def err_lines(self) -> list[str]:
        return self.err.strip().splitlines()


RunCli = Callable[[list[str]], CliResult]
