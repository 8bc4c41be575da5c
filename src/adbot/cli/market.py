"""``adbot evaluate`` and ``adbot simulate``: policies in the simulated market (MARKET.md)."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import typer
from rich import box
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from adbot.bidding.evaluate import check_episodes
from adbot.bidding.evaluate import evaluate as evaluate_policies
from adbot.bidding.registry import BUILTIN, load_policy_plugins, make_policy
from adbot.bidding.runner import EpisodeResult, run_episode
from adbot.cli._console import err, out, print_table, progress
from adbot.cli._options import check_range
from adbot.errors import InvalidInput
from adbot.files import write_whole
from adbot.market.episode import universe_for
from adbot.market.scenario import Scenario, load_scenario
from adbot.market.simulator import EPISODE_SEED_MAX

if TYPE_CHECKING:
    import pandas as pd

# Simulated time starts on a Monday (2024-01-01), shifted to the scenario's start weekday.
EPOCH = datetime(2024, 1, 1, tzinfo=UTC)


def _policy_specs(raw: list[str]) -> list[str]:
    """``--policy a --policy b,c`` -> [a, b, c], duplicates dropped, plugins loaded if needed."""
    specs = [part.strip() for item in raw for part in item.split(",") if part.strip()]
    if not specs:
        raise InvalidInput("give at least one --policy")
    if any(spec.partition(":")[0] not in BUILTIN for spec in specs):
        # Agent packages (``ppo:`` and ``prior`` from adbot.rl) register their prefixes through the
        # ``adbot.policies`` entry point, as they do for quickstart and the autopilot.
        load_policy_plugins()
    return list(dict.fromkeys(specs))


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _table(report: dict[str, Any]) -> Table:
    """The results as a table. On a narrow terminal the policy names wrap; the figures keep
    their width (an ellipsis in a number would hide it)."""
    table = Table(
        title=f"{report['scenario']}: {report['episodes']} episodes from seed {report['seed']}",
        box=box.SIMPLE_HEAD,
        padding=(0, 1),
        pad_edge=False,
    )
    rows = [
        (
            _fmt(row["score"], 1),
            _fmt(row["score_std"], 1),
            _fmt(row["score_ratio"], 3),
            _fmt(row["conversions"], 1),
            _fmt(row["cost"], 0),
            _fmt(row["cpa"]),
            _fmt(row["roas"]),
            _fmt(row["budget_utilization"]),
            _fmt(row["wall_seconds"], 1),
        )
        for row in report["results"]
    ]
    table.add_column("policy", overflow="fold")
    headers = ("score", "sd", "ratio", "conv", "cost", "cpa", "roas", "budget", "secs")
    for i, name in enumerate(headers):
        width = max([len(name), *(len(cells[i]) for cells in rows)])
        table.add_column(name, justify="right", no_wrap=True, min_width=width)
    for row, cells in zip(report["results"], rows, strict=True):
        table.add_row(row["policy"], *cells)
    oracle_scores = ", ".join(
        f"{e['seed']}: {e['oracle_score']:,.1f}" for e in report["results"][0]["episodes"]
    )
    table.caption = f"ratio = score / oracle score; oracle score by seed: {oracle_scores}"
    return table


def evaluate(
    scenario: str = typer.Argument(..., help="Scenario YAML file, or a bundled scenario name."),
    policy: list[str] = typer.Option(
        ...,
        "--policy",
        "-p",
        help=(
            "fixed (fixed:A bids multiplier A), pid, onlinelp, oracle, prior, ppo:NAME (a "
            "shipped agent or a run under the data dir), ppo:PATH, or calibrated:POLICY (that "
            "policy bidding per keyword); repeat or a,b,c."
        ),
    ),
    episodes: int = typer.Option(5, "--episodes", "-n", help="Episodes (seeds S, S+1, ...)."),
    seed: int = typer.Option(
        0, "--seed", "-s", help="First episode seed S (S + N - 1 at most 2**63 - 1)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
) -> None:
    """Score policies against the hindsight oracle on a scenario (MARKET.md)."""
    check_episodes(episodes, seed)
    loaded = load_scenario(scenario)
    specs = _policy_specs(policy)
    for spec in specs:
        make_policy(spec)  # an unknown name fails before any episode runs
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with progress(*columns) as bar:
        task = bar.add_task(f"evaluating {loaded.name}", total=episodes * (len(specs) + 1))

        def advance(label: str) -> None:
            bar.update(task, advance=1, description=label)

        report = evaluate_policies(loaded, specs, episodes=episodes, seed=seed, progress=advance)
    if as_json:
        typer.echo(json.dumps(_finite(report), allow_nan=False))
    else:
        print_table(_table(report))


def _finite(data: Any) -> Any:
    """``data`` with every float that is not finite as None (JSON null): strict JSON. Only
    at float limits (a daily budget of 1e-320 spent by one click puts the budget utilisation
    past the largest float)."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {key: _finite(value) for key, value in data.items()}
    if isinstance(data, list):
        return [_finite(value) for value in data]
    return data


def step_times(scenario: Scenario, n_steps: int) -> pd.DatetimeIndex:
    """The simulated UTC start of each step: from ``EPOCH`` moved to the scenario's start
    weekday, a day's share a step (rounded to the microsecond, as ``timedelta`` rounds).

    In microseconds, not pandas' default nanoseconds, which end in the year 2262: a valid
    scenario of 90,000 days ran past it (the longest, 1,000,000 days, ends in the year 4762).
    """
    import pandas as pd

    start = np.datetime64(EPOCH.replace(tzinfo=None), "us")
    start += np.timedelta64(scenario.horizon.start_weekday, "D")
    step_us = round(timedelta(days=1) / timedelta(microseconds=1) / scenario.horizon.steps_per_day)
    offsets = (np.arange(n_steps, dtype=np.int64) * step_us).astype("timedelta64[us]")
    return pd.DatetimeIndex(start + offsets).tz_localize(UTC)


def _trace_frame(result: EpisodeResult, scenario: Scenario) -> pd.DataFrame:
    """One row per step and keyword."""
    import pandas as pd  # only this command needs it; keeps `adbot evaluate` quick to start

    trace = result.keywords
    assert trace is not None
    n_steps, k = trace.bids.shape
    spd = scenario.horizon.steps_per_day
    index = np.repeat(np.arange(n_steps), k)
    timestamps = step_times(scenario, n_steps)[index]
    texts = np.asarray(universe_for(scenario).keyword_texts, dtype=object)
    return pd.DataFrame(
        {
            "scenario": scenario.name,
            "episode_seed": result.episode_seed,
            "policy": result.policy,
            "day": index // spd,
            "step": index % spd,
            "timestamp": timestamps,
            "hour": timestamps.hour,
            "weekday": timestamps.weekday,
            "keyword_id": np.tile(np.arange(k), n_steps),
            "keyword": np.tile(texts, n_steps),
            "alpha": result.alpha[index],
            "bid": trace.bids.ravel(),
            "queries": trace.queries.ravel().astype(np.int64),
            "impressions": trace.impressions.ravel().astype(np.int64),
            "clicks": trace.clicks.ravel().astype(np.int64),
            "cost": trace.cost.ravel(),
            "conversions": trace.conversions.ravel().astype(np.int64),
            "value": trace.value.ravel(),
            "avg_position": trace.avg_position.ravel(),
        }
    )


def simulate(
    scenario: str = typer.Argument(..., help="Scenario YAML file, or a bundled scenario name."),
    policy: str = typer.Option(..., "--policy", "-p", help="The policy that bids."),
    out_file: Path = typer.Option(..., "--out", "-o", help="Trace file: .csv or .parquet."),
    seed: int = typer.Option(0, "--seed", "-s", help="Episode seed (0 to 2**63 - 1)."),
) -> None:
    """Play one episode and write its per-step, per-keyword trace (CSV or Parquet)."""
    suffix = out_file.suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq"):
        raise InvalidInput(f"--out must end in .csv or .parquet, got {out_file.name!r}")
    # The trace's episode_seed column is a 64-bit integer: Parquet refuses a seed of 2**64 or
    # more (a traceback after the episode was played), and from 2**63 it would turn unsigned.
    check_range("--seed", seed, 0, EPISODE_SEED_MAX)
    loaded = load_scenario(scenario)
    specs = _policy_specs([policy])
    if len(specs) != 1:
        raise InvalidInput(f"simulate plays one policy, got {len(specs)}: {', '.join(specs)}")
    (spec,) = specs
    _check_out_folder(out_file)
    with err.status(f"simulating {loaded.name} with {spec}"):
        result = run_episode(loaded, seed, make_policy(spec), keyword_trace=True)
    frame = _trace_frame(result, loaded)

    def write(part: Path) -> None:
        if suffix == ".csv":
            frame.to_csv(part, index=False, date_format="%Y-%m-%dT%H:%M:%SZ")
        else:
            frame.to_parquet(part, index=False)

    try:
        out_file.parent.mkdir(parents=True, exist_ok=True)
        write_whole(out_file, write)  # a full disk leaves the file it would replace as it was
    except OSError as exc:
        raise InvalidInput(f"cannot write {out_file}: {exc.strerror or exc}") from None
    metrics = result.metrics
    out.print(
        f"wrote {len(frame)} rows to {out_file} "
        f"(score {metrics.score:,.1f}, cost {metrics.cost:,.2f}, "
        f"conversions {metrics.conversions:,.0f})",
        highlight=False,
        soft_wrap=True,
    )


def _check_out_folder(out_file: Path) -> None:
    """``InvalidInput`` before the episode is played when ``out_file`` names a folder or
    lies under a file (which ``mkdir`` would report as "File exists")."""
    if out_file.is_dir():
        raise InvalidInput(f"cannot write {out_file}: it is a folder")
    for folder in out_file.parents:
        if folder.exists():
            if not folder.is_dir():
                raise InvalidInput(f"cannot write {out_file}: {folder} is not a folder")
            return


def register(app: typer.Typer) -> None:
    """Add ``evaluate`` and ``simulate`` as top-level commands."""
    app.command("evaluate")(evaluate)
    app.command("simulate")(simulate)
