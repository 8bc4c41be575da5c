"""The quickstart report opened in a real browser (Debian's Chromium driven by Playwright):
the page runs without a script error, offline, and draws every chart with one trace per
policy, each policy in the same colour in every chart."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from adbot.market.scenario import BUNDLED_DIR
from adbot.services.quickstart import QuickstartResult, run_quickstart

CHROMIUM = Path(os.environ.get("ADBOT_TEST_CHROMIUM", "/usr/bin/chromium"))
# Chromium as root on a closed network: no sandbox, no GPU, no calls home at start-up.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
POLICIES = ["fixed", "pid", "onlinelp", "oracle"]
ONE_DAY = [BUNDLED_DIR / "tight-budget.yaml", BUNDLED_DIR / "value-only.yaml"]

pytestmark = pytest.mark.xdist_group("browser")


@pytest.fixture(scope="module")
def page() -> Iterator[Any]:
    if not CHROMIUM.exists():
        if os.environ.get("ADBOT_REQUIRE_BROWSER"):
            pytest.fail(f"{CHROMIUM} is missing (apt-get install chromium)")
        pytest.skip(f"{CHROMIUM} is missing (make test installs Debian's chromium as root)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser.new_page()
        finally:
            browser.close()


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> QuickstartResult:
    return run_quickstart(
        out_dir=tmp_path_factory.mktemp("reports"),
        policies=POLICIES,
        scenarios=ONE_DAY,
        episodes=1,
        seed=3,
        trace_scenario=ONE_DAY[0],
        workers=1,
    )


# Each chart's traces as Plotly drew them: name, colour, and the number of points.
CHART_TRACES = """() => Array.from(document.querySelectorAll('div.plotly-graph-div')).map(div => ({
    svg: div.querySelectorAll('svg.main-svg').length,
    traces: (div._fullData || []).map(t => ({
        name: t.name,
        color: t.type === 'bar' ? t.marker.color : t.line.color,
        points: t.y.length,
        drawn: t.visible === true,
    })),
}))"""


def test_the_page_draws_every_chart_offline_without_errors(
    page: Any, report: QuickstartResult
) -> None:
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))

    def console(message: Any) -> None:
        if message.type == "error":
            errors.append(message.text)

    page.on("console", console)
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto(report.report_path.as_uri())
    page.wait_for_load_state("load")
    charts = page.evaluate(CHART_TRACES)
    assert errors == []
    assert all(url.startswith("file://") for url in requests), requests  # plotly.js embedded
    assert len(charts) == 3 and all(chart["svg"] >= 1 for chart in charts)
    ratios, pace, efficiency = charts
    assert [t["name"] for t in ratios["traces"]] == POLICIES
    assert all(t["points"] == len(ONE_DAY) and t["drawn"] for t in ratios["traces"])
    assert [t["name"] for t in pace["traces"]] == ["even pace", *POLICIES]
    assert [t["name"] for t in efficiency["traces"]] == POLICIES
    for chart in (pace, efficiency):
        assert all(t["points"] == 24 and t["drawn"] for t in chart["traces"])


def test_each_policy_has_one_colour_on_the_whole_page(page: Any, report: QuickstartResult) -> None:
    page.goto(report.report_path.as_uri())
    page.wait_for_load_state("load")
    charts = page.evaluate(CHART_TRACES)
    colours = [{t["name"]: t["color"] for t in chart["traces"]} for chart in charts]
    for policy in POLICIES:
        assert colours[0][policy] == colours[1][policy] == colours[2][policy], policy
    assert len({colours[0][policy] for policy in POLICIES}) == len(POLICIES)
