"""``adbot evaluate`` and ``adbot simulate``: MARKET.md's output, one-line errors."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from bidding_helpers import quick
from rich.console import Console

from adbot.bidding import hindsight_oracle, make_policy, run_episode
from adbot.bidding.evaluate import evaluate
from adbot.cli.main import main
from adbot.cli.market import _table, step_times
from adbot.market.scenario import bundled_scenarios, load_scenario

ADBOT = str(Path(sys.executable).with_name("adbot"))
RESULT_KEYS = {
    "policy", "score", "score_std", "score_ratio", "conversions", "value", "cost", "cpa",
    "roas", "budget_utilization", "oracle_score", "oracle_alpha", "wall_seconds", "episodes",
}  # fmt: skip


def cli(argv: list[str]) -> None:
    """Run ``adbot`` in-process; Typer ends a successful command with SystemExit(0)."""
    try:
        main(argv)
    except SystemExit as exc:
        assert exc.code in (0, None)


@pytest.fixture(scope="module")
def quick_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("scenarios") / "quick.yaml"
    path.write_text(yaml.safe_dump(quick().model_dump(mode="json")))
    return path


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs Linux's /dev/full")
@pytest.mark.parametrize("as_json", [True, False])
def test_evaluate_to_a_full_disk_is_one_line(quick_file: Path, as_json: bool) -> None:
    """Standard output that cannot be written (a full disk; /dev/full) ends in one line
    and exit code 1, as JSON and as a table; it was an OSError's traceback."""
    command = [ADBOT, "evaluate", str(quick_file), "--policy", "fixed", "-n", "1", "-s", "0"]
    with open("/dev/full", "w") as full:
        run = subprocess.run(
            command + ["--json"] * as_json, stdout=full, stderr=subprocess.PIPE, text=True
        )
    assert run.returncode == 1
    assert run.stderr == "error: cannot write the output: No space left on device\n"


def test_evaluate_json_is_one_object_per_market_md(quick_file: Path) -> None:
    command = [ADBOT, "evaluate", str(quick_file), "--policy", "fixed", "--policy", "pid,oracle"]
    run = subprocess.run([*command, "--episodes", "3", "--seed", "4", "--json"],
                         capture_output=True, text=True, check=True)  # fmt: skip
    report = json.loads(run.stdout)
    assert run.stdout.count("\n") == 1
    assert set(report) == {"scenario", "episodes", "seed", "results"}
    assert (report["scenario"], report["episodes"], report["seed"]) == ("quick-test", 3, 4)
    assert [r["policy"] for r in report["results"]] == ["fixed", "pid", "oracle"]
    scenario = quick()
    for row in report["results"]:
        assert set(row) == RESULT_KEYS
        assert [e["seed"] for e in row["episodes"]] == [4, 5, 6]
        ratios = [e["score_ratio"] for e in row["episodes"]]
        assert row["score_ratio"] == pytest.approx(sum(ratios) / 3)
        assert row["score"] == pytest.approx(sum(e["score"] for e in row["episodes"]) / 3)
        for episode in row["episodes"]:
            oracle = hindsight_oracle(scenario, episode["seed"])
            assert episode["oracle_score"] == pytest.approx(oracle.score)
            assert episode["score_ratio"] == pytest.approx(episode["score"] / oracle.score)
    fixed, _, oracle_row = report["results"]
    assert oracle_row["score_ratio"] == pytest.approx(1.0)
    assert fixed["episodes"][0]["score"] == pytest.approx(
        run_episode(scenario, 4, make_policy("fixed")).metrics.score
    )


def test_evaluate_table_without_json(quick_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cli(["evaluate", str(quick_file), "-p", "fixed", "-p", "onlinelp", "-n", "1"])
    shown = capsys.readouterr().out
    assert "quick-test" in shown and "onlinelp" in shown and "ratio" in shown
    with pytest.raises(json.JSONDecodeError):
        json.loads(shown)


def test_evaluate_table_keeps_every_figure_on_an_80_column_terminal(quick_file: Path) -> None:
    """The figures never get an ellipsis: the policy names wrap instead."""
    report = evaluate(quick(), ["fixed", "onlinelp", "fixed:1.2345678"], episodes=1, seed=0)
    console = Console(width=80, record=True)
    console.print(_table(report))
    shown = console.export_text()
    assert "…" not in shown
    for row in report["results"]:
        assert f"{row['score_ratio']:,.3f}" in shown and f"{row['cost']:,.0f}" in shown
    assert max(len(line) for line in shown.splitlines()) <= 80


def test_evaluate_table_in_a_pipe_keeps_each_policy_on_its_row(quick_file: Path) -> None:
    """Away from a terminal (a pipe, a log file) Rich would fit the table into 80 columns and
    fold long policy names a few letters a line; there each row stays one line."""
    policies = ["fixed:1.2345678", "calibrated:onlinelp", "pid"]
    environ = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    run = subprocess.run([ADBOT, "evaluate", str(quick_file), "-p", ",".join(policies), "-n", "1"],
                         capture_output=True, text=True, check=True, env=environ)  # fmt: skip
    rows = {line.split()[0]: line.split() for line in run.stdout.splitlines() if line.strip()}
    for policy in policies:
        assert len(rows[policy]) == 10, run.stdout  # the name and its nine figures
    assert any(len(line) > 80 for line in run.stdout.splitlines())


def failing(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run ``adbot`` in-process expecting exit code 1; return its stderr."""
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1, captured.err
    return captured.err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--policy", "nope"], "unknown policy 'nope'"),
        (["--policy", "fixed,ppo:missing-agent"], "missing-agent"),
        (["--policy", "fixed", "--episodes", "0"], "episodes must be >= 1, got 0"),
        (["--policy", "fixed", "--seed", "-2"], "seed must be >= 0, got -2"),
        # Seeds past 2**63 - 1 ran, as episodes `adbot simulate` cannot replay.
        (
            ["--policy", "fixed", "-n", "1", "--seed", str(2**63)],
            f"seed must be at most {2**63 - 1} for 1 episode (the last episode seed is at "
            f"most 2**63 - 1), got {2**63}",
        ),
        (
            ["--policy", "fixed", "-n", "5", "-s", str(2**63 - 1)],
            f"at most {2**63 - 5} for 5 episodes",
        ),
        # More episodes than seeds: it blamed the seed with a negative bound.
        (
            ["--policy", "fixed", "-n", str(2**63 + 2), "-s", "0"],
            f"episodes must be at most 2**63, got {2**63 + 2}",
        ),
    ],
)
def test_evaluate_refuses_bad_arguments_in_one_line(
    quick_file: Path, args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert message in failing(["evaluate", str(quick_file), *args], capsys)


def test_evaluate_refuses_a_malformed_scenario(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = quick().model_dump(mode="json")
    data["market"]["position_ctr"] = [0.01, 0.05, 0.03, 0.02]
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(data))
    run = subprocess.run([ADBOT, "evaluate", str(bad), "--policy", "fixed"], capture_output=True,
                         text=True)  # fmt: skip
    assert run.returncode == 1 and run.stdout == ""
    assert run.stderr == "error: market.position_ctr: must be non-increasing\n"
    missing = failing(["evaluate", str(tmp_path / "none.yaml"), "-p", "fixed"], capsys)
    assert "scenario file not found" in missing
    # Brackets in a message are text, not Rich markup (the pattern used to print as '^+$').
    data = quick().model_dump(mode="json")
    data["name"] = "Bad Name"
    named = tmp_path / "[odd] name.yaml"
    named.write_text(yaml.safe_dump(data))
    message = failing(["evaluate", str(named), "-p", "fixed"], capsys)
    assert message == "error: name: string should match pattern '^[a-z0-9-]+$'\n"
    gone = failing(["evaluate", str(tmp_path / "[odd] none.yaml"), "-p", "fixed"], capsys)
    assert "[odd] none.yaml" in gone


QUICK_YAML = yaml.safe_dump(quick().model_dump(mode="json"))
MALFORMED_FILES = {
    "empty": (b"", "scenario: must be a mapping of fields"),
    "binary": (bytes(range(256)) * 4, "cannot be read (UnicodeDecodeError)"),
    "list": (b"- name: a\n- seed: 1\n", "scenario: must be a mapping of fields"),
    "yaml-syntax": (
        QUICK_YAML.replace("slots: 4", "slots: [4").encode(),
        "not valid YAML (line",
    ),
    "negative-days": (
        QUICK_YAML.replace("days: 1", "days: -3").encode(),
        "horizon.days: input should be greater than or equal to 1",
    ),
    "text-for-number": (
        QUICK_YAML.replace("daily_budget: 60.0", "daily_budget: sixty").encode(),
        "campaign.daily_budget: input should be a valid number",
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED_FILES))
def test_evaluate_refuses_a_malformed_file_in_one_line(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Whatever the file holds, ``adbot evaluate`` exits 1 with one line naming the field or
    the problem, never a traceback."""
    content, message = MALFORMED_FILES[case]
    path = tmp_path / f"{case}.yaml"
    path.write_bytes(content)
    assert message in failing(["evaluate", str(path), "-p", "fixed,prior"], capsys)


@pytest.mark.parametrize("path", bundled_scenarios(), ids=lambda p: p.stem)
def test_every_bundled_scenario_evaluates(path: Path) -> None:
    from adbot.market.scenario import load_scenario

    report = evaluate(load_scenario(path), ["fixed", "oracle"], episodes=1, seed=0)
    fixed, oracle = report["results"]
    assert oracle["score"] > 0
    assert oracle["score_ratio"] == pytest.approx(1.0)
    assert 0 <= fixed["score_ratio"] <= 1.0 + 1e-9  # a constant multiplier never beats the oracle


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_simulate_writes_the_hourly_keyword_trace(quick_file: Path, tmp_path: Path,
                                                  suffix: str) -> None:  # fmt: skip
    out = tmp_path / f"trace{suffix}"
    cli(["simulate", str(quick_file), "--policy", "pid", "--out", str(out), "--seed", "2"])
    frame = pd.read_csv(out) if suffix == ".csv" else pd.read_parquet(out)
    scenario = quick()
    assert len(frame) == scenario.n_steps * scenario.campaign.keywords
    for column in ("day", "step", "timestamp", "hour", "keyword_id", "keyword", "bid",
                   "impressions", "clicks", "cost", "conversions", "value"):  # fmt: skip
        assert column in frame.columns
    result = run_episode(scenario, 2, make_policy("pid"))
    assert frame["cost"].sum() == pytest.approx(result.metrics.cost)
    assert frame["conversions"].sum() == result.metrics.conversions
    assert frame["keyword"].nunique() == scenario.campaign.keywords
    assert frame.groupby("keyword_id")["keyword"].nunique().max() == 1
    hours = pd.to_datetime(frame["timestamp"]).dt.hour
    assert (hours == frame["hour"]).all()
    assert sorted(frame["hour"].unique()) == list(range(0, 24, 2))  # 12 steps a day


def test_simulate_refuses_unknown_formats(
    quick_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["simulate", str(quick_file), "--policy", "pid", "--out", str(tmp_path / "t.xlsx")]
    assert ".csv or .parquet" in failing(argv, capsys)
    argv = ["simulate", str(quick_file), "--policy", "nope", "--out", str(tmp_path / "t.csv")]
    assert "unknown policy 'nope'" in failing(argv, capsys)


def test_simulate_plays_one_policy(
    quick_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "t.csv"
    argv = ["simulate", str(quick_file), "--policy", "fixed,pid", "--out", str(out)]
    assert "simulate plays one policy, got 2: fixed, pid" in failing(argv, capsys)
    assert not out.exists()


def test_simulate_names_an_out_file_under_a_file_before_playing(
    quick_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "t.csv").write_text("kept\n")
    out = tmp_path / "t.csv" / "x.csv"
    message = failing(["simulate", str(quick_file), "-p", "pid", "--out", str(out)], capsys)
    assert message.strip() == f"error: cannot write {out}: {tmp_path / 't.csv'} is not a folder"
    (tmp_path / "dir.csv").mkdir()
    argv = ["simulate", str(quick_file), "-p", "pid", "-o", str(tmp_path / "dir.csv")]
    message = failing(argv, capsys)
    assert message.strip().endswith("dir.csv: it is a folder")


def test_a_full_disk_leaves_the_trace_it_would_replace_as_it_was(
    quick_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    out = tmp_path / "trace.csv"
    out.write_text("the trace of yesterday\n")
    to_csv = pd.DataFrame.to_csv

    def half_then_full(self: pd.DataFrame, path: Any, *args: Any, **kwargs: Any) -> None:
        to_csv(self.iloc[: len(self) // 2], path, *args, **kwargs)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_csv", half_then_full)
    message = failing(["simulate", str(quick_file), "-p", "pid", "--out", str(out)], capsys)
    assert message.strip() == f"error: cannot write {out}: No space left on device"
    assert out.read_text() == "the trace of yesterday\n"
    assert [path.name for path in tmp_path.iterdir()] == ["trace.csv"]


def test_step_times_run_past_the_year_2262() -> None:
    """pandas' nanosecond timestamps end in 2262: a valid scenario of 90,000 one-step days
    ended in ``OutOfBoundsDatetime`` after its episode was played."""
    data = quick().model_dump(mode="json")
    data["horizon"].update(days=100_000, steps_per_day=1, start_weekday=2)
    data["market"].update(hourly_profile="flat", daily_queries=10.0, shocks=[])
    scenario = load_scenario(data)
    times = step_times(scenario, scenario.n_steps)
    assert times[0].isoformat() == "2024-01-03T00:00:00+00:00"  # a Wednesday, as asked
    assert times[-1] - times[0] == timedelta(days=99_999)
    assert times[-1].year == 2297 and (times.weekday[:7] == [2, 3, 4, 5, 6, 0, 1]).all()
    data["horizon"].update(days=2, steps_per_day=7, start_weekday=4)
    odd = load_scenario(data)
    expected = [datetime(2024, 1, 5, tzinfo=UTC) + i * (timedelta(days=1) / 7) for i in range(8)]
    assert list(step_times(odd, 8).to_pydatetime()) == expected


def test_evaluate_reads_yaml_1_2_numbers_and_refuses_what_cannot_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = yaml.safe_dump(quick().model_dump(mode="json"))
    assert "daily_queries: 6000.0\n" in text
    written = tmp_path / "sci.yaml"
    written.write_text(text.replace("daily_queries: 6000.0\n", "daily_queries: 6e3\n"))
    cli(["evaluate", str(written), "-p", "fixed", "-n", "1", "--json"])
    assert json.loads(capsys.readouterr().out)["scenario"] == "quick-test"
    # 1e300 queries used to end in numpy's 'lam value too large' traceback.
    written.write_text(text.replace("daily_queries: 6000.0\n", "daily_queries: 1e300\n"))
    message = failing(["evaluate", str(written), "-p", "fixed", "-n", "1", "--json"], capsys)
    assert message.startswith("error: market.daily_queries: the busiest day would expect")
    written.write_text(text + "seed: 3\n")
    message = failing(["evaluate", str(written), "-p", "fixed"], capsys)
    assert message.endswith(f"line {text.count(chr(10)) + 1}: duplicate key 'seed')\n")


def test_running_out_of_memory_is_one_line(
    quick_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def exhausted(*args: object, **kwargs: object) -> None:
        raise MemoryError

    monkeypatch.setattr("adbot.cli.market.evaluate_policies", exhausted)
    message = failing(["evaluate", str(quick_file), "-p", "fixed"], capsys)
    assert message.startswith("error: out of memory: ")


def test_evaluate_json_stays_strict_at_the_float_limits(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A daily budget of 5e-324 (valid: MARKET.md takes any positive budget) spent by one
    click puts the budget utilisation past the largest float: reported as null, not as
    ``Infinity``, which is not JSON."""
    data = quick().model_dump(mode="json")
    data["campaign"]["daily_budget"] = 5e-324
    path = tmp_path / "smallest-budget.yaml"
    path.write_text(yaml.safe_dump(data))
    cli(["evaluate", str(path), "--policy", "fixed", "--episodes", "1", "--json"])
    text = capsys.readouterr().out
    report = json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in --json"))
    (row,) = report["results"]
    assert row["budget_utilization"] is None and row["cost"] > 0


def test_evaluate_frees_each_episode_once_every_policy_played_it() -> None:
    """The market cache kept the last 4 episodes' draws (about 80 bytes a query: 4 GB for 5
    episodes of 400,000 queries a day over 28 days); evaluate drops each episode's once the
    oracle and every policy have played it. The figures are those of a cached market."""
    from adbot.market import episode as episode_module
    from adbot.market.episode import scenario_key

    scenario = quick()
    report = evaluate(scenario, ["fixed", "pid"], episodes=3, seed=7)
    key = scenario_key(scenario)
    assert not {(key, 7), (key, 8), (key, 9)} & set(episode_module._CACHE)
    again = [run_episode(scenario, s, make_policy("pid")).metrics.score for s in (7, 8, 9)]
    assert [e["score"] for e in report["results"][1]["episodes"]] == again
