"""Settings: sources and their order, masking, and readable errors for bad configuration."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from adbot.config import Settings, load_settings, mask_url, settings_origins
from adbot.errors import ConfigError
from cli_helpers import RunCli

AGENT_CONFIG = str(Path(__file__).resolve().parents[1] / "configs" / "agents" / "default.yaml")


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
        # Was the working folder (docker compose's ${X} with X unset gives "").
        ("ADBOT_DATA_DIR", "", "ADBOT_DATA_DIR: is empty: name a folder or leave it unset"),
        ("ADBOT_DATA_DIR", "  ", "ADBOT_DATA_DIR: is empty: name a folder or leave it unset"),
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


def test_a_data_dir_under_the_home_folder_is_expanded(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``~/adbot`` was taken literally: a folder named "~" in the working folder."""
    monkeypatch.setenv("HOME", str(isolated / "home"))
    monkeypatch.setenv("ADBOT_DATA_DIR", "~/adbot")
    assert load_settings().data_dir == isolated / "home" / "adbot"


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


# --- the settings file ----------------------------------------------------------------------


def _settings_file(isolated: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> str:
    (isolated / "cfg.yaml").write_text(text)
    monkeypatch.setenv("ADBOT_CONFIG_FILE", "cfg.yaml")
    return "cfg.yaml"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("db: [\n", "ADBOT_CONFIG_FILE cfg.yaml: not valid YAML (line 2"),
        ("- 1\n", "ADBOT_CONFIG_FILE cfg.yaml: must be a mapping of settings"),
        ("api:\n  port: 1\napi:\n  port: 2\n", "(line 3: duplicate key 'api')"),
        ("db:\n  url: sqlite://\n  url: sqlite://\n", "duplicate key 'url'"),
        ("bogus: 1\n", "cfg.yaml: bogus: not a setting (known: environment, data_dir,"),
        ("api:\n  bogus: 1\n", "cfg.yaml: api.bogus: not a setting (known: host, port,"),
    ],
)
def test_a_settings_file_that_cannot_be_used_is_refused_by_name(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, text: str, expected: str
) -> None:
    """Read as scenario files and training configs are (adbot.yamlfile): a key given twice
    or one that is not a setting is an error, as is a file that is not a mapping."""
    _settings_file(isolated, monkeypatch, text)
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert expected in message
    assert "\n" not in message


def test_an_empty_settings_file_is_the_code_defaults(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _settings_file(isolated, monkeypatch, "# nothing set\n")
    settings = load_settings()
    assert settings.db.url == "sqlite:///./data/adbot.db"
    assert set(settings_origins(settings).values()) == {"default"}


@pytest.mark.parametrize(
    ("argv", "text"),
    [
        (["config", "show"], "db: [\n"),
        (["config", "show"], "- 1\n"),
        (["train", "--config", AGENT_CONFIG], "db: [\n"),
    ],
)
def test_the_cli_reports_a_malformed_settings_file_in_one_line(
    isolated: Path,
    monkeypatch: pytest.MonkeyPatch,
    run_cli: RunCli,
    argv: list[str],
    text: str,
) -> None:
    _settings_file(isolated, monkeypatch, text)
    code, out, err = run_cli(argv)
    assert code == 1 and out == ""
    assert err.startswith("error: ADBOT_CONFIG_FILE cfg.yaml: ")
    assert len(err.splitlines()) == 1


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        ("file", "cfg.yaml: db.url: Input should be a valid string"),
        ("default", "configs/default.yaml: db.url: Input should be a valid string"),
        ("env", "ADBOT_DB__URL: not a database URL"),
        ("dotenv", ".env: ADBOT_DB__URL: not a database URL"),
    ],
)
def test_a_bad_value_is_named_where_it_was_set(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, setup: str, expected: str
) -> None:
    if setup == "default":
        (isolated / "configs").mkdir()
        (isolated / "configs" / "default.yaml").write_text("db:\n  url: 5\n")
    else:
        _settings_file(isolated, monkeypatch, "db:\n  url: 5\n")
    if setup == "env":  # the environment wins over the file, and is what is named
        monkeypatch.setenv("ADBOT_DB__URL", "nope")
    if setup == "dotenv":
        (isolated / ".env").write_text("ADBOT_DB__URL=nope\n")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert str(info.value) == expected


@pytest.mark.parametrize("kind", ["missing", "directory"])
def test_a_settings_file_asked_for_must_exist(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    path = isolated / "nowhere.yaml" if kind == "missing" else isolated
    monkeypatch.setenv("ADBOT_CONFIG_FILE", str(path))
    problem = "does not exist" if kind == "missing" else "is a directory"
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert str(info.value).startswith(f"ADBOT_CONFIG_FILE {path}: {problem}")


def test_config_show_names_the_settings_file_only_if_it_was_read(
    isolated: Path, run_cli: RunCli
) -> None:
    code, out, err = run_cli(["config", "show"])
    assert code == 0, err
    assert "(config file: none (configs/default.yaml not found))" in out
    (isolated / "configs").mkdir()
    (isolated / "configs" / "default.yaml").write_text("log_level: ERROR\n")
    code, out, err = run_cli(["config", "show"])
    assert code == 0, err
    assert "(config file: configs/default.yaml)" in out


# --- a SQLite database the settings name that does not exist -----------------------------


@pytest.mark.parametrize("argv", [["current"], ["check"], ["downgrade", "-1", "--yes"]])
def test_db_commands_do_not_create_a_missing_sqlite_database(
    isolated: Path,
    monkeypatch: pytest.MonkeyPatch,
    run_cli: RunCli,
    argv: list[str],
) -> None:
    database = isolated / "missing" / "adbot.db"
    monkeypatch.setenv("ADBOT_DB__URL", f"sqlite:///{database}")
    code, out, err = run_cli(["db", *argv])
    assert code == 1 and out == ""
    assert err == f"error: no database at {database}: `adbot db upgrade` creates it " + (
        "(or set ADBOT_DB__URL to another database)\n"
    )
    assert not database.parent.exists()


def test_train_refusing_a_missing_sqlite_database_leaves_no_file(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, run_cli: RunCli
) -> None:
    database = isolated / "missing" / "adbot.db"
    monkeypatch.setenv("ADBOT_DB__URL", f"sqlite:///{database}")
    code, _, err = run_cli(["train", "--config", AGENT_CONFIG, "--output", "run"])
    assert code == 1
    assert err == "error: the database schema is not up to date: run `adbot db upgrade`\n"
    assert not database.parent.exists() and not (isolated / "run").exists()


def test_db_upgrade_creates_the_missing_sqlite_database(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, run_cli: RunCli
) -> None:
    database = isolated / "missing" / "adbot.db"
    monkeypatch.setenv("ADBOT_DB__URL", f"sqlite:///{database}")
    code, _, err = run_cli(["db", "upgrade"])
    assert code == 0, err
    assert database.is_file()
    code, out, err = run_cli(["db", "current"])
    assert code == 0, err
    assert out.endswith("(up to date)\n")
