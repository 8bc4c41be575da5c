"""How far apart policies really are, and how often a few episodes show it.

A realised score is lumpy: on ``value-only`` some 53 conversions of lognormal value make it,
so one more or one fewer conversion on the clicks where two policies differ moves their
difference by 2 % or more. This plays each policy on each episode (the same episodes for
all: common random numbers) and scores it twice:

- realised: the MARKET.md score over the oracle's (``score_ratio``), as ``adbot evaluate``;
- expected: the score of the clicks it bought, with each click's conversions at the keyword's
  true conversion rate (the market's, which no policy sees) and each conversion at the
  scenario's mean value; the conversion draws' noise is gone, the clicks' is kept.

Per scenario it prints every policy's mean ratio and mean expected score, and for each policy
after the first its paired gap to the first: realised (points of ratio) with the standard
deviation of one episode's gap, expected (percent of the first's expected score) with its
standard error. The last column is the chance that a window of ``--window`` episodes puts
the first policy ahead of that one, if the true gap is the expected one (in points: the
percentage times the other policy's mean ratio) and one episode's realised gap is normal with
the measured deviation: how often a bar like the RL issue's ("above the baseline over 5
episodes") can be met.

With ``--ceiling``, one-day scenarios also get what bidding could reach in hindsight (every
step's auctions known, no daily cap to plan for): the expected score of the best constant
multiplier against the best bid per keyword (each keyword's argmax of ``lambda x worth x
clicks - cost`` on its landscape over the whole day, ``lambda`` the best), with the
keywords' true conversion rates and with the predicted ones, in percent over the constant.

Run: ``python benchmarks/headroom.py [--episodes 20] [--seed 100] [--window 5] [--scenario
FILE ...] [--ceiling] POLICY [POLICY ...]``, e.g. ``python benchmarks/headroom.py ppo:default
onlinelp pid --ceiling`` (about 4 minutes here for the nine bundled scenarios).
"""

from __future__ import annotations

import argparse
import math
import statistics
from pathlib import Path

import numpy as np
from paired import mean_and_error, positive
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from adbot.bidding.evaluate import score_ratio
from adbot.bidding.oracle import hindsight_oracle
from adbot.bidding.registry import load_policy_plugins, make_policy
from adbot.bidding.runner import run_episode
from adbot.errors import InvalidInput
from adbot.market.libm import geomspace
from adbot.market.scenario import Scenario, load_scenario
from adbot.market.score import score, score_many
from adbot.market.simulator import MarketSimulator

ROOT = Path(__file__).resolve().parents[1]
CEILING_GRID = geomspace(0.02, 50.0, 193)  # bids as multipliers of each keyword's value
LAMBDAS = geomspace(1e-3, 1e3, 601)


def true_cvr(sim: MarketSimulator) -> np.ndarray:
    """(n_steps, K): each keyword's conversion rate at each step, as the market draws it."""
    return sim.market.universe.cvr_at(slice(None))


def expected_score(scenario: Scenario, clicks: np.ndarray, cvr: np.ndarray, cost: float) -> float:
    """The score of ``clicks`` (n_steps, K) at conversion rates ``cvr`` and the mean value."""
    conversions = float((clicks * cvr).sum())
    value = conversions * scenario.campaign.conversion_value.mean
    return score(conversions, value, cost, scenario.campaign)


def play(scenario: Scenario, seed: int, names: list[str]) -> list[tuple[float, float]]:
    """Each policy's (score ratio, NaN where the oracle alone scores, expected score) on one
    episode."""
    oracle = hindsight_oracle(scenario, seed).score
    cvr = true_cvr(MarketSimulator(scenario, seed))
    results = []
    for name in names:
        episode = run_episode(scenario, seed, make_policy(name), keyword_trace=True)
        assert episode.keywords is not None
        ratio = score_ratio(episode.metrics.score, oracle)
        cost = episode.metrics.cost
        expected = expected_score(scenario, episode.keywords.clicks, cvr, cost)
        results.append((math.nan if ratio is None else ratio, expected))
    return results


def day_landscapes(
    scenario: Scenario, seed: int
) -> tuple[MarketSimulator, np.ndarray, np.ndarray, np.ndarray]:
    """Every step's keyword landscapes on ``CEILING_GRID`` summed over the episode: (K, A)
    expected clicks and cost, and each keyword's clicks weighted by its true rate."""
    sim = MarketSimulator(scenario, seed)
    while not sim.done:  # the bid simulator answers for played steps; the bids do not matter
        sim.step(np.full(sim.n_keywords, sim.min_bid))
    cvr = true_cvr(sim)
    shape = (sim.n_keywords, CEILING_GRID.size)
    clicks, cost, converting = np.zeros(shape), np.zeros(shape), np.zeros(shape)
    for index in range(sim.n_steps):
        keywords, land = sim.keyword_landscape(index, CEILING_GRID)
        clicks[keywords] += land.clicks
        cost[keywords] += land.cost
        converting[keywords] += land.clicks * cvr[index, keywords, None]
    return sim, clicks, cost, converting


def ceiling(scenario: Scenario, seed: int) -> tuple[float, float, float]:
    """Expected scores in hindsight: the best constant multiplier, the best per-keyword bids
    with true and with predicted conversion rates as the worth."""
    sim, clicks, cost, converting = day_landscapes(scenario, seed)
    budget = scenario.campaign.daily_budget
    mean_value = scenario.campaign.conversion_value.mean

    def best(total_cost: np.ndarray, conversions: np.ndarray) -> float:
        # Over budget, the campaign leaves the auctions: a share of its clicks at that bid.
        share = np.minimum(1.0, budget / np.maximum(total_cost, 1e-12))
        spent, bought = total_cost * share, conversions * share
        scores = score_many(bought, bought * mean_value, spent, scenario.campaign)
        return float(scores.max())

    constant = best(cost.sum(axis=0), converting.sum(axis=0))
    rows = np.arange(sim.n_keywords)
    per_keyword = []
    for rates in (sim.market.universe.true_cvr, sim.pcvr):
        worth = rates[:, None] * clicks  # (K, A) conversions each bid buys if rates are right
        # Lambda by lambda: (lambdas, K, A) at once would grow with the account.
        picks = np.array([np.argmax(lam * worth - cost, axis=1) for lam in LAMBDAS])
        per_keyword.append(best(cost[rows, picks].sum(axis=1), converting[rows, picks].sum(axis=1)))
    return constant, per_keyword[0], per_keyword[1]


def window_ahead(gap: float, sd: float, window: int) -> float:
    """Chance that the mean of ``window`` normal gaps of mean ``gap`` and deviation ``sd`` is
    above 0."""
    if sd == 0:
        return float(gap > 0)
    return statistics.NormalDist().cdf(gap / (sd / math.sqrt(window)))


def report(
    scenario: Scenario, names: list[str], rows: list[list[tuple[float, float]]], window: int
) -> Table:
    table = Table(title=f"{scenario.name}: {len(rows)} episodes")
    for column in ("policy", "ratio", "expected score", "gap, points (sd of one)",
                   "expected gap, %", f"P(ahead over {window})"):  # fmt: skip
        table.add_column(column, justify="left" if column == "policy" else "right")
    first = [episode[0] for episode in rows]
    for i, name in enumerate(names):
        mine = [episode[i] for episode in rows]
        mean_ratio = statistics.fmean(r for r, _ in mine if not math.isnan(r))
        expected = statistics.fmean(e for _, e in mine)
        cells = [name, f"{mean_ratio:.3f}", f"{expected:.1f}"]
        if i == 0:
            table.add_row(*cells, "", "", "")
            continue
        gaps = [a[0] - b[0] for a, b in zip(first, mine, strict=True) if not math.isnan(a[0])]
        relative = [100 * (a[1] / b[1] - 1) for a, b in zip(first, mine, strict=True) if b[1] > 0]
        gap, sd = statistics.fmean(gaps), statistics.stdev(gaps)
        rel, rel_error = mean_and_error(relative)
        true_gap = rel / 100 * mean_ratio
        cells += [
            f"{100 * gap:+.1f} ({100 * sd:.1f})",
            f"{rel:+.2f} ± {rel_error:.2f}",
            f"{window_ahead(true_gap, sd, window):.2f}",
        ]
        table.add_row(*cells)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("policies", nargs="+", help="the policy to judge first, then its rivals")
    parser.add_argument("--episodes", type=positive, default=20, help="default 20")
    parser.add_argument("--seed", type=int, default=100, help="first episode seed (default 100)")
    parser.add_argument("--window", type=positive, default=5, help="episodes a bar sees (5)")
    parser.add_argument("--scenario", type=Path, action="append", help="default: all bundled")
    parser.add_argument("--ceiling", action="store_true", help="hindsight ceilings, one-day")
    args = parser.parse_args()
    load_policy_plugins()
    try:
        for name in args.policies:
            make_policy(name)
        paths = args.scenario or sorted((ROOT / "configs/scenarios").glob("*.yaml"))
        scenarios = [load_scenario(path) for path in paths]
    except InvalidInput as exc:
        parser.error(str(exc))
    console = Console(width=120)  # a table a row wide, also when written to a file
    seeds = range(args.seed, args.seed + args.episodes)
    for scenario in scenarios:
        rows = []
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task(scenario.name, total=len(seeds))
            for seed in seeds:
                rows.append(play(scenario, seed, args.policies))
                progress.advance(task)
        console.print(report(scenario, args.policies, rows, args.window))
        if args.ceiling and scenario.horizon.days == 1:
            found = np.array([ceiling(scenario, seed) for seed in seeds])
            constant = found[:, 0]
            true_gain, _ = mean_and_error(list(100 * (found[:, 1] / constant - 1)))
            predicted_gain, _ = mean_and_error(list(100 * (found[:, 2] / constant - 1)))
            console.print(
                f"  hindsight: best constant {constant.mean():.1f}; per keyword with true "
                f"rates {true_gain:+.2f} %, with predicted rates {predicted_gain:+.2f} %"
            )


if __name__ == "__main__":
    main()
