"""Policies on every bundled scenario, compared pair by pair over many episodes.

``adbot evaluate`` gives each policy's mean over a few episodes; between policies a few
points apart, 5 episodes do not separate them (one episode moves a mean by about 3%). This
runs ``adbot.bidding.evaluate.evaluate`` on every file in ``configs/scenarios/`` (or the
ones given) and prints, per scenario, each policy's mean score_ratio and, for every policy
after the first, its paired difference to the first (the same episodes: common random
numbers) with the standard error of that difference, then the same over all episodes.
Episodes the oracle scores nothing on have no ratio and are left out of the pairs.

Run: ``python benchmarks/scenarios.py [--episodes 20] [--seed 100] POLICY [POLICY ...]
[--scenario FILE ...]``, e.g. ``python benchmarks/scenarios.py ppo:default prior pid
onlinelp`` (about 90 s here).
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from paired import paired_gap, positive

from adbot.bidding.evaluate import evaluate
from adbot.bidding.registry import load_policy_plugins, make_policy
from adbot.errors import InvalidInput
from adbot.market.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[1]


def _mean(ratios: list[float | None]) -> float:
    """Mean of the episodes that have a ratio (None: the oracle scored nothing)."""
    return statistics.fmean(r for r in ratios if r is not None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("policies", nargs="+", help="policy names, e.g. ppo:default pid")
    parser.add_argument("--episodes", type=positive, default=20, help="default 20")
    parser.add_argument("--seed", type=int, default=100, help="first episode seed (default 100)")
    parser.add_argument(
        "--scenario", type=Path, action="append", help="a scenario file (default: all bundled)"
    )
    args = parser.parse_args()
    load_policy_plugins()
    for spec in args.policies:  # an unknown name fails here, not after the first scenario
        try:
            make_policy(spec)
        except InvalidInput as error:
            parser.error(str(error))
    files = args.scenario or sorted((ROOT / "configs/scenarios").glob("*.yaml"))
    compare(args.policies, files, episodes=args.episodes, seed=args.seed)


def compare(policies: list[str], files: list[Path], *, episodes: int, seed: int) -> None:
    """Print each scenario's line and the line of all episodes (see the module docstring)."""
    pooled: dict[str, list[float | None]] = {policy: [] for policy in policies}
    print(
        f"{len(files)} scenarios x {episodes} episodes (seeds {seed}-{seed + episodes - 1}); "
        f"mean score_ratio, and paired difference to {policies[0]} (standard error)"
    )
    for path in files:
        scenario = load_scenario(path)
        report = evaluate(scenario, policies, episodes=episodes, seed=seed)
        ratios = {
            result["policy"]: [episode["score_ratio"] for episode in result["episodes"]]
            for result in report["results"]
        }
        for policy in policies:
            pooled[policy] += ratios[policy]
        print(_line(scenario.name, policies, ratios), flush=True)
    print(_line("all episodes", policies, pooled))


def _line(label: str, policies: list[str], ratios: dict[str, list[float | None]]) -> str:
    """Each policy's mean ratio, and after the first its paired difference to the first."""
    parts = [f"{label:22s}"]
    for policy in policies:
        parts.append(f"{policy} {_mean(ratios[policy]):.3f}")
        if policy != policies[0]:
            gap, error = paired_gap(ratios[policy], ratios[policies[0]])
            parts[-1] += f" ({gap:+.3f} +- {error:.3f})"
    return "  ".join(parts)


if __name__ == "__main__":
    main()
