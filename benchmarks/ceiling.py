"""What a constant multiplier can reach on each bundled scenario: the ex-ante ceiling.

The hindsight oracle picks its multiplier on the very draws of each episode (the conversions
that happened to come in), so ``score_ratio`` 1 is out of reach for a policy that bids
before it sees them. This prints, per scenario, the best a *constant* multiplier does when
it is chosen knowing the scenario but not the episode's draws: every multiplier of a log
grid on [0.02, 50] is played on every episode at once (``evaluate_multipliers``), each
episode's scores divided by its oracle's, and the multiplier with the best mean ratio is
refined on a fine grid between its two neighbours (on budget-bound scenarios the mean ratio
has a sharp peak: 2% off the best multiplier can cost 2 to 4 points):

- ``in-sample``: chosen on the episodes it is scored on (optimistic: it too has seen them);
- ``held-out``: chosen on as many other episodes (seeds after them), scored on these.

A policy that adapts during the episode can beat these figures (it sees the draws as they
come); one that does not cannot, on average, beat the in-sample figure. Compare them with
``benchmarks/scenarios.py`` on the same seeds. The curves themselves (mean ratio against
the multiplier, one line per scenario, the best marked) go to a self-contained HTML page,
``data/reports/ceiling-seed{SEED}-{EPISODES}.html`` unless ``--html`` names another.

Run: ``python benchmarks/ceiling.py [--episodes 20] [--seed 100] [--scenario FILE ...]
[--html PATH]`` (about 70 s here for the nine bundled scenarios and 20 episodes).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
from paired import mean_and_error, positive
from rich.progress import Progress

from adbot.bidding.base import ALPHA_MAX, ALPHA_MIN
from adbot.bidding.oracle import hindsight_oracle
from adbot.market.batch import evaluate_multipliers
from adbot.market.scenario import Scenario, load_scenario

ROOT = Path(__file__).resolve().parents[1]
GRID = np.geomspace(ALPHA_MIN, ALPHA_MAX, 97)  # steps of 8.5%
FINE_POINTS = 41  # between the best grid point's neighbours: steps of 0.4%


def ratios(scenario: Scenario, seeds: range, alphas: np.ndarray) -> np.ndarray:
    """(episodes, len(alphas)) score ratios of every multiplier on every episode (NaN where
    the oracle scores nothing)."""
    rows = []
    for seed in seeds:
        scores = evaluate_multipliers(scenario, seed, alphas).score
        oracle = hindsight_oracle(scenario, seed).score
        rows.append(scores / oracle if oracle > 0 else np.full(alphas.shape, np.nan))
    return np.array(rows)


def _best(table: np.ndarray) -> int:
    return int(np.nanargmax(np.nanmean(table, axis=0)))


def best_constant(
    scenario: Scenario, seeds: range, coarse: np.ndarray | None = None
) -> tuple[float, np.ndarray]:
    """The multiplier with the best mean ratio over the episodes, and its ratios there
    (``coarse``: the episodes' ratios on ``GRID``, if already computed)."""
    i = _best(ratios(scenario, seeds, GRID) if coarse is None else coarse)
    fine = np.geomspace(GRID[max(i - 1, 0)], GRID[min(i + 1, GRID.shape[0] - 1)], FINE_POINTS)
    table = ratios(scenario, seeds, fine)
    j = _best(table)
    return float(fine[j]), table[:, j]


def curves_page(curves: dict[str, tuple[np.ndarray, float, float]], title: str, path: Path) -> Path:
    """Write the mean-ratio curves (per scenario: means on ``GRID``, best alpha, its mean)."""
    figure = go.Figure()
    for name, (means, alpha, best_mean) in curves.items():
        line = figure.add_scatter(x=GRID, y=means, mode="lines", name=name).data[-1]
        figure.add_scatter(
            x=[alpha], y=[best_mean], mode="markers", marker={"color": line.line.color, "size": 9},
            name=f"{name}: best {best_mean:.3f} at {alpha:.3f}", showlegend=False,
        )  # fmt: skip
    figure.add_hline(y=1.0, line_dash="dash", annotation_text="hindsight oracle")
    figure.update_layout(
        title=title,
        xaxis={"title": "constant multiplier alpha", "type": "log"},
        yaxis={"title": "mean score ratio", "range": [0, 1.05]},
        legend_title="scenario",
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.write_html(path, include_plotlyjs=True)  # self-contained: opens offline
    return path


def _summary(column: np.ndarray) -> str:
    mean, error = mean_and_error([float(x) for x in column if np.isfinite(x)])
    return f"{mean:.3f} ({error:.3f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=positive, default=20, help="default 20")
    parser.add_argument("--seed", type=int, default=100, help="first episode seed (default 100)")
    parser.add_argument(
        "--scenario", type=Path, action="append", help="a scenario file (default: all bundled)"
    )
    parser.add_argument("--html", type=Path, help="the curves' page (default under data/reports)")
    args = parser.parse_args()
    files = args.scenario or sorted((ROOT / "configs/scenarios").glob("*.yaml"))
    scored = range(args.seed, args.seed + args.episodes)
    chooser = range(args.seed + args.episodes, args.seed + 2 * args.episodes)
    lines = []
    curves: dict[str, tuple[np.ndarray, float, float]] = {}
    with Progress(transient=True) as progress:
        task = progress.add_task("scenarios", total=len(files))
        for path in files:
            scenario = load_scenario(path)
            coarse = ratios(scenario, scored, GRID)
            inside, own = best_constant(scenario, scored, coarse)
            outside, _ = best_constant(scenario, chooser)
            held_out = ratios(scenario, scored, np.array([outside]))[:, 0]
            lines.append(
                f"{scenario.name:22s} in-sample {_summary(own)} at alpha {inside:.3f}   "
                f"held-out {_summary(held_out)} at alpha {outside:.3f}"
            )
            curves[scenario.name] = (np.nanmean(coarse, axis=0), inside, float(np.nanmean(own)))
            progress.advance(task)
    seeds = f"seeds {scored.start}-{scored.stop - 1}"
    print(
        f"best constant multiplier per scenario, mean score_ratio (standard error) on {seeds}; "
        f"held-out: chosen on seeds {chooser.start}-{chooser.stop - 1}"
    )
    print("\n".join(lines))
    page = args.html or Path(f"data/reports/ceiling-seed{args.seed}-{args.episodes}.html")
    title = f"Constant multipliers against the hindsight oracle, mean over {seeds}"
    print(f"curves: {curves_page(curves, title, page).resolve()}")


if __name__ == "__main__":
    main()
