"""Valid scenarios at the edges of MARKET.md's ranges: every policy plays them whole.

Each must evaluate without a warning, give a report that is strict JSON (no NaN or
infinity), and an oracle at least as good as ``fixed`` on every episode. ``prior`` and
``ppo:default`` play them too: the shipped agent was trained on 24 steps a day and episodes
of at most 744 steps, and must still finish every valid horizon with finite observations.
"""

from __future__ import annotations

import json
import math
import tracemalloc
import warnings
from typing import Any

import numpy as np
import pytest
from bidding_helpers import quick

import adbot.rl  # noqa: F401  (registers the prior and ppo: policies)
from adbot.bidding import FixedPolicy, hindsight_oracle, make_policy, run_episode
from adbot.bidding.evaluate import evaluate, score_ratio
from adbot.market.scenario import Scenario, load_scenario
from adbot.market.simulator import MarketSimulator
from adbot.rl.features import PacingState

POLICIES = ["fixed", "pid", "onlinelp", "oracle", "prior", "ppo:default", "calibrated:fixed"]


def edited(**paths: Any) -> Scenario:
    """``quick()`` with fields replaced, named ``section__field`` (``campaign__max_bid``)."""
    data = quick().model_dump(mode="json")
    for path, value in paths.items():
        section, field = path.split("__")
        data[section][field] = value
    return load_scenario(data)


EDGES = {
    "one-keyword": {"campaign__keywords": 1},
    "no-competitors": {"market__competitors": 0},
    "one-slot": {"market__slots": 1, "market__position_ctr": [0.1]},
    "always-participating": {"market__participation": 1.0},
    "broke-competitors": {
        "market__competitors": 30,
        "market__competitor_budget": {"mean": 0.01, "sd_log": 0.5},
    },
    "one-step-a-day": {"horizon__steps_per_day": 1, "market__hourly_profile": "flat"},
    "two-days": {"horizon__days": 2},
    "roas-only": {"campaign__target_cpa": None, "campaign__target_roas": 2.0},
    "no-target": {"campaign__target_cpa": None},
    "impossible-cpa": {"campaign__target_cpa": 0.001},
    "one-click-budget": {"campaign__daily_budget": 0.01},
    "reserve-over-every-bid": {"market__reserve_cpc": 1000.0},
    "closed-hours": {"market__hourly_profile": [0.0] * 6 + [1.0] * 6},
    "closed-first-day": {  # quick() starts on a Wednesday: the first day is made a Monday
        "horizon__start_weekday": 0,
        "horizon__days": 2,
        "market__weekday_profile": [0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0],
    },
    "shocks-at-the-edges": {
        "market__shocks": [
            {"day": 0, "step": 0, "competitor_cpc_multiplier": 2.0},
            {"day": 0, "step": 5, "volume_multiplier": 0.0},
            {"day": 0, "step": 5, "cvr_multiplier": 2.0, "volume_multiplier": 3.0},
            {"day": 0, "step": 11, "competitor_cpc_multiplier": 0.01},
        ]
    },
    "one-bid": {"campaign__min_bid": 1.0, "campaign__max_bid": 1.0},
    "tiny-max-bid": {"campaign__min_bid": 0.0, "campaign__max_bid": 0.001},
    "no-noise": {
        "market__pcvr_noise": 0.0,
        "market__bid_noise": 0.0,
        "market__cvr": {"mean": 0.05, "sd_log": 0.0},
        "market__competitor_cpc": {"mean": 1.6, "sd_log": 0.0},
    },
    "cvr-at-the-cap": {"market__cvr": {"mean": 0.95, "sd_log": 0.0}},
    # Base CPCs under float32's smallest: numpy warned of a division by zero (the reserve).
    "worthless-competitors": {"market__competitor_cpc": {"mean": 1e-300, "sd_log": 0.5}},
    "worthless-competitors-no-reserve": {
        "market__competitor_cpc": {"mean": 1e-300, "sd_log": 0.5},
        "market__reserve_cpc": 0.0,
    },
    # Horizons and sizes the shipped agent never saw in training (24 steps a day, <= 744 steps).
    "seven-steps-a-day": {"horizon__steps_per_day": 7, "market__hourly_profile": "retail"},
    "96-steps-a-day": {"horizon__steps_per_day": 96, "market__hourly_profile": "retail"},
    "288-steps-a-day": {"horizon__steps_per_day": 288, "market__hourly_profile": "b2b"},
    "over-744-steps": {
        "horizon__days": 40, "horizon__steps_per_day": 24, "market__daily_queries": 1500.0,
    },
    "sunday-start": {"horizon__start_weekday": 6, "horizon__days": 2},
    "2000-keywords": {"campaign__keywords": 2000},
    "100-competitors": {"market__competitors": 100},
    "tiny-participation": {"market__participation": 1e-6},
}  # fmt: skip


def _strict(constant: str) -> float:
    raise ValueError(f"not JSON: {constant}")


@pytest.mark.parametrize("edge", sorted(EDGES))
def test_an_edge_scenario_plays_whole_and_reports_strict_json(edge: str) -> None:
    scenario = edited(**EDGES[edge])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a RuntimeWarning (0/0, log 0) is a defect here
        report = evaluate(scenario, POLICIES, episodes=2, seed=0)
    text = json.dumps(report, allow_nan=False)
    assert json.loads(text, parse_constant=_strict) == report
    rows = {row["policy"]: row for row in report["results"]}
    for fixed, oracle in zip(rows["fixed"]["episodes"], rows["oracle"]["episodes"], strict=True):
        assert oracle["oracle_score"] >= fixed["score"]
        assert oracle["score"] == oracle["oracle_score"]  # the batch plays as the simulator
    for row in rows.values():
        assert all(math.isfinite(x) for x in (row["score"], row["cost"], row["oracle_alpha"]))


def test_nothing_won_scores_zero_and_ratio_one() -> None:
    """A reserve over every bid wins nothing: every score and the oracle's are 0, and
    ``score_ratio`` is 1 (no policy could do better), never 0/0."""
    report = evaluate(edited(**EDGES["reserve-over-every-bid"]), POLICIES, episodes=1, seed=0)
    for row in report["results"]:
        assert (row["score"], row["oracle_score"], row["cost"]) == (0.0, 0.0, 0.0)
        assert row["score_ratio"] == 1.0
        assert row["cpa"] is None and row["roas"] is None


@pytest.mark.parametrize("seed", range(12))
def test_the_oracle_is_never_under_fixed_when_every_alpha_bids_the_same(seed: int) -> None:
    """With min_bid == max_bid every multiplier ties, and the oracle's batch scores them
    exactly as the simulator scores ``fixed``. When the batch summed a day in one piece it
    came a few ulps under (seeds 1, 6 and 7 had ``fixed`` over the oracle, a score_ratio of
    1.0000000000000002). As the README says, the tie keeps the smallest multiplier tried."""
    scenario = edited(campaign__min_bid=1.0, campaign__max_bid=1.0, campaign__target_cpa=3.0)
    fixed = run_episode(scenario, seed, FixedPolicy()).metrics.score
    oracle = hindsight_oracle(scenario, seed)
    assert oracle.score == fixed
    assert oracle.alpha == oracle.grid_alphas[0] == pytest.approx(0.02)
    assert score_ratio(fixed, oracle.score) == 1.0


def test_tiny_participation_on_a_day_without_queries() -> None:
    """A participation under 1/65,536 rounds to no entry at all; on a closed day that made
    the reserve check's bound 0 x inf (``adbot.market.episode._bid_draw``), a RuntimeWarning.
    A day without queries tests no bid against the reserve now."""
    scenario = edited(
        horizon__days=2,
        horizon__start_weekday=0,
        market__participation=1e-6,
        market__weekday_profile=[0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0],
        # a scenario of its own: a day whose draw failed stays half drawn in the episode cache
        campaign__daily_budget=61.0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        evaluate(scenario, ["fixed"], episodes=1, seed=0)


SMALLEST = math.ulp(0.0)
FLOAT_LIMITS = {
    "smallest-budget": {"campaign__daily_budget": SMALLEST},
    "smallest-budget-roas": {
        "campaign__daily_budget": SMALLEST,
        "campaign__target_cpa": None,
        "campaign__target_roas": 2.0,
    },
    "largest-roas-target": {"campaign__target_cpa": None, "campaign__target_roas": 1.7e308},
    "smallest-roas-target": {"campaign__target_cpa": None, "campaign__target_roas": 1e-300},
}


@pytest.mark.parametrize(
    "policy", ["pid", "onlinelp", "prior", "ppo:default", "calibrated:onlinelp"]
)
@pytest.mark.parametrize("limit", sorted(FLOAT_LIMITS))
def test_amounts_at_the_float_limits_play_without_a_math_error(limit: str, policy: str) -> None:
    """MARKET.md takes any positive budget or target: near the float limits a ratio of two
    amounts underflows to 0 or overflows. ``pid`` took the log of 0 (a math domain error),
    the agent's features divided by a reference of 0 conversions, ``onlinelp`` warned of an
    overflow, and so did ``adbot.market.score.score_many`` (cost x target). Played here
    without ``evaluate``: its report's ``budget_utilization`` of a budget of 5e-324 is
    infinite (adbot.market.score; ``--json`` prints it null)."""
    scenario = edited(**FLOAT_LIMITS[limit])
    for seed in range(3):  # pid met cost x target = inf on seed 2
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            result = run_episode(scenario, seed, make_policy(policy))
        assert np.isfinite(result.alpha).all()


def test_the_agent_state_of_a_long_horizon_grows_with_its_days_not_their_square() -> None:
    """The agent's state made every day's forecast of each later day up front: days^2 / 2
    floats, 144 MB at 6,000 days of one step (MARKET.md allows up to 1,000,000 steps), 1 GB
    at 16,000. It makes the day's own when the day starts."""
    long = edited(
        horizon__days=6000,
        horizon__steps_per_day=1,
        market__hourly_profile="flat",
        market__daily_queries=50.0,
    )
    PacingState(MarketSimulator(quick(), 0), 0.0)  # compiled kernels loaded before measuring
    sim = MarketSimulator(long, 0)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        PacingState(sim, 0.0)
        grown = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert grown < 5e6, f"{grown / 1e6:.0f} MB"


def test_an_episode_without_a_keyword_trace_allocates_none() -> None:
    """``run_episode`` made eight (n_steps, K) trace arrays even when no trace was asked
    for: at 20,000 steps and 1,000,000 keywords (a valid scenario) each was 149 GiB, and
    ``adbot evaluate`` stopped with "out of memory" before the first step. Here they would
    be 64 MB; the episode's own draws are about 16 MB."""
    many = edited(
        horizon__steps_per_day=500,
        market__hourly_profile="flat",
        campaign__keywords=2000,
        market__competitors=0,
        market__daily_queries=100.0,
    )
    run_episode(quick(), 0, FixedPolicy())  # compiled kernels loaded before measuring
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        result = run_episode(many, 0, FixedPolicy())
        grown = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert result.keywords is None
    assert grown < 40e6, f"{grown / 1e6:.0f} MB"
