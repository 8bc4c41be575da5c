"""The oracle's batch evaluator gives the simulator's totals and score bit for bit.

``evaluate_multipliers`` plays many constant multipliers at once; ``MarketSimulator`` plays
one step at a time. Both must add the same floats in the same order (a day's spend click by
click for the budget, each step's cost and value summed alone, then the steps one by one):
anything else differs in the last bits, which once put the oracle an ulp under ``fixed``.
So the comparison here is ``==``, never approximate.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from market_helpers import small_data

from adbot.market import MarketSimulator, load_scenario
from adbot.market.auction import multiplier_bids
from adbot.market.batch import evaluate_multipliers
from adbot.market.scenario import Scenario

ALPHAS = np.array([0.05, 0.3, 1.0, 2.5, 9.0, 40.0])
SEEDS = (0, 6)

CASES: dict[str, dict[str, Any]] = {
    "cpa-target": {},
    "budget-bound": {"campaign__daily_budget": 12.0},
    "competitor-budgets": {"market__competitor_budget": {"mean": 3.0, "sd_log": 0.8}},
    "roas-target": {"campaign__target_cpa": None, "campaign__target_roas": 2.0},
    "no-target-24-steps": {"campaign__target_cpa": None, "horizon__steps_per_day": 24},
    "one-bid": {"campaign__min_bid": 1.0, "campaign__max_bid": 1.0},
}


def _simulated(scenario: Scenario, seed: int, alpha: float) -> tuple[tuple[float, ...], bool]:
    """The simulator's (clicks, cost, conversions, value, score) of a constant multiplier,
    and whether the budget ran out before the last step of some day."""
    sim = MarketSimulator(scenario, seed)
    bids = multiplier_bids(np.array([alpha]), sim.keyword_values, sim.min_bid, sim.max_bid)[0]
    out_mid_day = False
    while not sim.done:
        outcome = sim.step(bids)
        last_step = outcome.step == sim.steps_per_day - 1
        out_mid_day |= outcome.budget_exhausted and not last_step
    m = sim.totals()
    return (m.clicks, m.cost, m.conversions, m.value, m.score), out_mid_day


@pytest.mark.parametrize("case", sorted(CASES))
def test_batch_totals_equal_the_simulator_exactly(case: str) -> None:
    scenario = load_scenario(small_data(**CASES[case]))
    assert scenario.horizon.steps_per_day >= 8  # steps summed apart, then added up
    out_mid_day = []
    for seed in SEEDS:
        batch = evaluate_multipliers(scenario, seed, ALPHAS)
        for row, alpha in enumerate(ALPHAS):
            simulated, out = _simulated(scenario, seed, float(alpha))
            got = (batch.clicks, batch.cost, batch.conversions, batch.value, batch.score)
            assert tuple(float(x[row]) for x in got) == simulated, (seed, alpha)
            assert simulated[0] > 0, (seed, alpha)  # a case that plays something
            out_mid_day.append(out)
    if case == "budget-bound":  # clicks cut off inside a day, for most multipliers
        assert sum(out_mid_day) > len(out_mid_day) // 2
