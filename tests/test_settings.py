"""Settings: sources and their order, masking, and readable errors for bad configuration."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from adbot.config import Settings, load_settings, mask_url, settings_origins
from adbot.errors import ConfigError


@pytest.fixture()
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in an empty folder with no ADBOT_ variables, so only what a test sets applies."""
    for name in list(__import__("os").environ):
        if name.startswith("ADBOT_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_code_defaults_use_the_port_range(isolated: Path) -> None:
    settings = load_settings()
    ports = settings.ports.model_dump()
    assert sorted(ports.values()) == list(range(7500, 7508))
    assert settings.api_port == 7502
    assert settings.db.url.startswith("sqlite:///")


def test_source_priority(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (isolated / "configs").mkdir()
    (isolated / "configs" / "default.yaml").write_text(
        "log_level: ERROR\napi:\n  host: 10.0.0.1\n  rate_limit_per_minute: 5\n"
    )
    (isolated / ".env").write_text("ADBOT_API__HOST=10.0.0.2\nADBOT_LOG_LEVEL=WARNING\n")
    monkeypatch.setenv("ADBOT_LOG_LEVEL", "DEBUG")
    settings = load_settings()
    assert settings.log_level == "DEBUG"  # environment beats .env and yaml
    assert settings.api.host == "10.0.0.2"  # .env beats yaml
    assert settings.api.rate_limit_per_minute == 5  # yaml beats code default
    assert load_settings(log_level="INFO").log_level == "INFO"  # arguments beat all
    origins = settings_origins(settings)
    assert origins["log_level"] == "environment"
    assert origins["api.host"] == ".env"
    assert origins["api.rate_limit_per_minute"] == "configs/default.yaml"
    assert origins["ports.api"] == "default"


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("ADBOT_DB__URL", "not a url", "ADBOT_DB__URL: not a database URL"),
        ("ADBOT_DB__URL", "postgresql+psycopg2://u@h/db", "ADBOT_DB__URL: driver 'psycopg2'"),
        ("ADBOT_DB__URL", "mysql://u@h/db", "ADBOT_DB__URL: unsupported database 'mysql'"),
        ("ADBOT_PORTS__API", "seventy", "ADBOT_PORTS__API:"),
        ("ADBOT_PORTS__API", "70000", "ADBOT_PORTS__API:"),
        ("ADBOT_REDIS__URL", "http://x", "ADBOT_REDIS__URL: not a Redis URL"),
        ("ADBOT_LOG_LEVEL", "LOUD", "ADBOT_LOG_LEVEL:"),
    ],
)
def test_bad_values_name_the_variable(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert message.startswith(expected)
    assert "\n" not in message and "Traceback" not in message


def test_cli_reports_bad_configuration_in_one_line(isolated: Path) -> None:
    env = {"ADBOT_DB__URL": "nope", "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [sys.executable, "-m", "adbot.cli.main", "config", "show"],
        capture_output=True,
        text=True,
        env=env,
        cwd=isolated,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip() == "error: ADBOT_DB__URL: not a database URL"
    assert "Traceback" not in proc.stderr


def test_config_show_masks_secrets(isolated: Path) -> None:
    env = {
        "ADBOT_DB__URL": "postgresql+psycopg://adbot:hunter2@db:5432/adbot",
        "ADBOT_AUTH__SECRET_KEY": "topsecretvalue",
        "PATH": "/usr/bin:/bin",
        "COLUMNS": "200",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "adbot.cli.main", "config", "show", "--json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=isolated,
    )
    assert proc.returncode == 0, proc.stderr
    assert "hunter2" not in proc.stdout and "topsecretvalue" not in proc.stdout
    assert "postgresql+psycopg://adbot:***@db:5432/adbot" in proc.stdout
    assert '"source": "environment"' in proc.stdout


def test_mask_url_hides_only_the_password() -> None:
    assert mask_url("postgresql+psycopg://u:pw@h:1/d") == "postgresql+psycopg://u:***@h:1/d"
    assert mask_url("sqlite:///./data/adbot.db") == "sqlite:///./data/adbot.db"


def test_version_command() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "adbot.cli.main", "--version"], capture_output=True, text=True
    )
    assert proc.returncode == 0
    assert proc.stdout.startswith("adbot ")


def test_settings_are_frozen(isolated: Path) -> None:
    settings = Settings()
    with pytest.raises(Exception, match="frozen"):
        settings.log_level = "DEBUG"  # type: ignore[misc]
