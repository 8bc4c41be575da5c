"""``adbot evaluate``'s computation: policies against the hindsight oracle, episode by episode.

Episode i uses episode seed ``seed + i``; every policy and the oracle see the identical
market (common random numbers), so ``score_ratio`` compares them pair by pair. The result
is MARKET.md's JSON object (plus ``value``, the mean conversion value).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

from adbot.bidding.oracle import OracleResult, hindsight_oracle
from adbot.bidding.registry import make_policy
from adbot.bidding.runner import run_episode
from adbot.errors import InvalidInput
from adbot.market.episode import forget_episode_market
from adbot.market.scenario import Scenario
from adbot.market.score import EpisodeMetrics
from adbot.market.simulator import EPISODE_SEED_MAX

Progress = Callable[[str], None]


def score_ratio(score: float, oracle_score: float) -> float | None:
    """Policy score / oracle score; 1 when both are 0, None when only the oracle scores 0."""
    if oracle_score > 0:
        return score / oracle_score
    return 1.0 if score <= 0 else None


def _mean(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.fmean(known) if known else None


def _summary(
    spec: str,
    runs: list[tuple[int, EpisodeMetrics, OracleResult]],
    seconds: float,
) -> dict[str, Any]:
    scores = [m.score for _, m, _ in runs]
    ratios = [score_ratio(m.score, o.score) for _, m, o in runs]
    return {
        "policy": spec,
        "score": statistics.fmean(scores),
        "score_std": statistics.stdev(scores) if len(scores) > 1 else 0.0,
        "score_ratio": _mean(list(ratios)),
        "conversions": statistics.fmean(m.conversions for _, m, _ in runs),
        "value": statistics.fmean(m.value for _, m, _ in runs),
        "cost": statistics.fmean(m.cost for _, m, _ in runs),
        "cpa": _mean([m.cpa for _, m, _ in runs]),
        "roas": _mean([m.roas for _, m, _ in runs]),
        "budget_utilization": statistics.fmean(m.budget_utilization for _, m, _ in runs),
        "oracle_score": statistics.fmean(o.score for _, _, o in runs),
        "oracle_alpha": statistics.fmean(o.alpha for _, _, o in runs),
        "wall_seconds": seconds,
        "episodes": [
            {"seed": seed, "score": m.score, "oracle_score": o.score, "score_ratio": ratio}
            for (seed, m, o), ratio in zip(runs, ratios, strict=True)
        ],
    }


def check_episodes(episodes: int, seed: int) -> None:
    """``InvalidInput`` naming the argument and the value given. Worded by the argument's
    name, which reads right from a library call (``evaluate(..., seed=-1)``) as from the
    command line (``--seed -1``). Episode seeds ``seed .. seed + episodes - 1`` must lie in
    0 .. ``EPISODE_SEED_MAX``, the range ``adbot simulate`` replays."""
    if episodes < 1:
        raise InvalidInput(f"episodes must be >= 1, got {episodes}")
    if episodes - 1 > EPISODE_SEED_MAX:  # no seed would do: name the episodes, not the seed
        raise InvalidInput(f"episodes must be at most 2**63, got {episodes}")
    if seed < 0:
        raise InvalidInput(f"seed must be >= 0, got {seed}")
    if seed > EPISODE_SEED_MAX - (episodes - 1):
        counted = f"{episodes} episode" + ("s" if episodes > 1 else "")
        raise InvalidInput(
            f"seed must be at most {EPISODE_SEED_MAX - (episodes - 1)} for {counted} (the "
            f"last episode seed is at most 2**63 - 1), got {seed}"
        )


def evaluate(
    scenario: Scenario,
    policies: list[str],
    *,
    episodes: int,
    seed: int,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Run each policy on ``episodes`` episodes (seeds ``seed``, ``seed + 1``, ...)."""
    check_episodes(episodes, seed)
    policies = list(dict.fromkeys(policies))
    if not policies:
        raise InvalidInput("give at least one --policy")
    built = {spec: make_policy(spec) for spec in policies}  # unknown names fail before running
    runs: dict[str, list[tuple[int, EpisodeMetrics, OracleResult]]] = {s: [] for s in policies}
    seconds = dict.fromkeys(policies, 0.0)
    for episode_seed in range(seed, seed + episodes):
        start = time.perf_counter()
        oracle = hindsight_oracle(scenario, episode_seed)
        oracle_seconds = time.perf_counter() - start
        if progress:
            progress(f"oracle, episode seed {episode_seed}")
        for spec, policy in built.items():
            start = time.perf_counter()
            result = run_episode(scenario, episode_seed, policy)
            seconds[spec] += time.perf_counter() - start
            if spec == "oracle":
                seconds[spec] += oracle_seconds
            runs[spec].append((episode_seed, result.metrics, oracle))
            if progress:
                progress(f"{spec}, episode seed {episode_seed}")
        forget_episode_market(scenario, episode_seed)  # played by all: free its draws
    return {
        "scenario": scenario.name,
        "episodes": episodes,
        "seed": seed,
        "results": [_summary(spec, runs[spec], seconds[spec]) for spec in policies],
    }
