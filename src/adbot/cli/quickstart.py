"""``adbot quickstart``: AdBot's main job on the embedded defaults."""

from __future__ import annotations

from pathlib import Path

import typer
from rich import box
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from adbot.cli._console import err, out, print_table, progress
from adbot.cli._signals import interrupt_on_sigterm
from adbot.config import ENV_PREFIX, get_settings
from adbot.errors import InvalidInput
from adbot.market.scenario import bundled_scenarios
from adbot.services.quickstart import (
    DEFAULT_POLICIES,
    DEFAULT_TRACE_SCENARIO,
    QuickstartResult,
    ReportNotWritten,
    run_quickstart,
)

CANCELLED = "quickstart cancelled; no report was written"


def _table(result: QuickstartResult) -> Table:
    table = Table(
        title="score ratio against the hindsight oracle (mean over episodes)",
        box=box.SIMPLE_HEAD,
    )
    table.add_column("scenario")
    for policy in result.policies:
        table.add_column(policy, justify="right")
    for scenario, ratios in result.ratio_table().items():
        known = [r for p, r in ratios.items() if p != "oracle" and r is not None]
        best = max(known) if known else None
        cells = []
        for policy in result.policies:
            ratio = ratios.get(policy)
            text = "-" if ratio is None else f"{ratio:.3f}"
            best_here = ratio == best and policy != "oracle"
            cells.append(Text(text, style="bold green") if best_here else Text(text))
        table.add_row(scenario, *cells)
    return table


def quickstart(
    policy: list[str] = typer.Option(
        list(DEFAULT_POLICIES), "--policy", "-p", help="Policies to compare (repeat)."
    ),
    episodes: int = typer.Option(2, "--episodes", "-n", help="Episodes per scenario."),
    seed: int = typer.Option(
        1000, "--seed", "-s", help="First episode seed S (S + N - 1 at most 2**63 - 1)."
    ),
    trace_scenario: str = typer.Option(
        DEFAULT_TRACE_SCENARIO, "--trace-scenario", help="Scenario of the pace and CPA charts."
    ),
    out_folder: str | None = typer.Option(
        None, "--out", help="Report folder (default: DATA_DIR/reports)."
    ),
    workers: int | None = typer.Option(None, "--workers", help="Processes (>= 1; default: cores)."),
) -> None:
    """Evaluate the shipped agent and the baselines on the bundled scenarios; write a report."""
    # Taken as text: as a Path, "" was "." and the report went into the working folder.
    if out_folder is not None and not out_folder.strip():
        raise InvalidInput("--out is empty: name a folder for the report, or leave it out")
    out_dir = None if out_folder is None else Path(out_folder).expanduser()
    target = out_dir or get_settings().data_dir / "reports"
    # Where the report goes is the user's to change: say how, as the settings' errors do.
    where = "--out" if out_dir else f"--out or {ENV_PREFIX}DATA_DIR"
    total = len(bundled_scenarios()) + 1
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    try:
        interrupt_on_sigterm()  # a `kill` or `timeout` ends it as a Ctrl-C does
        with progress(*columns) as bar:
            task = bar.add_task("evaluating scenarios", total=total)
            result = run_quickstart(
                out_dir=target,
                policies=policy,
                episodes=episodes,
                seed=seed,
                trace_scenario=trace_scenario,
                workers=workers,
                progress=lambda label: bar.update(task, advance=1, description=f"done: {label}"),
            )
    except ReportNotWritten as exc:
        raise InvalidInput(f"{exc.message} (choose another folder with {where})") from None
    except KeyboardInterrupt:
        err.print(CANCELLED, highlight=False)
        raise typer.Exit(130) from None
    print_table(_table(result))
    out.print(
        Text.assemble(
            "report: ",
            (str(result.report_path.resolve()), "bold"),
            f" ({len(result.reports)} scenarios x {episodes} episode{'s' * (episodes != 1)} in "
            f"{result.seconds:.0f} s)",
        ),
        highlight=False,
        soft_wrap=True,
    )
