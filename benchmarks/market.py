"""Market simulator and evaluator speed; optional tuning of the baselines' gains.

Default run (``python benchmarks/market.py``) prints, for MARKET.md's example scenario
(``configs/scenarios/retail-tight-budget.yaml``: 7 days, 40,000 queries a day, 12
competitors, 4 slots, 60 keywords), on one process:

- cold: auctions/s of fresh episodes end to end (drawing the episode's market + 168 steps
  of bidding through ``MarketSimulator.step``). Target (issue 3): >= 2,000,000;
- warm: auctions/s stepping over an already drawn market (policies sharing an episode);
- oracle: seconds per hindsight oracle (48-point grid + golden section) and
  auction-evaluations/s of the batched multiplier grid;
- landscape: milliseconds per 96-point multiplier landscape of a step;
- evaluate: wall seconds of ``adbot evaluate`` (5 episodes; fixed, pid, onlinelp, oracle),
  as a subprocess. Target: < 30 s.

``--tune`` runs the grid search behind ``PidGains()`` and OnlineLP's half-life on every
bundled scenario with training episode seeds 1000-1004 (evaluation uses seeds 0-4) and
prints the mean score ratio of each setting.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

from adbot.bidding import OnlineLpPolicy, PidGains, PidPolicy, hindsight_oracle, run_episode
from adbot.bidding.base import Policy
from adbot.market import MarketSimulator, load_scenario
from adbot.market import episode as episode_module
from adbot.market.batch import evaluate_multipliers
from adbot.market.episode import episode_market
from adbot.market.scenario import Scenario, bundled_scenarios

SCENARIO = "retail-tight-budget"
TARGET_AUCTIONS = 2_000_000
TARGET_EVALUATE_SECONDS = 30.0
REPEATS = 9
TRAIN_SEEDS = range(1000, 1005)


def _play(seed: int) -> tuple[int, float, float]:
    """(auctions, wall seconds, CPU seconds) of one episode bid at alpha = 1."""
    scenario = _scenario()
    start, cpu = time.perf_counter(), time.process_time()
    sim = MarketSimulator(scenario, seed)
    bids = np.clip(sim.keyword_values, sim.min_bid, sim.max_bid)
    auctions = 0
    while not sim.done:
        auctions += sim.step(bids).total_queries
    return auctions, time.perf_counter() - start, time.process_time() - cpu


@functools.cache
def _scenario() -> Scenario:
    return load_scenario(SCENARIO)


def _report(label: str, runs: list[tuple[int, float, float]]) -> None:
    """Wall-clock and CPU-time rates: on a shared machine the CPU-time rate is the one-core
    figure (wall time then also counts time spent waiting for a core)."""
    wall = statistics.median(a / s for a, s, _ in runs)
    cpu = statistics.median(a / c for a, _, c in runs)
    each = ", ".join(f"{a / c / 1e6:.2f}" for a, _, c in runs)
    print(
        f"{label:8s} {runs[0][0]:,} auctions/episode; median auctions/s: wall {wall:,.0f}, "
        f"CPU time {cpu:,.0f}; ratio to target: wall {wall / TARGET_AUCTIONS:.2f}, "
        f"CPU {cpu / TARGET_AUCTIONS:.2f} (per episode, M/s of CPU time: {each})"
    )


def speed() -> None:
    _play(99)  # warm-up: imports, quantile table, caches
    cold = [_play(10_000 + i) for i in range(REPEATS)]
    _report("cold", cold)
    warm = [_play(10_000 + REPEATS - 1) for _ in range(REPEATS)]
    _report("warm", warm)
    scenario = load_scenario(SCENARIO)
    seed = 10_000 + REPEATS - 1
    grid = np.geomspace(0.02, 50, 48)
    start = time.perf_counter()
    evaluate_multipliers(scenario, seed, grid)
    grid_seconds = time.perf_counter() - start
    queries = sum(episode_market(scenario, seed).step(i).n_queries for i in range(168))
    start = time.perf_counter()
    hindsight_oracle(scenario, seed)
    print(
        f"oracle   {time.perf_counter() - start:.2f} s per oracle; the 48-multiplier grid plays "
        f"{48 * queries / grid_seconds:,.0f} auction-evaluations/s"
    )
    sim = MarketSimulator(scenario, seed)
    while not sim.done:
        sim.step(np.clip(sim.keyword_values, sim.min_bid, sim.max_bid))
    alphas = np.geomspace(0.02, 50, 96)
    start = time.perf_counter()
    for index in range(sim.n_steps):
        sim.multiplier_landscape(index, alphas)
    per_step = (time.perf_counter() - start) / sim.n_steps
    print(f"landscape {per_step * 1e3:.2f} ms per step (96 multipliers)")
    evaluate_wall()


def evaluate_wall() -> None:
    adbot = Path(sys.executable).with_name("adbot")
    command = [str(adbot), "evaluate", SCENARIO, "--episodes", "5", "--seed", "0", "--json"]
    command += ["--policy", "fixed,pid,onlinelp,oracle"]
    start = time.perf_counter()
    before = os.times()
    subprocess.run(command, check=True, capture_output=True)
    seconds = time.perf_counter() - start
    after = os.times()
    cpu = (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )
    print(
        f"evaluate {seconds:.1f} s wall ({cpu:.1f} s CPU) for `{' '.join(command[1:])}`; "
        f"ratio to the 30 s target {seconds / TARGET_EVALUATE_SECONDS:.2f}"
    )


def _mean_ratio(make: Callable[[], Policy], scenarios: list[Path]) -> float:
    ratios = []
    for path in scenarios:
        scenario = load_scenario(path)
        for seed in TRAIN_SEEDS:
            oracle = hindsight_oracle(scenario, seed).score
            score = run_episode(scenario, seed, make()).metrics.score
            ratios.append(score / oracle if oracle > 0 else 1.0)
    return statistics.fmean(ratios)


def tune() -> None:
    """Coordinate search: budget gains first (target gains at their defaults), then target
    gains with the best budget gains; then OnlineLP's half-life."""
    episode_module._CACHE_SIZE = 64  # keep every training episode's market drawn
    scenarios = bundled_scenarios()
    best = PidGains()
    steps = (
        ("kp_budget", "ki_budget", (0.0, 0.1, 0.25), (0.2, 0.4, 0.8, 1.2)),
        ("kp_target", "ki_target", (0.5, 1.0, 2.0), (0.025, 0.05, 0.1)),
    )
    for kp_name, ki_name, kps, kis in steps:
        results = []
        for kp, ki in itertools.product(kps, kis):
            gains = replace(best, **{kp_name: kp, ki_name: ki})
            ratio = _mean_ratio(lambda gains=gains: PidPolicy(gains), scenarios)
            results.append((ratio, gains))
            print(f"pid {gains}: mean score ratio {ratio:.4f}", flush=True)
        best = max(results, key=lambda r: r[0])[1]
    print(f"best pid: {best}")
    for half_life in (0.0625, 0.125, 0.25, 0.5):
        ratio = _mean_ratio(lambda h=half_life: OnlineLpPolicy(half_life_days=h), scenarios)
        print(f"onlinelp half_life_days={half_life}: mean score ratio {ratio:.4f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tune", action="store_true", help="grid-search the baselines' gains")
    if parser.parse_args().tune:
        tune()
    else:
        speed()


if __name__ == "__main__":
    main()
