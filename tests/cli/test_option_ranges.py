"""Numeric options out of range: one line on stderr naming the option, exit code 1.

The convention of every command (``adbot train --timesteps 0``, ``adbot evaluate
--episodes 0``), not Typer's ``min=``/``max=`` usage box and exit code 2; the range is in
each option's help instead.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from adbot.bidding.evaluate import EPISODE_SEED_MAX
from adbot.cli._options import check_range
from adbot.errors import InvalidInput
from cli_helpers import DEFAULT_CONFIG, RunCli

SIMULATE = ["simulate", "tight-budget", "--policy", "fixed", "--out", "trace.parquet"]
TRACE_SEEDS = f"between 0 and {2**63 - 1}"
TIMESTEPS = f"between 1 and {2**53}"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["serve", "--port", "0"], "--port must be between 1 and 65535, got 0"),
        (["serve", "--port", "65536"], "--port must be between 1 and 65535, got 65536"),
        (["serve", "--workers", "0"], "--workers must be between 1 and 64, got 0"),
        (["serve", "--workers", "65"], "--workers must be between 1 and 64, got 65"),
        (["ingest", "rows.csv", "-a", "acme", "--show", "-1"], "--show must be >= 0, got -1"),
        # run_quickstart's own check, first thing (so its wording, as for --episodes).
        (["quickstart", "--workers", "0"], "workers must be >= 1, got 0"),
        # Played the episode, then failed in Parquet's writer with a traceback.
        ([*SIMULATE, "--seed", str(2**64)], f"--seed must be {TRACE_SEEDS}, got {2**64}"),
        ([*SIMULATE, "--seed", "-1"], f"--seed must be {TRACE_SEEDS}, got -1"),
        (["tune", "--trials", "0"], "--trials must be >= 1, got 0"),
        (["tune", "--trials", "-3"], "--trials must be >= 1, got -3"),
        (["tune", "--timesteps", "0"], f"--timesteps must be {TIMESTEPS}, got 0"),
        (["train", "--timesteps", "-5"], f"--timesteps must be {TIMESTEPS}, got -5"),
        # Recorded the run and its config, then failed in SQLite's OverflowError.
        (["train", "--timesteps", str(10**23)], f"--timesteps must be {TIMESTEPS}, got {10**23}"),
        (["tune", "--timesteps", str(10**23)], f"--timesteps must be {TIMESTEPS}, got {10**23}"),
        (["train", "--seed", "-1"], "--seed must be between 0 and 4294967295, got -1"),
        (
            ["train", "--seed", "4294967296"],
            "--seed must be between 0 and 4294967295, got 4294967296",
        ),
    ],
)
def test_an_out_of_range_option_is_one_line_naming_it(
    argv: list[str], message: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, run_cli: RunCli
) -> None:
    """Refused before the database, the config, the file, a study or a report folder is
    touched (``train``'s seed: NumPy's seeding refused it after the run was recorded)."""
    monkeypatch.setenv("ADBOT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("ADBOT_DB__URL", f"sqlite:///{tmp_path / 'never-migrated.db'}")
    monkeypatch.chdir(tmp_path)
    if argv[0] in ("train", "tune"):
        argv = [*argv, "--config", str(DEFAULT_CONFIG)]
    result = run_cli(argv)
    assert result.code == 1
    assert result.err == f"error: {message}\n" and result.out == ""
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("command", "option", "shown"),
    [
        ("serve", "--port", "1 to 65535"),
        ("serve", "--workers", "1 to 64"),
        ("ingest", "--show", ">= 0"),
        ("quickstart", "--workers", ">= 1"),
        ("simulate", "--seed", "0 to 2**63 - 1"),
    ],
)
def test_the_help_states_each_range(
    command: str, option: str, shown: str, monkeypatch: pytest.MonkeyPatch, run_cli: RunCli
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # one line per option
    result = run_cli([command, "--help"])
    assert result.code == 0
    (line,) = [line for line in result.out.splitlines() if f" {option} " in line]
    assert f"({shown}" in line, line


def test_the_ends_of_a_range_and_an_option_not_given_pass() -> None:
    for value in (None, 1, 64):
        check_range("--workers", value, 1, 64)
    check_range("--show", 10**9, 0)
    with pytest.raises(InvalidInput, match=r"^--show must be >= 0, got -1$"):
        check_range("--show", -1, 0)


def test_the_largest_trace_seed_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_cli: RunCli
) -> None:
    """The trace's ``episode_seed`` column stays a signed 64-bit integer up to the bound."""
    monkeypatch.setenv("ADBOT_DATA_DIR", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    result = run_cli([*SIMULATE, "--seed", str(EPISODE_SEED_MAX)])
    assert not result.code, result.err
    seeds = pd.read_parquet(tmp_path / "trace.parquet")["episode_seed"]
    assert seeds.dtype == np.int64 and (seeds == EPISODE_SEED_MAX).all()
