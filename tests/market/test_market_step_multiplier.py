"""``MarketSimulator.step_multiplier``: the env's fast path gives exactly ``step``'s outcome."""

from __future__ import annotations

import numpy as np
import pytest

from adbot.errors import InvalidInput
from adbot.market import MarketSimulator, StepOutcome
from adbot.market.auction import multiplier_bids
from adbot.market.scenario import Scenario


@pytest.mark.parametrize("alpha", [0.001, 0.3, 1.7, 400.0])
def test_multiplier_steps_equal_bid_steps(small: Scenario, alpha: float) -> None:
    by_alpha, by_bids = MarketSimulator(small, 4), MarketSimulator(small, 4)
    while not by_alpha.done:
        bids = multiplier_bids(
            np.array([alpha]),
            by_bids.keyword_values,
            small.campaign.min_bid,
            small.campaign.max_bid,
        )
        fast, slow = by_alpha.step_multiplier(alpha), by_bids.step(bids[0])
        for name in StepOutcome._fields:
            assert np.array_equal(getattr(fast, name), getattr(slow, name)), name
    assert by_alpha.totals() == by_bids.totals()
    for bad in (float("nan"), float("inf"), 0.0, -1.0):
        with pytest.raises(InvalidInput, match="multiplier"):
            MarketSimulator(small, 4).step_multiplier(bad)
    with pytest.raises(InvalidInput, match="over"):
        by_alpha.step_multiplier(1.0)
