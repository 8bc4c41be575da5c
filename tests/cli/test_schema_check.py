"""The commands that need the database refuse one not migrated to head: one check, in the
database layer (``migrate.require_current_schema``), one line and exit code 1 from each."""

from __future__ import annotations

from pathlib import Path

import pytest

import adbot.api.server
from adbot.cli.main import main
from adbot.config import get_settings
from adbot.db import migrate
from adbot.errors import InvalidInput

DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "agents" / "default.yaml"
NOT_UP_TO_DATE = "the database schema is not up to date: run `adbot db upgrade`"


def test_the_schema_check_refuses_an_unmigrated_database(tmp_path: Path, sqlite_url: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        migrate.require_current_schema(f"sqlite:///{tmp_path / 'never-migrated.db'}")
    assert refused.value.message == NOT_UP_TO_DATE
    migrate.require_current_schema(sqlite_url)  # migrated to head: passes


@pytest.mark.parametrize("command", ["serve", "train"])
def test_each_command_refuses_an_unmigrated_database_in_one_line(
    command: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
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
    get_settings.cache_clear()
    try:
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
    finally:
        get_settings.cache_clear()
    assert exit_info.value.code == 1
    captured = capsys.readouterr()
    assert captured.err == f"error: {NOT_UP_TO_DATE}\n" and captured.out == ""
    assert not (tmp_path / "run").exists() and not (tmp_path / "data").exists()
