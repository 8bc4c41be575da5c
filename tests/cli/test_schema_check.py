"""The commands that need the database refuse one not migrated to head: one check, in the
database layer (``migrate.require_current_schema``), one line and exit code 1 from each."""

from __future__ import annotations

from pathlib import Path

import pytest

import adbot.api.server
from adbot.db import migrate
from adbot.errors import InvalidInput
from cli_helpers import DEFAULT_CONFIG, RunCli

NOT_UP_TO_DATE = "the database schema is not up to date: run `adbot db upgrade`"


def test_the_schema_check_refuses_an_unmigrated_database(tmp_path: Path, sqlite_url: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        migrate.require_current_schema(f"sqlite:///{tmp_path / 'never-migrated.db'}")
    assert refused.value.message == NOT_UP_TO_DATE
    migrate.require_current_schema(sqlite_url)  # migrated to head: passes


@pytest.mark.parametrize("command", ["serve", "train"])
def test_each_command_refuses_an_unmigrated_database_in_one_line(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_cli: RunCli
) -> None:
    """Before the server starts or the run directory is made."""

    def no_server(**kwargs: object) -> None:
        raise AssertionError("served on an unmigrated database")

    monkeypatch.setattr(adbot.api.server, "run", no_server)
    monkeypatch.setenv("ADBOT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ADBOT_DB__URL", f"sqlite:///{tmp_path / 'never-migrated.db'}")
    argv = {
        "serve": ["serve"],
        "train": ["train", "--config", str(DEFAULT_CONFIG), "--output", str(tmp_path / "run")],
    }[command]
    result = run_cli(argv)
    assert result.code == 1
    assert result.err == f"error: {NOT_UP_TO_DATE}\n" and result.out == ""
    assert not (tmp_path / "run").exists() and not (tmp_path / "data").exists()
