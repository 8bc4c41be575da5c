"""quickstart: the same figures as ``evaluate``, a report page with the charts, clear errors."""

from __future__ import annotations

import os
import signal
import stat
from datetime import UTC, datetime, tzinfo
from pathlib import Path

import numpy as np
import pytest

from adbot.bidding.evaluate import evaluate
from adbot.cli.main import main
from adbot.errors import InvalidInput, ScenarioError
from adbot.market.scenario import BUNDLED_DIR, load_scenario
from adbot.services.policy_report import even_pace
from adbot.services.quickstart import run_quickstart

ONE_DAY = [BUNDLED_DIR / "tight-budget.yaml", BUNDLED_DIR / "value-only.yaml"]


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    return run_quickstart(
        out_dir=tmp_path_factory.mktemp("reports"),
        policies=["fixed", "pid", "oracle"],
        scenarios=ONE_DAY,
        episodes=1,
        seed=7,
        trace_scenario=ONE_DAY[0],
        workers=1,
    )


def test_figures_match_evaluate(result) -> None:  # type: ignore[no-untyped-def]
    direct = evaluate(load_scenario(ONE_DAY[0]), ["fixed", "pid", "oracle"], episodes=1, seed=7)
    assert result.reports[0]["scenario"] == "tight-budget"
    for mine, theirs in zip(result.reports[0]["results"], direct["results"], strict=True):
        assert mine["policy"] == theirs["policy"]
        assert mine["score"] == pytest.approx(theirs["score"])
        assert mine["score_ratio"] == pytest.approx(theirs["score_ratio"])
    table = result.ratio_table()
    assert set(table) == {"tight-budget", "value-only"}
    assert table["tight-budget"]["oracle"] == pytest.approx(1.0)


def test_report_page_has_table_and_charts(result) -> None:  # type: ignore[no-untyped-def]
    html = result.report_path.read_text()
    assert result.report_path.suffix == ".html"
    assert html.count('class="plotly-graph-div"') == 3
    assert "Spend pace on tight-budget" in html and "Score ratio per scenario" in html
    assert "value-only" in html and "<th>pid</th>" in html
    # plotly.js is embedded once, so the page opens offline
    assert html.count("plotly.js v") == 1 and "<script src=" not in html
    assert len(result.traces) == 3 and all(len(t.spend) == 24 for t in result.traces)
    # Readable as any new file of this process is (mkstemp alone made it 0600).
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE(result.report_path.stat().st_mode) == 0o666 & ~umask


def test_unknown_policy_fails_before_any_work(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="unknown policy 'nope'"):
        run_quickstart(out_dir=tmp_path, policies=["fixed", "nope"], scenarios=ONE_DAY)
    assert not list(tmp_path.iterdir())


def test_bad_scenario_fails_before_any_work(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: Bad Name\n")
    with pytest.raises(ScenarioError, match=r"^name: string should match pattern"):
        run_quickstart(out_dir=tmp_path / "out", policies=["fixed"], scenarios=[bad])
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"workers": 0}, "workers must be >= 1, got 0"),
        ({"workers": -3}, "workers must be >= 1, got -3"),
        ({"episodes": 0}, "episodes must be >= 1, got 0"),
        ({"seed": -1}, "seed must be >= 0, got -1"),
    ],
)
def test_out_of_range_numbers_are_refused_by_name_before_any_work(
    arguments: dict[str, int], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The service's rule, so every caller gets it, not only the CLI: ``workers=0`` used
    to mean all cores and ``-3`` one process, without a word. Refused before an agent is
    loaded, a scenario read or the report folder made."""

    def no_work(*args: object, **kwargs: object) -> None:
        raise AssertionError("work started before the arguments were checked")

    monkeypatch.setattr("adbot.services.quickstart._check_policies", no_work)
    monkeypatch.setattr("adbot.services.quickstart._evaluate_all", no_work)
    out_dir = tmp_path / "reports"
    with pytest.raises(InvalidInput, match=f"^{message}$"):
        run_quickstart(out_dir=out_dir, policies=["fixed"], scenarios=ONE_DAY, **arguments)
    assert not out_dir.exists()


@pytest.mark.parametrize("workers", ["0", "-3"])
def test_cli_refuses_fewer_than_one_worker(
    workers: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--workers 0`` is bad input like any other: one line (the service's), exit code 1."""
    with pytest.raises(SystemExit) as info:
        main(["quickstart", "--workers", workers])
    assert info.value.code == 1
    assert capsys.readouterr().err == f"error: workers must be >= 1, got {workers}\n"


def test_an_unwritable_folder_fails_before_any_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_work(*args: object, **kwargs: object) -> None:
        raise AssertionError("evaluated before the folder was checked")

    monkeypatch.setattr("adbot.services.quickstart._evaluate_all", no_work)
    afile = tmp_path / "afile"
    afile.write_text("")
    with pytest.raises(InvalidInput, match=r"cannot write the report in .*afile/reports"):
        run_quickstart(out_dir=afile / "reports", policies=["fixed"], scenarios=ONE_DAY)
    with pytest.raises(InvalidInput, match=r"cannot write the report in .*afile: not a directory"):
        run_quickstart(out_dir=afile, policies=["fixed"], scenarios=ONE_DAY)


def test_runs_in_the_same_second_keep_both_reports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The report is named by the second; a second run then gets ``-2``, not the same file."""
    first = run_quickstart(
        out_dir=tmp_path, policies=["fixed"], scenarios=ONE_DAY[:1], episodes=1, workers=1
    )
    stamped = first.report_path.stem.removeprefix("quickstart-")
    frozen = datetime.strptime(stamped, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)

    class SameSecond(datetime):
        @classmethod
        def now(cls, tz: tzinfo | None = None) -> SameSecond:
            return cls.fromtimestamp(frozen.timestamp(), tz)

    monkeypatch.setattr("adbot.services.quickstart.datetime", SameSecond)
    second = run_quickstart(
        out_dir=tmp_path, policies=["pid"], scenarios=ONE_DAY[:1], episodes=1, workers=1
    )
    assert second.report_path == first.report_path.with_name(f"{first.report_path.stem}-2.html")
    assert "<th>fixed</th>" in first.report_path.read_text()
    assert "<th>pid</th>" in second.report_path.read_text()


def test_a_failed_run_leaves_no_empty_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("adbot.services.quickstart._evaluate_all", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_quickstart(out_dir=tmp_path, policies=["fixed"], scenarios=ONE_DAY)
    assert not list(tmp_path.iterdir())


def test_the_page_takes_its_name_only_when_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Was written into the reserved name: a ``kill -9`` or a full disk mid-write left an
    empty or half page under the name a user opens. Now a ``.part`` beside, moved whole."""
    import adbot.services.quickstart as quickstart

    seen: list[list[str]] = []
    write = quickstart.write_policy_report

    def watched(path: Path, **kwargs: object) -> Path:
        seen.append(sorted(p.name for p in tmp_path.iterdir()))
        return write(path, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(quickstart, "write_policy_report", watched)
    result = run_quickstart(
        out_dir=tmp_path, policies=["fixed"], scenarios=ONE_DAY[:1], episodes=1, workers=1
    )
    [[part]] = seen
    assert part.startswith(result.report_path.stem) and part.endswith(".html.part")
    assert [p.name for p in tmp_path.iterdir()] == [result.report_path.name]
    assert result.report_path.read_text().rstrip().endswith("</html>")
    # the workers started with SIGINT blocked; this process has it back
    assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, set())


def test_the_even_pace_follows_each_days_traffic() -> None:
    """The pace chart's reference spends each day's budget in step with the hourly profile:
    a retail day's night is slow, each day ends at a whole budget."""
    scenario = load_scenario(BUNDLED_DIR / "retail-tight-budget.yaml")
    spd, budget = scenario.horizon.steps_per_day, scenario.campaign.daily_budget
    pace = even_pace(scenario, scenario.n_steps)
    assert pace.shape == (scenario.n_steps,)
    ends = pace[spd - 1 :: spd]
    assert ends == pytest.approx(budget * np.arange(1, scenario.horizon.days + 1))
    spent = np.diff(np.concatenate(([0.0], pace)))
    assert spent.sum() == pytest.approx(budget * scenario.horizon.days)
    assert spent[3] < spent[19] / 10  # 03:00 against the evening peak
    assert spent[:spd] == pytest.approx(spent[spd : 2 * spd])
