"""``run_cli``: the ``adbot`` command run in this process, on fresh settings."""

from __future__ import annotations

import pytest
from cli_helpers import CliResult, RunCli

from adbot.cli.main import main
from adbot.config import get_settings


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]) -> RunCli:
    """``run_cli(argv)``: ``adbot ARGV`` with settings read afresh from the environment (set
    it with ``monkeypatch`` first); its exit code, stdout and stderr."""

    def run(argv: list[str]) -> CliResult:
        capsys.readouterr()
        get_settings.cache_clear()
        try:
            with pytest.raises(SystemExit) as exit_info:
                main(argv)
        finally:
            get_settings.cache_clear()
        captured = capsys.readouterr()
        return CliResult(exit_info.value.code, captured.out, captured.err)

    return run
