"""The policy-comparison page: score ratios per scenario, spend pace and running CPA or ROAS.

A self-contained HTML file (Plotly's own JavaScript is embedded once, from the Python package,
so the page opens offline).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import plotly.colors
import plotly.graph_objects as go
from jinja2 import Environment, PackageLoader, select_autoescape

from adbot.bidding.runner import EpisodeResult
from adbot.errors import InvalidInput
from adbot.market.profiles import step_weights
from adbot.market.scenario import Scenario

_env = Environment(
    loader=PackageLoader("adbot.services", "templates"),
    autoescape=select_autoescape(["html"]),
)


def policy_colors(policies: list[str]) -> dict[str, str]:
    """One colour per policy, the same in every chart of the page (Plotly's default colours,
    in the order of ``policies``; a chart drawing a reference line first would otherwise shift
    every policy to the next colour)."""
    palette = plotly.colors.qualitative.Plotly
    return {policy: palette[i % len(palette)] for i, policy in enumerate(dict.fromkeys(policies))}


def _ratio_figure(reports: list[dict[str, Any]], colors: dict[str, str]) -> go.Figure:
    figure = go.Figure()
    scenarios = [r["scenario"] for r in reports]
    policies = [row["policy"] for row in reports[0]["results"]]
    for index, policy in enumerate(policies):
        ratios = [r["results"][index]["score_ratio"] for r in reports]
        figure.add_bar(name=policy, x=scenarios, y=ratios, marker_color=colors[policy])
    figure.add_hline(y=1.0, line_dash="dash", annotation_text="hindsight oracle")
    figure.update_layout(
        barmode="group",
        title="Score ratio per scenario (policy score / oracle score, mean over episodes)",
        yaxis_title="score ratio",
        legend_title="policy",
    )
    return figure


def _hours(scenario: Scenario, n_steps: int) -> np.ndarray:
    return np.arange(1, n_steps + 1) * 24.0 / scenario.horizon.steps_per_day


def even_pace(scenario: Scenario, n_steps: int) -> np.ndarray:
    """Cumulative spend after each step of a campaign spending each day's budget in step
    with the day's traffic (the hourly profile): the pace the env's spend features measure
    against, not a straight line, which a retail or b2b day is not."""
    spd = scenario.horizon.steps_per_day
    day_cum = np.cumsum(step_weights(scenario.market.hourly_profile, spd))
    steps = np.arange(n_steps)
    return scenario.campaign.daily_budget * (steps // spd + day_cum[steps % spd])


def _pace_figure(
    traces: list[EpisodeResult], scenario: Scenario, colors: dict[str, str]
) -> go.Figure:
    figure = go.Figure()
    n_steps = len(traces[0].spend)
    hours = _hours(scenario, n_steps)
    figure.add_scatter(
        x=hours,
        y=even_pace(scenario, n_steps),
        name="even pace",
        line={"dash": "dash", "color": "grey"},
    )
    for trace in traces:
        figure.add_scatter(
            x=hours,
            y=np.cumsum(trace.spend),
            name=trace.policy,
            mode="lines",
            line_color=colors[trace.policy],
        )
    figure.update_layout(
        title=f"Spend pace on {scenario.name} (episode seed {traces[0].episode_seed})",
        xaxis_title="hours since start",
        yaxis_title="cumulative spend",
    )
    return figure


def _efficiency_figure(
    traces: list[EpisodeResult], scenario: Scenario, colors: dict[str, str]
) -> go.Figure:
    """Running CPA against the target, or running ROAS when the campaign targets ROAS/value."""
    figure = go.Figure()
    hours = _hours(scenario, len(traces[0].spend))
    target_cpa = scenario.campaign.target_cpa
    for trace in traces:
        cost, conversions = np.cumsum(trace.spend), np.cumsum(trace.conversions)
        value = np.cumsum(trace.value)
        with np.errstate(divide="ignore", invalid="ignore"):
            series = cost / conversions if target_cpa is not None else value / cost
        series = np.where(np.isfinite(series), series, np.nan)
        figure.add_scatter(
            x=hours, y=series, name=trace.policy, mode="lines", line_color=colors[trace.policy]
        )
    if target_cpa is not None:
        figure.add_hline(y=target_cpa, line_dash="dash", annotation_text="target CPA")
        title, axis = "Running CPA", "cost per conversion so far"
    else:
        target = scenario.campaign.target_roas
        if target is not None:
            figure.add_hline(y=target, line_dash="dash", annotation_text="target ROAS")
        title, axis = "Running ROAS", "value / cost so far"
    figure.update_layout(
        title=f"{title} on {scenario.name}", xaxis_title="hours since start", yaxis_title=axis
    )
    return figure


def write_policy_report(
    path: Path,
    *,
    reports: list[dict[str, Any]],
    traces: list[EpisodeResult],
    trace_scenario: Scenario,
    episodes: int,
    seed: int,
) -> Path:
    """Render the page to ``path`` (folders created) and return it."""
    if not reports or not traces:
        raise InvalidInput("a policy report needs at least one evaluation and one trace")
    policies = [row["policy"] for row in reports[0]["results"]]
    colors = policy_colors([*policies, *(trace.policy for trace in traces)])
    figures = [
        _ratio_figure(reports, colors),
        _pace_figure(traces, trace_scenario, colors),
        _efficiency_figure(traces, trace_scenario, colors),
    ]
    charts = [
        fig.to_html(full_html=False, include_plotlyjs=(i == 0), default_width="100%")
        for i, fig in enumerate(figures)
    ]
    html = _env.get_template("policy_report.html").render(
        charts=charts,
        reports=reports,
        policies=policies,
        episodes=episodes,
        seed=seed,
        trace_scenario=trace_scenario.name,
    )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(html, encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(f"cannot write the report to {path}: {exc.strerror or exc}") from None
    return path
