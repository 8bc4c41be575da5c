"""``fixed``: the same multiplier at every step (alpha 1 by default)."""

from __future__ import annotations

import numpy as np

from adbot.bidding.base import bids_from_alpha
from adbot.market.simulator import MarketSimulator, StepOutcome


class FixedPolicy:
    """Bid ``clip(alpha * v_k, min_bid, max_bid)`` all episode; ``fixed`` is alpha 1."""

    def __init__(self, alpha: float = 1.0, name: str = "fixed") -> None:
        self.name = name
        self.alpha: float | None = alpha
        self._alpha = alpha

    def reset(self, sim: MarketSimulator) -> None:
        self.alpha = self._alpha

    def bids(self, sim: MarketSimulator) -> np.ndarray:
        return bids_from_alpha(self._alpha, sim)

    def observe(self, outcome: StepOutcome) -> None:
        """A fixed policy learns nothing."""
