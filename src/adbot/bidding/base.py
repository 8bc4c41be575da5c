"""The policy protocol and the multiplier helper every baseline uses."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from adbot.market.auction import multiplier_bids
from adbot.market.simulator import MarketSimulator, StepOutcome

ALPHA_MIN, ALPHA_MAX = 0.02, 50.0


@runtime_checkable
class Policy(Protocol):
    """Sets a max CPC per keyword at each step of a ``MarketSimulator`` episode.

    ``reset`` starts an episode, ``bids`` is called before each step and returns (K,)
    bids, ``observe`` receives the step's outcome. Multiplier policies also expose the
    ``alpha`` they used last (``None`` before the first step), for traces.
    """

    name: str

    def reset(self, sim: MarketSimulator) -> None: ...

    def bids(self, sim: MarketSimulator) -> np.ndarray: ...

    def observe(self, outcome: StepOutcome) -> None: ...


def bids_from_alpha(alpha: float, sim: MarketSimulator) -> np.ndarray:
    """MARKET.md's multiplier bid: ``clip(alpha * v_k, min_bid, max_bid)``, shape (K,)."""
    return multiplier_bids(np.array([alpha]), sim.keyword_values, sim.min_bid, sim.max_bid)[0]


def natural_alpha(sim: MarketSimulator) -> float:
    """The multiplier that bids each click's predicted worth against the campaign's target.

    With a CPA target, ``v_k = pcvr_k * target_cpa`` is already that (alpha 1); with a ROAS
    target, ``v_k = pcvr_k * mean value`` must be divided by the target ROAS; with neither,
    bidding the expected value (alpha 1) is the break-even bid.
    """
    campaign = sim.scenario.campaign
    if campaign.target_cpa is None and campaign.target_roas is not None:
        return float(np.clip(1.0 / campaign.target_roas, ALPHA_MIN, ALPHA_MAX))
    return 1.0
