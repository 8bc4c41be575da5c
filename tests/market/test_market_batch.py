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
from hypothesis import given, settings
from hypothesis import strategies as st
from market_helpers import small_data

from adbot.market import MarketSimulator, load_scenario
from adbot.market.auction import multiplier_bids, serve
from adbot.market.batch import _play_episode, evaluate_multipliers
from adbot.market.scenario import Scenario

ALPHAS = np.array([0.05, 0.3, 1.0, 2.5, 9.0, 40.0])
SEEDS = (0, 6)

CASES: dict[str, dict[str, Any]] = {
    "cpa-target": {},
    "budget-bound": {"campaign__daily_budget": 12.0},
    "budget-bound-five-days": {"campaign__daily_budget": 12.0, "horizon__days": 5},
    "competitor-budgets": {"market__competitor_budget": {"mean": 3.0, "sd_log": 0.8}},
    "roas-target": {"campaign__target_cpa": None, "campaign__target_roas": 2.0},
    "no-target-24-steps": {"campaign__target_cpa": None, "horizon__steps_per_day": 24},
    "one-bid": {"campaign__min_bid": 1.0, "campaign__max_bid": 1.0},
    # Days without a clickable query are skipped by the batch (they add exactly 0): here the
    # middle of three days (start on a Friday; Saturday closed).
    "a-closed-day": {
        "horizon__days": 3,
        "market__weekday_profile": [1.0, 1.0, 1.0, 1.0, 1.1, 0.0, 0.7],
    },
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
    if case.startswith("budget-bound"):  # clicks cut off inside a day, for most multipliers
        assert sum(out_mid_day) > len(out_mid_day) // 2


@settings(max_examples=25, deadline=None)
@given(
    alphas=st.lists(st.floats(min_value=0.0, max_value=8.0), min_size=1, max_size=6),
    index=st.integers(min_value=0, max_value=15),
    budget=st.sampled_from([2.0, 30.0, 1e9]),
)
def test_a_step_played_in_the_batch_equals_serve(
    small: Scenario, alphas: list[float], index: int, budget: float
) -> None:
    """One step as a day of one step: ``_play_episode`` gives each bid vector ``serve``'s
    clicks, cost, conversions and value bit for bit, with the budget cut inside the step
    (the click that crosses it counts, later ones do not)."""
    sim = MarketSimulator(small, 0)
    bids = multiplier_bids(np.array(alphas), sim.keyword_values, sim.min_bid, sim.max_bid)
    step = sim.market.step(index)
    totals = _play_episode(
        step.keyword, step.comp_rank, step.quality, step.u_tie, step.u_click,
        step.u_conv < step.cvr, step.conv_value, np.array([step.n_queries]), 1, bids, budget,
        sim.rules.reserve, sim.rules.click_prob, step.comp_tied,
    )  # fmt: skip
    for row, vector in enumerate(bids):
        one = serve(step, vector, 0.0, budget, sim.rules)
        expected = (one.n_clicked, one.total_cost, one.n_converted, one.total_value)
        assert tuple(totals[:, row]) == expected, (row, budget)
