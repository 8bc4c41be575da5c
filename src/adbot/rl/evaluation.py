"""Evaluation of an agent against the hindsight oracle on fixed (scenario, seed) pairs.

Training evaluates on scenarios drawn once from ``EvalConfig.seed`` (never trained on,
never the bundled scenario files unless the config names them), so choosing the best
checkpoint does not peek at the scenarios the agent is finally judged on.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

import numpy as np

from adbot.bidding.base import Policy
from adbot.bidding.evaluate import score_ratio
from adbot.bidding.oracle import hindsight_oracle
from adbot.bidding.runner import run_episode
from adbot.errors import InvalidInput
from adbot.market.scenario import Scenario, load_scenario, random_scenario
from adbot.rl.config import EvalConfig
from adbot.rl.env import cap_daily_queries

# Random draws an evaluation tries for each scenario it wants before it gives up (the
# default config keeps about 2 draws in 5, at 1,500 queries a day 1 in 70; a draw costs 0.1 ms).
DRAWS_PER_SCENARIO = 1000


@dataclass(frozen=True)
class EvalEpisode:
    scenario: str
    seed: int
    score: float
    oracle_score: float
    score_ratio: float | None


@dataclass(frozen=True)
class EvalReport:
    episodes: tuple[EvalEpisode, ...]

    @property
    def mean_score_ratio(self) -> float:
        ratios = [e.score_ratio for e in self.episodes if e.score_ratio is not None]
        return statistics.fmean(ratios) if ratios else 0.0

    def metrics(self, prefix: str = "eval") -> dict[str, float]:
        scores = [e.score for e in self.episodes]
        return {
            f"{prefix}/score_ratio": self.mean_score_ratio,
            f"{prefix}/score": statistics.fmean(scores) if scores else 0.0,
        }


def conversion_bound(scenario: Scenario) -> float:
    """Conversions an episode could reach at most, roughly: every day, the clicks the budget
    buys at the competitors' mean CPC (or all top-slot clicks, if fewer) times the mean CVR.
    """
    campaign, market = scenario.campaign, scenario.market
    clicks = min(
        campaign.daily_budget / market.competitor_cpc.mean,
        market.daily_queries * market.position_ctr[0],
    )
    return scenario.horizon.days * market.cvr.mean * clicks


def evaluation_pairs(config: EvalConfig) -> list[tuple[Scenario, int]]:
    """The (scenario, episode seed) pairs an evaluation plays, the same every time.

    Random draws whose :func:`conversion_bound` is under ``config.min_conversions`` are
    skipped: with a handful of conversions the oracle's hindsight luck decides the ratio.
    """
    rng = np.random.default_rng(config.seed)
    scenarios: list[Scenario] = []
    draws = 0
    while len(scenarios) < config.random_scenarios:
        if draws == DRAWS_PER_SCENARIO * config.random_scenarios:
            # It would draw for ever (min_conversions 5000: no draw's budget buys that many).
            cap = config.max_daily_queries
            raise InvalidInput(
                f"evaluation: {len(scenarios)} of {config.random_scenarios} random scenarios in "
                f"{draws} draws can buy evaluation.min_conversions ({config.min_conversions:g}) "
                + ("" if cap is None else f"at evaluation.max_daily_queries ({cap:g}) ")
                + "conversions; lower it"
                + ("" if cap is None else " or raise evaluation.max_daily_queries")
            )
        draws += 1
        scenario = cap_daily_queries(
            random_scenario(rng, wide=bool(config.wide_draws)), config.max_daily_queries
        )
        if conversion_bound(scenario) >= config.min_conversions:
            scenarios.append(scenario)
    scenarios += [load_scenario(path) for path in config.scenario_files]
    return [
        (scenario, config.seed + episode)
        for scenario in scenarios
        for episode in range(config.episodes)
    ]


def evaluate_policy(policy: Policy, pairs: list[tuple[Scenario, int]]) -> EvalReport:
    """Play every pair with ``policy``; each score against the oracle's on the same episode."""
    episodes = []
    for scenario, seed in pairs:
        score = run_episode(scenario, seed, policy).metrics.score
        oracle = hindsight_oracle(scenario, seed).score
        episodes.append(EvalEpisode(scenario.name, seed, score, oracle, score_ratio(score, oracle)))
    return EvalReport(tuple(episodes))
