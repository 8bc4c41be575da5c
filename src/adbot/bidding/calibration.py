"""Keyword-level bidding on top of any policy: each keyword's predicted CVR calibrated by
what its clicks revealed, and the money spread over keywords by what their auctions cost.

A policy that sets one multiplier bids ``alpha x pCVR_k x R`` on every keyword. Two things
that one number cannot see are worth several points of the oracle's score:

**Each keyword's prediction error.** A bidder's predicted CVR is off by a factor per keyword
(MARKET.md: ``pcvr_noise``, a lognormal error of sd 0.2-0.3 on the bundled scenarios).
:class:`KeywordCalibration` keeps the posterior mean of true over predicted CVR per keyword:
gamma-Poisson, with a prior worth ``prior_conversions`` predicted conversions::

    factor_k = (prior_conversions x m_k + conversions_k) / (prior_conversions + predicted_k)

where ``predicted_k`` is clicks x predicted CVR and ``m_k`` the prior mean. The prior is not 1:
a prediction drawn with a lognormal error regresses to the mean (a keyword predicted far
above the campaign's usual CVR is more likely over- than under-predicted), and
:func:`prior_factor_means` is that expectation, ``E[true / predicted | predicted]``, from the
scenario's CVR distribution and the prediction's documented error (as a bidder knows its
conversion model's validation error), before any click.

**Each keyword's auctions.** Under the generalised second price, what a keyword's next click
costs depends on the slots and rivals of its own auctions, so one multiplier over-pays on some
keywords and under-bids others. :class:`KeywordLandscapes` keeps each keyword's expected
clicks and cost at every multiplier of ``ALLOCATION_GRID`` on the steps already played (the
platform's bid simulator, as ``onlinelp`` uses it; a step's weight halves every day), and
:meth:`KeywordLandscapes.allocate` gives every keyword the bid that maximises
``lambda x willingness_k x clicks - cost`` on its own landscape (equal marginal return on
every keyword), with the one ``lambda`` at which the keywords together would have cost what
the policy's own bids would have (where a keyword's argmax jumps over a stretch of its bids
at that ``lambda``, it bids only as far into the jump as reaches that spend). The policy still
decides how much to spend; this decides where. A keyword seen in too few auctions for its
landscape to say much (``MIN_LANDSCAPE_CLICKS``) bids its calibrated worth, the policy's bid
times its factor.
:class:`CalibratedPolicy` wraps a policy with both: ``calibrated:POLICY``
(``calibrated:onlinelp``, ``calibrated:ppo:PATH``); the shipped ``ppo:default`` plays
calibrated (its ``ensemble.json``, ``keyword_calibration``).
"""

from __future__ import annotations

import math

import numpy as np

from adbot.bidding.base import Policy
from adbot.errors import InvalidInput
from adbot.market import libm
from adbot.market.scenario import Market
from adbot.market.simulator import MOST_OF_DAY, MarketSimulator, StepOutcome

DEFAULT_PRIOR_CONVERSIONS = 32.0
# Multipliers of each keyword's value at which its landscape is kept: the oracle's range,
# about 4 % apart (the resolution of a keyword's bid).
ALLOCATION_GRID = libm.geomspace(0.02, 50.0, 193)
ALLOCATION_GRID.flags.writeable = False
_LOG_ALLOCATION_GRID = libm.log(ALLOCATION_GRID)
_LOG_ALLOCATION_GRID.flags.writeable = False
# The range searched for lambda, relative to the policy's own bids, and its precision.
LAMBDA_RANGE = (1.0 / 16.0, 16.0)
LAMBDA_STEPS = 14  # bisections in log lambda: a relative precision of about 0.03 %
# Bisections of the share of a jump of the argmax (``_fill_jump``): finer than one grid step
# of a jump across the whole grid (193 points).
JUMP_STEPS = 10
# A keyword's own landscape is used once it holds this many expected clicks at the top of the
# grid (some ten auctions): on fewer, its argmax would fit the rivals' bids of those few.
MIN_LANDSCAPE_CLICKS = 1.0
# A prior never moves a keyword's bid by more than this factor either way.
PRIOR_FACTOR_LIMIT = 4.0
# The largest multiplier a clipped bid's worth is taken at (policies plan within 0.02-50).
WANTED_ALPHA_CAP = 1e6


def check_prior_conversions(value: object, where: str) -> float:
    """``value`` as a prior strength (a positive finite number), or ``InvalidInput`` naming
    ``where`` it came from."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(f"{where}: keyword calibration needs a number, got {value!r}")
    try:
        number = float(value)
    except OverflowError:  # an integer past float range (10**400)
        number = math.inf
    if not (math.isfinite(number) and number > 0):
        raise InvalidInput(
            f"{where}: keyword calibration's prior must be a positive finite number of "
            f"conversions, got {value!r}"
        )
    return number


def prior_factor_means(market: Market, pcvr: np.ndarray) -> np.ndarray:
    """(K,) ``E[true CVR / predicted CVR | predicted CVR]`` under the scenario's model: true
    CVRs lognormal (``market.cvr``), predictions the true CVR times a mean-one lognormal error
    of sd ``market.pcvr_noise``. With ``w = noise^2 / (sd_log^2 + noise^2)``, the share of a
    prediction's spread that is error, the log error given the prediction is normal with mean
    ``-noise^2 / 2 + w x (log pCVR - mu + noise^2 / 2)`` (``mu`` the mean log true CVR) and
    variance ``w x sd_log^2``; the factor is the lognormal mean of minus that. Limited to
    ``PRIOR_FACTOR_LIMIT`` either way (the caps on CVRs at 0.95 and 1 are outside the model)."""
    noise2, spread2 = market.pcvr_noise**2, market.cvr.sd_log**2
    predicted = np.asarray(pcvr, dtype=np.float64)
    if noise2 == 0.0:
        return np.ones_like(predicted)
    share = noise2 / (spread2 + noise2)
    mean_log_true = math.log(market.cvr.mean) - spread2 / 2.0
    log_predicted = libm.log(np.maximum(predicted, np.finfo(np.float64).tiny))
    log_error = -noise2 / 2.0 + share * (log_predicted - mean_log_true + noise2 / 2.0)
    log_factor = -log_error + share * spread2 / 2.0
    limit = math.log(PRIOR_FACTOR_LIMIT)
    return libm.exp(np.clip(log_factor, -limit, limit))


class KeywordCalibration:
    """Realised and predicted conversions per keyword, and the correction factors."""

    def __init__(
        self,
        pcvr: np.ndarray,
        prior_conversions: float = DEFAULT_PRIOR_CONVERSIONS,
        prior_means: np.ndarray | None = None,
    ):
        self.prior = check_prior_conversions(prior_conversions, "KeywordCalibration")
        self.pcvr = np.asarray(pcvr, dtype=np.float64)
        self.realised = np.zeros(self.pcvr.shape[0])
        self.predicted = np.zeros(self.pcvr.shape[0])
        self.prior_means = (
            np.ones(self.pcvr.shape[0])
            if prior_means is None
            else np.asarray(prior_means, dtype=np.float64)
        )

    def record(self, outcome: StepOutcome) -> None:
        """Fold a step's per-keyword clicks and conversions in."""
        self.realised += outcome.conversions
        self.predicted += outcome.clicks * self.pcvr

    def factors(self) -> np.ndarray:
        """(K,) posterior mean of true / predicted CVR per keyword; the prior mean without
        evidence."""
        return (self.prior * self.prior_means + self.realised) / (self.prior + self.predicted)


class KeywordLandscapes:
    """Each queried keyword's expected clicks and cost at every multiplier of
    ``ALLOCATION_GRID`` (bids ``clip(alpha x v_k)``), summed over the played steps, a step's
    weight halving every day (``MarketSimulator.keyword_landscape``: one compiled pass over a
    step's queries). Rows are the keywords queried so far (``keywords``, ascending), so the
    memory grows with the queries played, not with an account's keywords."""

    def __init__(self, sim: MarketSimulator):
        self.values = sim.keyword_values
        self.limits = (sim.min_bid, sim.max_bid)
        self.keywords = np.zeros(0, dtype=np.intp)
        self.clicks = np.zeros((0, ALLOCATION_GRID.shape[0]))
        self.cost = np.zeros_like(self.clicks)
        self.decay = 0.5 ** (1.0 / sim.steps_per_day)
        self.steps = 0

    def update(self, sim: MarketSimulator) -> None:
        """Fold in the steps played since the last update."""
        while self.steps < sim.step_index:
            keywords, landscape = sim.keyword_landscape(self.steps, ALLOCATION_GRID)
            self.clicks *= self.decay
            self.cost *= self.decay
            self._add_rows(keywords)
            rows = np.searchsorted(self.keywords, keywords)
            self.clicks[rows] += landscape.clicks
            self.cost[rows] += landscape.cost
            self.steps += 1

    def _add_rows(self, keywords: np.ndarray) -> None:
        """Zero rows for the keywords of ``keywords`` (ascending) not seen before."""
        new = np.setdiff1d(keywords, self.keywords, assume_unique=True)
        if new.shape[0] == 0:
            return
        merged = np.union1d(self.keywords, new)
        old = np.searchsorted(merged, self.keywords)
        for name in ("clicks", "cost"):
            grown = np.zeros((merged.shape[0], ALLOCATION_GRID.shape[0]))
            grown[old] = getattr(self, name)
            setattr(self, name, grown)
        self.keywords = merged

    def allocate(self, willingness: np.ndarray, bids: np.ndarray) -> tuple[np.ndarray, float]:
        """Bids that spread what ``bids`` would cost over the keywords by their landscapes,
        and lambda. ``willingness`` (K,) is what a click of each keyword is worth in the
        policy's currency (its calibrated bid). Each keyword whose landscape holds
        ``MIN_LANDSCAPE_CLICKS`` bids the grid point that maximises ``lambda x willingness_k x
        clicks - cost`` (the lowest of equals), and lambda is the least at which they together
        would have cost, on their landscapes, at least what ``bids`` would have (within
        ``LAMBDA_RANGE``); the keywords whose argmax jumps at that lambda bid part of their
        jump instead, as little as reaches that cost (``_fill_jump``). The other keywords bid
        their willingness; a bid of 0 stays 0.
        Without a landscape to use (nothing played, too few auctions yet) lambda is NaN and
        the bids are 0."""
        bidding = bids > 0
        rows = bidding[self.keywords] & (self.clicks[:, -1] >= MIN_LANDSCAPE_CLICKS)
        if not rows.any():
            return np.zeros_like(bids), math.nan
        known = self.keywords[rows]
        clicks, cost, values = self.clicks[rows], self.cost[rows], self.values[known]
        with np.errstate(divide="ignore"):  # a value of 0 (a target of 5e-324): bid / 0
            target = float(_interpolated(cost, bids[known] / values).sum())
        worth = willingness[known][:, None] * clicks
        index = np.arange(clicks.shape[0])

        def spend(log_lambda: float) -> float:
            best = np.argmax(math.exp(log_lambda) * worth - cost, axis=1)
            return float(cost[index, best].sum())

        low, high = math.log(LAMBDA_RANGE[0]), math.log(LAMBDA_RANGE[1])
        reached = spend(high) >= target
        if reached:
            for _ in range(LAMBDA_STEPS):  # keeps spend(high) >= target
                middle = 0.5 * (low + high)
                if spend(middle) >= target:
                    high = middle
                else:
                    low = middle
        lam = math.exp(high)
        best = np.argmax(lam * worth - cost, axis=1)
        if reached:
            below = np.argmax(math.exp(low) * worth - cost, axis=1)
            if cost[index, below].sum() < target:
                best = _fill_jump(cost, below, best, target)
        allocated = willingness.copy()
        allocated[known] = ALLOCATION_GRID[best] * values
        return np.where(bidding, np.clip(allocated, *self.limits), 0.0), lam


def _fill_jump(cost: np.ndarray, below: np.ndarray, above: np.ndarray, target: float) -> np.ndarray:
    """Grid indices between ``below`` and ``above`` (each keyword's argmax just under and at
    the least lambda), each keyword the same share of the way, at the least share whose total
    cost reaches ``target``.

    The argmax of ``lambda x worth x clicks - cost`` only takes the points of a landscape's
    lower convex hull; where a keyword's landscape is not convex (a slot won only above some
    bid), its argmax jumps over a stretch of bids at one lambda, and the spend with it. Among
    dozens of keywords the jump is one keyword's share; with one keyword it is the spend: a
    campaign of one keyword bid 1.06 where the policy bid 0.71, spent its day's budget by
    midday, and scored half of the policy's own bids (0.61 of the oracle against 1.20). The
    keywords that jump move together, each by the same share of its jump, to the least share
    that reaches the target: one keyword bids where its landscape costs what the policy's bid
    would have."""
    rows = np.arange(cost.shape[0])
    gap = above - below
    low, high = 0.0, 1.0  # shares of the jump: cost(low) < target <= cost(high)
    for _ in range(JUMP_STEPS):
        middle = 0.5 * (low + high)
        if cost[rows, below + np.floor(middle * gap).astype(np.intp)].sum() >= target:
            high = middle
        else:
            low = middle
    return below + np.floor(high * gap).astype(np.intp)


def _interpolated(curves: np.ndarray, alphas: np.ndarray) -> np.ndarray:
    """Each row of ``curves`` (on ``ALLOCATION_GRID``) at its own multiplier, interpolated
    linearly in log alpha (the ends held)."""
    position = np.interp(libm.log(alphas), _LOG_ALLOCATION_GRID, np.arange(ALLOCATION_GRID.size))
    below = np.floor(position).astype(np.intp)
    above = np.minimum(below + 1, ALLOCATION_GRID.size - 1)
    share = position - below
    rows = np.arange(curves.shape[0])
    return curves[rows, below] * (1.0 - share) + curves[rows, above] * share


class KeywordBidder:
    """Per-keyword bids from a policy's bids on one episode: each keyword's CVR calibrated
    (:class:`KeywordCalibration`, with the prior of :func:`prior_factor_means`) and the
    money spread by the keywords' landscapes (:class:`KeywordLandscapes`) at the cost of the
    policy's own bids. :class:`CalibratedPolicy` plays a policy through one; the RL env does
    too when its config says so (``env.keyword_calibration``), so an agent trains on the
    bids it will play."""

    def __init__(self, sim: MarketSimulator, prior_conversions: float):
        means = prior_factor_means(sim.scenario.market, sim.pcvr)
        self.calibration = KeywordCalibration(sim.pcvr, prior_conversions, means)
        self.landscapes = KeywordLandscapes(sim)
        # The prior's level taken out (it is exp(pcvr_noise^2) on average): a keyword's
        # willingness is the policy's bid where no click has told anything yet.
        self.level = 1.0 / float(np.mean(means))

    def bids(
        self, sim: MarketSimulator, bids: np.ndarray, alpha: float | None = None
    ) -> np.ndarray:
        """The keyword bids for the coming step of ``sim`` from the policy's valid ``bids``,
        and its multiplier ``alpha`` if it bids one (``bids`` is then ``alpha x v_k`` clipped
        to the campaign's limits)."""
        wanted = bids
        if alpha is not None:
            # A bid clipped to max_bid says the policy would pay more: its worth is the bid it
            # wanted. Taken at max_bid, a keyword whose calibration factor is under 1 was bid
            # below max_bid, and no other keyword could spend the difference (they are at
            # max_bid too): with max_bid at half the market's CPC, 7 % of the score was lost.
            # Past WANTED_ALPHA_CAP a multiplier only says "bid every keyword up": larger
            # (fixed:1e308) overflowed the worths, and the argmax took the grid's lowest bid.
            capped = min(alpha, WANTED_ALPHA_CAP)
            wanted = np.where(bids >= sim.max_bid, capped * sim.keyword_values, bids)
        willingness = wanted * self.calibration.factors() * self.level
        self.landscapes.update(sim)
        allocated, lam = self.landscapes.allocate(willingness, bids)
        if math.isnan(lam):  # no landscape to use yet
            if sim.forecast_share_of_day(sim.step_index) > MOST_OF_DAY:
                # No landscape keeps the spend of the bids spread by the prior factors: on a
                # step that is most of its day (one step a day) they spent a fifth less than
                # the policy's own and lost that day's conversions (`tight-budget` at one step
                # a day, 0.713 of the oracle against the policy's 0.869).
                return bids
            return np.where(bids > 0, np.clip(willingness, sim.min_bid, sim.max_bid), 0.0)
        return allocated

    def record(self, outcome: StepOutcome) -> None:
        """Fold a played step's clicks and conversions into the calibration."""
        self.calibration.record(outcome)


class CalibratedPolicy:
    """A policy whose bids go through a :class:`KeywordBidder`: calibrated per keyword and
    spread over the keywords by their landscapes, at the cost of the policy's own bids.
    ``alpha`` is the base policy's multiplier; the name is ``calibrated:BASE`` unless given
    (``ppo:default`` keeps its own)."""

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
        self._bidder: KeywordBidder | None = None

    @property
    def alpha(self) -> float | None:
        return getattr(self.base, "alpha", None)

    def reset(self, sim: MarketSimulator) -> None:
        self.base.reset(sim)
        self._bidder = KeywordBidder(sim, self.prior_conversions)

    def bids(self, sim: MarketSimulator) -> np.ndarray:
        if self._bidder is None:
            raise InvalidInput("reset the policy before asking for bids")
        bids = sim.validate_bids(self.base.bids(sim))  # a NaN names the base policy's fault
        return self._bidder.bids(sim, bids, self.alpha)

    def observe(self, outcome: StepOutcome) -> None:
        if self._bidder is None:
            raise InvalidInput("observe() before bids()")
        self.base.observe(outcome)
        self._bidder.record(outcome)


def make_calibrated_policy(spec: str) -> CalibratedPolicy:
    """The ``calibrated:`` factory: ``calibrated:POLICY`` wraps ``make_policy(POLICY)``."""
    from adbot.bidding.registry import make_policy  # the registry imports this module

    if not spec:
        raise InvalidInput("policy 'calibrated:' needs a policy to wrap: calibrated:POLICY")
    return CalibratedPolicy(make_policy(spec))
