"""Per-keyword conversion-rate calibration: any policy's bids, corrected keyword by keyword
with what each keyword's realised conversions say about its predicted CVR.

A bidder's predicted CVR is off by a factor per keyword (MARKET.md: ``pcvr_noise``, a
lognormal error of sd 0.2-0.3 on the bundled scenarios). Every click reveals a little of
it: a keyword's realised conversions against its predicted ones (clicks x predicted CVR).
:class:`KeywordCalibration` keeps the gamma-Poisson posterior mean of that factor, with a
prior worth ``prior_conversions`` predicted conversions at factor 1::

    factor_k = (prior_conversions + conversions_k) / (prior_conversions + predicted_k)

so a keyword's bid moves only as its evidence grows (32 predicted conversions move it
halfway), and a keyword never clicked keeps a factor of 1.

The factors move spend between keywords; how much to spend in all stays the base policy's
decision (its pacing and its CPA or ROAS control know nothing of the factors).
:func:`spend_matched_bids` therefore scales the corrected bids so that, on the last played
step's auctions (the platform's bid simulator, as ``onlinelp`` uses it), they would have cost
what the base policy's bids would have. :class:`CalibratedPolicy` wraps a policy with both:
``calibrated:POLICY`` (``calibrated:onlinelp``, ``calibrated:ppo:PATH``); the shipped
``ppo:default`` plays calibrated (its ``ensemble.json``, ``keyword_calibration``).
"""

from __future__ import annotations

import math

import numpy as np

from adbot.bidding.base import Policy
from adbot.errors import InvalidInput
from adbot.market.simulator import MarketSimulator, StepOutcome

DEFAULT_PRIOR_CONVERSIONS = 32.0
# Common scales of the corrected bids tried against the base bids' cost: 0.4x to 2.5x,
# about 6 % apart, then interpolated.
MATCH_SCALES = np.geomspace(0.4, 2.5, 31)
MATCH_SCALES.flags.writeable = False
_ONE = np.ones(1)


def check_prior_conversions(value: object, where: str) -> float:
    """``value`` as a prior strength (a positive finite number), or ``InvalidInput`` naming
    ``where`` it came from."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(f"{where}: keyword calibration needs a number, got {value!r}")
    number = float(value)
    if not (math.isfinite(number) and number > 0):
        raise InvalidInput(
            f"{where}: keyword calibration's prior must be a positive finite number of "
            f"conversions, got {value!r}"
        )
    return number


class KeywordCalibration:
    """Realised and predicted conversions per keyword, and the correction factors."""

    def __init__(self, pcvr: np.ndarray, prior_conversions: float = DEFAULT_PRIOR_CONVERSIONS):
        self.prior = check_prior_conversions(prior_conversions, "KeywordCalibration")
        self.pcvr = np.asarray(pcvr, dtype=np.float64)
        self.realised = np.zeros(self.pcvr.shape[0])
        self.predicted = np.zeros(self.pcvr.shape[0])

    def record(self, outcome: StepOutcome) -> None:
        """Fold a step's per-keyword clicks and conversions in."""
        self.realised += outcome.conversions
        self.predicted += outcome.clicks * self.pcvr

    def factors(self) -> np.ndarray:
        """(K,) posterior mean of true / predicted CVR per keyword; 1 without evidence."""
        return (self.prior + self.realised) / (self.prior + self.predicted)


def spend_matched_bids(
    sim: MarketSimulator, bids: np.ndarray, factors: np.ndarray, fallback: float = 1.0
) -> tuple[np.ndarray, float]:
    """``bids x factors x scale`` (clipped to the campaign's bid limits; a keyword bid 0
    stays out) and the scale, chosen so the corrected bids would have cost on the last played
    step what ``bids`` would have.

    Before the first step, or when ``bids`` would have cost nothing on the last step (no
    queries, or bids under every price), the scale is ``fallback`` (the last one found)."""
    scale = fallback
    corrected = bids * factors
    if sim.step_index > 0:
        base_cost, costs = _costs(sim, sim.step_index - 1, bids, corrected)
        if base_cost > 0:
            scale = _matching_scale(costs, base_cost)
    return _limited(sim, corrected * scale), scale


def _costs(
    sim: MarketSimulator, index: int, bids: np.ndarray, corrected: np.ndarray
) -> tuple[float, np.ndarray]:
    """Expected cost on step ``index`` of ``bids``, and of the corrected bids at each of
    ``MATCH_SCALES``: with the compiled multiplier landscape when every bid is positive (the
    usual case: about 0.2 ms for a step of 250 queries), else bid vector by bid vector."""
    if bool(np.all(bids > 0)):
        base = sim.scaled_landscape(index, _ONE, bids).cost[0]
        return float(base), sim.scaled_landscape(index, MATCH_SCALES, corrected).cost
    base = sim.bid_landscape(index, bids[None, :]).cost[0]
    candidates = _limited(sim, MATCH_SCALES[:, None] * corrected[None, :])
    return float(base), sim.bid_landscape(index, candidates).cost


def _limited(sim: MarketSimulator, bids: np.ndarray) -> np.ndarray:
    """Bids within the campaign's limits, as ``MarketSimulator.validate_bids`` takes them: a
    bid of 0 (the keyword left out) stays 0."""
    return np.where(bids > 0, np.clip(bids, sim.min_bid, sim.max_bid), 0.0)


def _matching_scale(costs: np.ndarray, target: float) -> float:
    """The scale of ``MATCH_SCALES`` (log-interpolated) whose cost is ``target``; the end of
    the range when no scale reaches it or every scale passes it."""
    j = int(np.searchsorted(costs, target))  # costs rise with the scale
    if j == 0:
        return float(MATCH_SCALES[0])
    if j == costs.shape[0]:
        return float(MATCH_SCALES[-1])
    low, high = costs[j - 1], costs[j]
    share = (target - low) / (high - low) if high > low else 1.0
    log_scales = np.log(MATCH_SCALES[j - 1 : j + 1])
    return float(np.exp(log_scales[0] + share * (log_scales[1] - log_scales[0])))


class CalibratedPolicy:
    """A policy whose bids are corrected per keyword (:class:`KeywordCalibration`) and
    spend-matched (:func:`spend_matched_bids`). ``alpha`` is the base policy's multiplier;
    the name is ``calibrated:BASE`` unless given (``ppo:default`` keeps its own)."""

    name: str

    def __init__(
        self,
        base: Policy,
        prior_conversions: float = DEFAULT_PRIOR_CONVERSIONS,
        *,
        name: str | None = None,
    ):
        if isinstance(base, CalibratedPolicy):
            raise InvalidInput(f"policy {base.name} is calibrated already")
        self.base = base
        self.name = f"calibrated:{base.name}" if name is None else name
        self.prior_conversions = check_prior_conversions(prior_conversions, base.name)
        self._calibration: KeywordCalibration | None = None
        self._scale = 1.0

    @property
    def alpha(self) -> float | None:
        return getattr(self.base, "alpha", None)

    def reset(self, sim: MarketSimulator) -> None:
        self.base.reset(sim)
        self._calibration = KeywordCalibration(sim.pcvr, self.prior_conversions)
        self._scale = 1.0

    def bids(self, sim: MarketSimulator) -> np.ndarray:
        if self._calibration is None:
            raise InvalidInput("reset the policy before asking for bids")
        bids = sim.validate_bids(self.base.bids(sim))  # a NaN names the base policy's fault
        corrected, self._scale = spend_matched_bids(
            sim, bids, self._calibration.factors(), self._scale
        )
        return corrected

    def observe(self, outcome: StepOutcome) -> None:
        if self._calibration is None:
            raise InvalidInput("observe() before bids()")
        self.base.observe(outcome)
        self._calibration.record(outcome)


def make_calibrated_policy(spec: str) -> CalibratedPolicy:
    """The ``calibrated:`` factory: ``calibrated:POLICY`` wraps ``make_policy(POLICY)``."""
    from adbot.bidding.registry import make_policy  # the registry imports this module

    if not spec:
        raise InvalidInput("policy 'calibrated:' needs a policy to wrap: calibrated:POLICY")
    return CalibratedPolicy(make_policy(spec))
