"""The prior multiplier an agent's action is relative to, planned from the bid landscape.

After each step the platform's bid simulator (``MarketSimulator.multiplier_landscape``:
expected clicks, cost and predicted conversions of other multipliers on a step already
played; no future and no hidden draws) is read on a fixed log grid of multipliers. The
landscapes are summed with exponential forgetting into per-query rates: cost ``c(alpha)``
and predicted conversions ``n(alpha)``, once slowly (``FORGET``, about a day of memory,
the estimate) and once quickly (``FAST_FORGET``, the last few steps, to see trends such as
competitors running out of budget).

Two multipliers follow from the slow rates:

* ``alpha_budget``: the largest multiplier whose expected spend over the traffic still
  forecast today fits in what is left of today's budget;
* ``alpha_goal``: the multiplier that maximises the MARKET.md score of the episode's final
  totals, predicted as realised totals so far plus, for the rest of today and each later
  day, the spend ``c`` times that day's traffic forecast capped at the day's budget, with
  conversions in proportion (``n / c`` per unit of spend, scaled by the calibration factor
  of :class:`adbot.rl.features.PacingState`).

The slow plan is ``min(alpha_budget, alpha_goal)``: when the budget binds, the cheapest
multiplier that still spends it wins the most conversions; otherwise the goal decides.
The same plan on the fast rates (``alpha_fast``) follows the last few steps (a price shock,
competitors running out of budget during the day). The prior is their geometric blend,
``alpha_slow^(1 - FAST_WEIGHT) x alpha_fast^FAST_WEIGHT``. With steps of two hours or
less (``FORGET_DAY_MIN_STEPS``) the fast memory is of today only: it is emptied before a
day's first step is planned (``forget_day``), which the slow plan then decides alone.
Yesterday's last hours are no guide to today's first: where
competitors' budgets ran out by evening, their late auctions cost the reserve price at any
bid, the fast plan read that as "any multiplier fits the budget" (39 of a grid up to 50),
and carried into the morning, when every budget is fresh, the blend bid 2.7 and spent the
whole day's budget in its first hour, every day of a week (0.36 of the oracle's score).
The agents of ``ppo:default`` trained before this, with the fast memory kept overnight; a
training env keeps it so unless its config asks otherwise (``env.fast_memory_by_day``), so
that they retrain to the same weights.

The slow memory follows a lasting change of rivals' prices in about two days, and a month at
one step a day. So each day's end compares the day's landscape with the last day's
(``_end_day``): where rivals' prices moved by more than ``PRICE_SHIFT`` either way, both
memories start again from the day just played. With fewer steps a day than
``FORGET_DAY_MIN_STEPS``, where the memories span days to weeks, a smaller clean move (more
than ``PRICE_MOVE``) moves the earlier days' landscapes by the same factor instead
(``_shift_memory``), keeping their evidence at today's prices.

Each step's arithmetic (both plans, the rates at the slow plan, the elasticity) is one
compiled pass, :func:`_plan_kernel`, over the rates' float arrays; in numpy it was mostly
call overhead on (2, 97) arrays. Folding the new landscape in and planning is one compiled
function, ``_add_and_plan_kernel`` (:meth:`LandscapePlanner.add_step_and_plan` from Python;
the bidder's step, ``PacingState``'s compiled record, calls it inside its own): every
compiled call costs about a tenth of a microsecond per array it is handed. The kernel is
that numpy arithmetic written out element by element (tests/rl/test_planner.py keeps the
numpy version as the reference): the same grid points, floats equal up to the last bit
where a sum runs in another order (the fine grid was a BLAS product, a sum over 8 or more
later days was numpy's pairwise sum).

Later days come as a (2, n) array, ``later_days``: a traffic figure and how many days have
it. Up to ``GROUP_LATER_AFTER`` days each is its own column, counted once, in order (the
sums of a day-by-day loop, bit for bit: every training draw and bundled scenario has a
week or less); past that, days of equal traffic are one column (weekdays, shocks: a few),
so a step of a years-long scenario costs the grid times those few, not times the days left.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numba
import numpy as np

from adbot.market import libm
from adbot.market.scenario import Campaign
from adbot.market.simulator import MarketSimulator

GRID = libm.exp(np.linspace(math.log(0.02), math.log(50.0), 33))
LOG_GRID = libm.log(GRID)
FINE_LOG_GRID = np.linspace(LOG_GRID[0], LOG_GRID[-1], 97)
# Constants: read-only, so the simulator checks the landscape grid once, not every step.
for _grid in (GRID, LOG_GRID, FINE_LOG_GRID):
    _grid.flags.writeable = False
del _grid
FORGET = 0.97  # per-step weight of older landscapes in the estimate
FAST_FORGET = 0.6  # the same for the short-memory rates behind the trend features
FAST_WEIGHT = 0.5  # weight of the fast plan in the prior (log scale); chosen on random draws
GROUP_LATER_AFTER = 64  # later days past which days of equal traffic are summed as one
# Days of at least this many steps empty the fast memory at their start (``forget_day``):
# its span, 1 / (1 - FAST_FORGET) = 2.5 steps, is then a few hours of one day. At coarser
# steps it spans much of a day or more (10 hours at 6 steps a day, over a day at 1 or 2),
# the only memory quick enough to follow a change (the slow one spans 33 steps: 16 days at
# two steps a day), and is kept.
FORGET_DAY_MIN_STEPS = 12


def later_days(traffic: np.ndarray) -> np.ndarray:
    """(2, n) float64: each later day's traffic and 1 (day by day), or past
    ``GROUP_LATER_AFTER`` days each distinct traffic figure and how many days have it."""
    traffic = np.asarray(traffic, dtype=np.float64)
    if traffic.shape[0] <= GROUP_LATER_AFTER:
        return np.stack((traffic, np.ones_like(traffic)))
    figures, counts = np.unique(traffic, return_counts=True)
    return np.stack((figures, counts.astype(np.float64)))


CALIBRATION_PRIOR = 20.0  # predicted conversions of pseudo-evidence that calibration is 1

# The campaign's goal as the kernel takes it (MARKET.md score): a kind and its target.
GOAL_CPA, GOAL_ROAS, GOAL_VALUE = 0, 1, 2
TIE_TOLERANCE = 1e-9  # scores within this relative distance of the best count as equal
# A forgotten query count at or under this is empty: a day without traffic takes the fast
# count down 0.6^steps_per_day, and near the smallest floats (1e-308) the count and the sums
# it divides lose their digits before they reach 0.
EMPTY_COUNT = 1e-250
# Rows of ``LandscapePlanner.rates``: the slow and the fast memory, then today's landscapes
# summed and the last day's (with traffic) predicted conversions, for the price check
# (``_end_day``), and the day's before it, then today's share of the slow and the fast memory
# (today's landscapes forgotten as the memories forget them: ``_shift_memory`` moves the
# rest). Entries of ``LandscapePlanner.queries``: SLOW, FAST, DAY, LAST_DAY, EARLIER_DAY.
(
    SLOW_COST, SLOW_CONV, FAST_COST, FAST_CONV, DAY_COST, DAY_CONV, LAST_DAY_CONV,
    EARLIER_DAY_CONV, TODAY_SLOW_COST, TODAY_SLOW_CONV, TODAY_FAST_COST, TODAY_FAST_CONV,
) = range(12)  # fmt: skip
N_RATE_ROWS = TODAY_FAST_CONV + 1
SLOW, FAST, DAY, LAST_DAY, EARLIER_DAY = range(5)
# A day's end compares its landscape of predicted conversions per query with the last day's:
# rivals' prices multiplied by m move it along the multiplier axis by m (the same clicks at m
# times the bid), and neither the volume nor the conversion rate moves it. Where the move
# is more than PRICE_SHIFT either way, by the same factor at every level of the curve (the
# spread of the levels' moves at most PRICE_SPREAD in log), on at least PRICE_MIN_QUERIES
# queries each day, both memories start again from the day: after rivals' prices x5 the slow one
# took four days to climb to the new prices (``benchmarks/stress.py`` ``cpc-x5-budget``), a
# month at one step a day. The agents trained on price shocks of x0.6-1.8: on 442 day ends of
# training draws the largest clean move was x1.66. Markets whose rivals run out of budget
# move day to day by x0.2-8 with no shock, but unevenly (spreads of 0.6-3.8): not a price
# level, and left to the memories as they are.
PRICE_SHIFT = 2.5
# At fewer steps a day than FORGET_DAY_MIN_STEPS a clean move beyond PRICE_MOVE (and within
# PRICE_SHIFT) moves the memories' earlier landscapes by it: at one step a day the slow memory
# spans a month, and rivals' prices x1.28 on a landscape where spend grows as the multiplier
# to the 7th (spend x5.6) kept the plan at the old prices for the rest of a week, spending a
# third of the budget. Day to day, with no shock and rivals without budgets, the move measured
# at one step a day stays within x1.06 (169 day ends of 64 draws); shocks of x0.74-1.8 measure
# within 0.07 of their log. Rivals' budgets make it noisier (x1.27 at most in 51 day ends).
PRICE_MOVE = 1.15
PRICE_SPREAD = 0.3
PRICE_MIN_QUERIES = 200.0
PRICE_LEVELS = (0.05, 0.8)  # the curve's levels compared, as shares of its top (the lower top)
PRICE_MIN_POINTS = 3  # grid points on those levels needed for a move
FLAT_TOLERANCE = 1e-6  # relative rise under which a curve's next grid point is flat


def _interpolation_matrix(at: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """(len(grid), len(at)): ``values @ M`` is ``np.interp(at, grid, values)``."""
    return np.stack([np.interp(at, grid, row) for row in np.eye(grid.shape[0])])


def _fine_weights() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each fine point's lower coarse neighbour and the two weights of the linear
    interpolation matrix that are not zero (the rest of its column is)."""
    to_fine = _interpolation_matrix(FINE_LOG_GRID, LOG_GRID)
    columns = np.arange(FINE_LOG_GRID.shape[0])
    lower = np.searchsorted(LOG_GRID, FINE_LOG_GRID, side="right") - 1
    lower = np.clip(lower, 0, LOG_GRID.shape[0] - 2)
    return lower, to_fine[lower, columns], to_fine[lower + 1, columns]


_FINE_LOWER, _FINE_W_LOWER, _FINE_W_UPPER = _fine_weights()
# Each fine point's multiplier, Python's math.exp of its log (read by the kernel).
_FINE_ALPHA = np.array([math.exp(x) for x in FINE_LOG_GRID.tolist()])
_FINE_ALPHA.flags.writeable = False


class Plan(NamedTuple):
    """The prior and what it was planned from (a named tuple: built at every step)."""

    alpha_budget: float
    alpha_goal: float
    alpha_prior: float
    elasticity: float  # d log cost / d log alpha at the prior
    cost_trend: float  # log(recent / long-run spend per query) at the prior, clipped
    efficiency_trend: float  # log(recent / long-run conversions per cost) at the prior
    alpha_slow: float  # the plan on the long-memory rates alone
    alpha_fast: float  # the plan on the short-memory rates alone


def goal_of(campaign: Campaign) -> tuple[int, float]:
    """The campaign's goal kind and target (0.0 for the value goal, which has none)."""
    if campaign.target_cpa is not None:
        return GOAL_CPA, float(campaign.target_cpa)
    if campaign.target_roas is not None:
        return GOAL_ROAS, float(campaign.target_roas)
    return GOAL_VALUE, 0.0


class LandscapePlanner:
    """Running landscape rates of one episode and the plan they imply.

    The rates live in two arrays the kernels update in place: ``rates`` (rows ``SLOW_COST``,
    ``SLOW_CONV``, ``FAST_COST``, ``FAST_CONV``, then today's sums and the two days' before
    for the price check, one column per ``GRID`` point) and ``queries`` (the slow and the
    fast forgotten query counts, then those days' queries).
    """

    def __init__(self, sim: MarketSimulator) -> None:
        self.sim = sim
        self.rates = np.zeros((N_RATE_ROWS, GRID.shape[0]))
        self.queries = np.zeros(EARLIER_DAY + 1)
        self.steps = 0
        campaign = sim.scenario.campaign
        self._goal, self._target = goal_of(campaign)
        self._mean_value = float(campaign.conversion_value.mean)
        self._daily_budget = float(campaign.daily_budget)

    @property
    def has_data(self) -> bool:
        return bool(_has_data(self.rates, self.queries))

    def fold(self, cost: np.ndarray, conversions: np.ndarray, queries: float) -> None:
        """Fold one step's landscape (cost and conversions on ``GRID``) into the rates."""
        _forget_and_add(self.rates, self.queries, cost, conversions, float(queries))

    def prepare(self) -> None:
        """Draw the next step's day and its landscapes now (``MarketSimulator.prepare``)."""
        self.sim.prepare(GRID)

    def add_step(self, index: int, queries: float) -> None:
        """Fold the landscape of played step ``index`` into the rates."""
        view = self.sim.multiplier_landscape(index, GRID)
        self.fold(view.cost, view.conversions, queries)
        self.steps += 1

    def forget_day(self) -> None:
        """Empty the fast memory before a new day's first step is planned (``_forget_day``)."""
        _forget_day(self.rates, self.queries)

    def end_day(self, *, follow_moves: bool = False) -> bool:
        """After a day's last step: the price check (``_end_day``; ``follow_moves`` as it
        takes it); whether the slow memory started again."""
        return bool(_end_day(self.rates, self.queries, follow_moves))

    def plan(
        self,
        *,
        budget_left_today: float,
        traffic_left_today: float,
        traffic_later_days: np.ndarray,
        realised: tuple[float, float, float],
        calibration: float,
        fallback_alpha: float,
        later_days_scale: float = 1.0,
    ) -> Plan:
        """The prior for the next step; ``realised`` is (cost, conversions, value) so far.

        Each later day's traffic is ``traffic_later_days x later_days_scale`` (one figure a
        day, grouped as :func:`later_days` does).
        """
        if not self.has_data:
            return fallback_plan(fallback_alpha)
        r_cost, r_conv, r_value = realised
        return Plan._make(
            _plan_kernel(
                self.rates, self.queries, float(budget_left_today), float(traffic_left_today),
                later_days(traffic_later_days), float(later_days_scale), float(r_cost),
                float(r_conv), float(r_value), float(calibration), self._daily_budget,
                self._goal, self._target, self._mean_value,
            )
        )  # fmt: skip

    def add_step_and_plan(
        self,
        index: int,
        queries: float,
        budget_left_today: float,
        traffic_left_today: float,
        later: np.ndarray,
        later_days_scale: float,
        realised_cost: float,
        realised_conv: float,
        realised_value: float,
        calibration: float,
        fallback_alpha: float,
        new_day: bool = False,
        forget_fast: bool = False,
        follow_moves: bool = False,
    ) -> Plan:
        """``add_step`` (then, with ``new_day``, ``end_day(follow_moves=...)`` and, with
        ``forget_fast`` too, ``forget_day``) and ``plan`` in one compiled call
        (``_add_and_plan_kernel``, which ``PacingState`` calls inside its compiled step).

        Positional floats and ``later`` as :func:`later_days` makes it, as ``PacingState``
        has them: no keyword or conversion overhead on a path run at every step.
        """
        view = self.sim.multiplier_landscape(index, GRID)
        self.steps += 1
        return Plan._make(
            _add_and_plan_kernel(
                self.rates, self.queries, view.cost, view.conversions, queries,
                budget_left_today, traffic_left_today, later, later_days_scale,
                realised_cost, realised_conv, realised_value, calibration,
                self._daily_budget, self._goal, self._target, self._mean_value,
                fallback_alpha, new_day, forget_fast, follow_moves,
            )
        )  # fmt: skip


def fallback_plan(alpha: float) -> Plan:
    """The plan before any landscape: the fallback multiplier, no trend."""
    return Plan._make(_fallback(float(alpha)))


@numba.njit(cache=True)
def _fallback(alpha):
    """``fallback_plan``'s fields (the kernels return them when the rates have no data)."""
    return (alpha, alpha, alpha, 1.0, 0.0, 0.0, alpha, alpha)


@numba.njit(cache=True)
def _add_and_plan_kernel(
    rates, queries, new_cost, new_conv, new_queries,
    budget_left_today, traffic_left_today, later, later_days_scale,
    realised_cost, realised_conv, realised_value, calibration,
    daily_budget, goal, target, mean_value, fallback_alpha, new_day, forget_fast, follow_moves,
):  # fmt: skip
    """``_forget_and_add`` then, when the rates have data, ``_plan_kernel`` (else the
    fields of ``fallback_plan(fallback_alpha)``). With ``new_day`` (the next step starts a
    day) the day ends first (``_end_day``, following smaller price moves with
    ``follow_moves``), and with ``forget_fast`` the fast memory is then emptied
    (``_forget_day``)."""
    _forget_and_add(rates, queries, new_cost, new_conv, new_queries)
    if new_day:
        _end_day(rates, queries, follow_moves)
        if forget_fast:
            _forget_day(rates, queries)
    if not _has_data(rates, queries):
        return _fallback(fallback_alpha)
    return _plan_kernel(
        rates, queries, budget_left_today, traffic_left_today, later,
        later_days_scale, realised_cost, realised_conv, realised_value, calibration,
        daily_budget, goal, target, mean_value,
    )  # fmt: skip


@numba.njit(cache=True)
def _has_data(rates, queries):
    """Whether the slow rates saw queries and some cost at the highest multiplier."""
    return queries[SLOW] > EMPTY_COUNT and rates[SLOW_COST, -1] > 0


@numba.njit(cache=True)
def _plan_kernel(
    rates, queries, budget_left_today, traffic_left_today, later,
    later_days_scale, realised_cost, realised_conv, realised_value, calibration,
    daily_budget, goal, target, mean_value,
):  # fmt: skip
    """The fields of the ``Plan``, in order: (alpha_budget, alpha_goal) of the slow rates,
    the prior, the plan's elasticity, cost trend and efficiency trend, and the slow and the
    fast plan's multipliers (a tuple of floats; ``Plan._make`` is the cheapest way in)."""
    slow_cost, slow_conv = rates[SLOW_COST], rates[SLOW_CONV]
    fast_cost, fast_conv = rates[FAST_COST], rates[FAST_CONV]
    slow_per_query = _per_query(queries[SLOW])
    fast_per_query = _per_query(queries[FAST])
    if fast_per_query == 0.0:  # the fast memory forgot everything: the slow one stands in
        fast_cost, fast_conv, fast_per_query = slow_cost, slow_conv, slow_per_query
    cost = _to_fine(slow_cost, slow_per_query)
    scaled = later.copy()  # the later days' traffic, scaled; their counts as they are
    scaled[0] *= later_days_scale
    forecast = (budget_left_today, traffic_left_today, scaled, daily_budget)
    realised = (realised_cost, realised_conv, realised_value, calibration)
    i_budget, i_goal = _choose(
        cost, _to_fine(slow_conv, slow_per_query), forecast, realised, goal, target, mean_value
    )
    fast_budget, fast_goal = _choose(
        _to_fine(fast_cost, fast_per_query),
        _to_fine(fast_conv, fast_per_query),
        forecast,
        realised,
        goal,
        target,
        mean_value,
    )
    i_slow, i_fast = min(i_budget, i_goal), min(fast_budget, fast_goal)
    at = FINE_LOG_GRID[i_slow]
    fast_cost_at = _interp(at, fast_cost) * fast_per_query
    fast_conv_at = _interp(at, fast_conv) * fast_per_query
    slow_cost_at = _interp(at, slow_cost) * slow_per_query
    slow_conv_at = _interp(at, slow_conv) * slow_per_query
    efficiency_fast = fast_conv_at / fast_cost_at if fast_cost_at > 0 else 0.0
    efficiency_slow = slow_conv_at / slow_cost_at if slow_cost_at > 0 else 0.0
    return (
        _FINE_ALPHA[i_budget],
        _FINE_ALPHA[i_goal],
        _prior(i_slow, i_fast),
        _elasticity(cost, i_slow),
        _log_ratio(fast_cost_at, slow_cost_at),
        _log_ratio(efficiency_fast, efficiency_slow),
        _FINE_ALPHA[i_slow],
        _FINE_ALPHA[i_fast],
    )


@numba.njit(cache=True)
def _per_query(forgotten_queries):
    """1 / the forgotten query count, which turns forgotten sums into per-query rates; 0
    for an empty count (``EMPTY_COUNT``).

    After a long stretch without traffic (days with a weekday weight of 0, hours with an
    hourly weight of 0) the fast count falls far below one query while the sums fall with
    it, so their ratio stays right; a floor on the count (1e-9 once) shrank the rates and
    pulled the first bid after a closed weekend far down.
    """
    return 1.0 / forgotten_queries if forgotten_queries > EMPTY_COUNT else 0.0


@numba.njit(cache=True)
def _prior(i_slow, i_fast):
    """The prior of the slow and the fast plan's fine points: their geometric blend."""
    log_slow, log_fast = FINE_LOG_GRID[i_slow], FINE_LOG_GRID[i_fast]
    return math.exp((1 - FAST_WEIGHT) * log_slow + FAST_WEIGHT * log_fast)


@numba.njit(cache=True)
def _to_fine(coarse, per_query):
    """Per-query rates on the fine grid: ``(coarse @ interpolation matrix) * per_query``."""
    fine = np.empty(_FINE_LOWER.shape[0])
    for i in range(fine.shape[0]):
        j = _FINE_LOWER[i]
        fine[i] = (coarse[j] * _FINE_W_LOWER[i] + coarse[j + 1] * _FINE_W_UPPER[i]) * per_query
    return fine


@numba.njit(cache=True)
def _choose(cost, conv, forecast, realised, goal, target, mean_value):
    """Fine-grid indices of (alpha_budget, alpha_goal) for one pair of fine rates.

    ``forecast`` is (budget left today, traffic left today, the later days as
    :func:`later_days` gives them, daily budget); ``realised`` is (cost, conversions, value,
    calibration).
    """
    budget_left, traffic_left, days, daily_budget = forecast
    realised_cost, realised_conv, realised_value, calibration = realised
    scores = np.empty(cost.shape[0])
    i_budget = 0  # the cheapest multiplier when none fits the budget
    for i in range(cost.shape[0]):
        spend_today = cost[i] * traffic_left
        if spend_today <= budget_left:
            i_budget = i
        # Each day's spend stops at its budget; conversions follow spend at the same alpha.
        later = 0.0
        for k in range(days.shape[1]):  # a count of 1 adds exactly the day's spend
            later += days[1, k] * min(cost[i] * days[0, k], daily_budget)
        spend = min(spend_today, budget_left) + later
        per_cost = conv[i] / cost[i] if cost[i] > 0 else 0.0
        conv_future = per_cost * spend * calibration
        scores[i] = _score(
            realised_conv + conv_future,
            realised_value + conv_future * mean_value,
            realised_cost + spend,
            goal,
            target,
        )
    # Among equal scores (a flat top) the cheapest multiplier is the safer choice.
    good_enough = scores.max() * (1 - TIE_TOLERANCE)
    i_goal = 0
    for i in range(scores.shape[0]):
        if scores[i] >= good_enough:
            i_goal = i
            break
    return i_budget, i_goal


@numba.njit(cache=True)
def _score(conversions, value, cost, goal, target):
    """``adbot.market.score.score_many`` of one point, with the goal as (kind, target)."""
    if goal == GOAL_VALUE:
        return value
    reward = conversions if goal == GOAL_CPA else value
    if not reward > 0:
        return 0.0
    if not cost > 0:
        return reward  # spending nothing breaks no target
    ratio = target * conversions / cost if goal == GOAL_CPA else value / (cost * target)
    square = ratio * ratio
    return reward * (1.0 if square >= 1.0 else square)


@numba.njit(cache=True)
def _interp(x, coarse):
    """``np.interp(x, LOG_GRID, coarse)`` for one point, in numpy's arithmetic."""
    if x <= LOG_GRID[0]:
        return coarse[0]
    if x >= LOG_GRID[-1]:
        return coarse[-1]
    j = np.searchsorted(LOG_GRID, x, side="right") - 1
    if LOG_GRID[j] == x:
        return coarse[j]
    slope = (coarse[j + 1] - coarse[j]) / (LOG_GRID[j + 1] - LOG_GRID[j])
    return slope * (x - LOG_GRID[j]) + coarse[j]


@numba.njit(cache=True)
def _elasticity(cost, i):
    lo, hi = max(i - 3, 0), min(i + 3, cost.shape[0] - 1)
    if cost[lo] <= 0 or cost[hi] <= 0 or hi == lo:
        return 0.0
    slope = math.log(cost[hi] / cost[lo]) / (FINE_LOG_GRID[hi] - FINE_LOG_GRID[lo])
    return min(10.0, max(0.0, slope))


@numba.njit(cache=True)
def _log_ratio(num, den):
    if num <= 0 or den <= 0:
        return 0.0
    return min(3.0, max(-3.0, math.log(num / den)))


@numba.njit(cache=True)
def _forget_day(rates, queries):
    """Empty the fast memory: it followed the day just ended (competitors running out of
    budget, a price move within the day), and every budget starts again with the new day.
    Until the new day's first step is folded in, the slow memory stands in for it
    (``_plan_kernel``)."""
    for i in range(rates.shape[1]):
        rates[FAST_COST, i] = 0.0
        rates[FAST_CONV, i] = 0.0
    queries[FAST] = 0.0


@numba.njit(cache=True)
def _forget_and_add(rates, queries, new_cost, new_conv, new_queries):
    """``x = forget * x + new`` in place for both rates and both query counts; the day's
    sums add the step (``_end_day`` reads them), today's shares of the memories forget as
    they do."""
    for i in range(rates.shape[1]):
        rates[SLOW_COST, i] = FORGET * rates[SLOW_COST, i] + new_cost[i]
        rates[SLOW_CONV, i] = FORGET * rates[SLOW_CONV, i] + new_conv[i]
        rates[FAST_COST, i] = FAST_FORGET * rates[FAST_COST, i] + new_cost[i]
        rates[FAST_CONV, i] = FAST_FORGET * rates[FAST_CONV, i] + new_conv[i]
        rates[DAY_COST, i] += new_cost[i]
        rates[DAY_CONV, i] += new_conv[i]
        rates[TODAY_SLOW_COST, i] = FORGET * rates[TODAY_SLOW_COST, i] + new_cost[i]
        rates[TODAY_SLOW_CONV, i] = FORGET * rates[TODAY_SLOW_CONV, i] + new_conv[i]
        rates[TODAY_FAST_COST, i] = FAST_FORGET * rates[TODAY_FAST_COST, i] + new_cost[i]
        rates[TODAY_FAST_CONV, i] = FAST_FORGET * rates[TODAY_FAST_CONV, i] + new_conv[i]
    queries[SLOW] = FORGET * queries[SLOW] + new_queries
    queries[FAST] = FAST_FORGET * queries[FAST] + new_queries
    queries[DAY] += new_queries


@numba.njit(cache=True)
def _end_day(rates, queries, follow_moves):
    """A day's end: where rivals' prices moved by more than ``PRICE_SHIFT`` since the last
    day with traffic, or since the one before it (a move that starts within a day leaves that
    day half moved, its landscape no price level: the next day is compared with the day
    before it), both memories become the day's landscapes alone (``_price_shift``). With
    ``follow_moves``, a smaller move since the last day, beyond ``PRICE_MOVE``, moves the
    memories' earlier days by it (``_shift_memory``). A day with at least
    ``PRICE_MIN_QUERIES`` queries then becomes the last day (after a restart or a move, the
    earlier one too: the move is not counted twice); today's sums start again. Whether the
    memories started again."""
    restarted = False
    moved = 0.0
    n = rates.shape[1]
    if queries[DAY] >= PRICE_MIN_QUERIES:
        for row, entry in ((LAST_DAY_CONV, LAST_DAY), (EARLIER_DAY_CONV, EARLIER_DAY)):
            if queries[entry] >= PRICE_MIN_QUERIES:
                shift = _price_shift(rates[row], queries[entry], rates[DAY_CONV], queries[DAY])
                if abs(shift) > math.log(PRICE_SHIFT):
                    restarted = True
                    break
                if follow_moves and entry == LAST_DAY and abs(shift) > math.log(PRICE_MOVE):
                    moved = shift
        if moved != 0.0 and not restarted:
            _shift_memory(rates, moved)
        if restarted:
            # The fast memory too: at a few steps a day it spans days (at one step a day,
            # 60 % of its weight was the days before the move).
            for i in range(n):
                rates[SLOW_COST, i] = rates[FAST_COST, i] = rates[DAY_COST, i]
                rates[SLOW_CONV, i] = rates[FAST_CONV, i] = rates[DAY_CONV, i]
            queries[SLOW] = queries[FAST] = queries[DAY]
        fresh = restarted or moved != 0.0
        for i in range(n):
            earlier = rates[DAY_CONV, i] if fresh else rates[LAST_DAY_CONV, i]
            rates[EARLIER_DAY_CONV, i] = earlier
            rates[LAST_DAY_CONV, i] = rates[DAY_CONV, i]
        queries[EARLIER_DAY] = queries[DAY] if fresh else queries[LAST_DAY]
        queries[LAST_DAY] = queries[DAY]
    for i in range(n):
        for row in (DAY_COST, DAY_CONV, TODAY_SLOW_COST, TODAY_SLOW_CONV, TODAY_FAST_COST):
            rates[row, i] = 0.0
        rates[TODAY_FAST_CONV, i] = 0.0
    queries[DAY] = 0.0
    return restarted


@numba.njit(cache=True)
def _shift_memory(rates, shift):
    """Move both memories' landscapes of the days before today by ``shift`` (log) along the
    multiplier axis: rivals' prices x m win the same clicks at m times the bid, each paid m
    times as much (``cost(alpha) = m cost_before(alpha / m)``, conversions alike but not
    scaled). Today's share, already at the new prices, stays as it is."""
    n = rates.shape[1]
    earlier = np.empty(n)
    scale = math.exp(shift)
    for memory, today, factor in (
        (SLOW_COST, TODAY_SLOW_COST, scale),
        (SLOW_CONV, TODAY_SLOW_CONV, 1.0),
        (FAST_COST, TODAY_FAST_COST, scale),
        (FAST_CONV, TODAY_FAST_CONV, 1.0),
    ):
        for i in range(n):
            earlier[i] = max(0.0, rates[memory, i] - rates[today, i])
        for i in range(n):
            moved = _interp_geometric(LOG_GRID[i] - shift, earlier)
            rates[memory, i] = rates[today, i] + factor * moved


@numba.njit(cache=True)
def _interp_geometric(x, coarse):
    """``coarse`` at log multiplier ``x``: log-linear between grid points where both are
    positive (landscapes rise about exponentially over a grid step: linear interpolation put
    three times the spend between two points 28 % apart), linear otherwise, the end values
    past the ends."""
    if x <= LOG_GRID[0]:
        return coarse[0]
    if x >= LOG_GRID[-1]:
        return coarse[-1]
    j = np.searchsorted(LOG_GRID, x, side="right") - 1
    share = (x - LOG_GRID[j]) / (LOG_GRID[j + 1] - LOG_GRID[j])
    low, high = coarse[j], coarse[j + 1]
    if low > 0.0 and high > 0.0:
        return math.exp((1.0 - share) * math.log(low) + share * math.log(high))
    return low + share * (high - low)


@numba.njit(cache=True)
def _price_shift(last_conv, last_queries, conv, day_queries):
    """How far (log multiplier) the day's predicted conversions per query moved along the
    multiplier axis from an earlier day's: the median over the earlier day's grid points
    whose level lies in ``PRICE_LEVELS`` of the lower top of the two curves of where the
    day's curve reaches that level (log-linear between grid points); 0 unless at least
    ``PRICE_MIN_POINTS`` points have a move and their 10 % to 90 % spread is at most
    ``PRICE_SPREAD`` (one move at every level: a price level, not a changed shape).

    A flat stretch of the earlier curve (auctions won at the reserve price, where fewer
    rivals take part than there are slots) counts once, at its first point: each of its
    points would map to the start of the day's stretch, and their moves spread by its
    width."""
    n = conv.shape[0]
    top = min(last_conv[n - 1] / last_queries, conv[n - 1] / day_queries)
    if not top > 0.0:
        return 0.0
    moves = np.empty(n)
    count = 0
    for i in range(n):
        level = last_conv[i] / last_queries
        if level < PRICE_LEVELS[0] * top or level > PRICE_LEVELS[1] * top:
            continue
        if i > 0 and level <= last_conv[i - 1] / last_queries * (1.0 + FLAT_TOLERANCE):
            continue
        j = 0  # the first point where the day's curve reaches the level
        while j < n and conv[j] / day_queries < level:
            j += 1
        if j == 0 or j == n:
            continue
        below, above = conv[j - 1] / day_queries, conv[j] / day_queries
        share = 1.0
        if below > 0.0:
            rise = math.log(above) - math.log(below)
            if rise > 0.0:  # two floats a step apart can have the same log
                share = (math.log(level) - math.log(below)) / rise
        moves[count] = LOG_GRID[j - 1] + share * (LOG_GRID[j] - LOG_GRID[j - 1]) - LOG_GRID[i]
        count += 1
    if count < PRICE_MIN_POINTS:
        return 0.0
    ordered = np.sort(moves[:count])
    if _quantile(ordered, 0.9) - _quantile(ordered, 0.1) > PRICE_SPREAD:
        return 0.0
    return _quantile(ordered, 0.5)


@numba.njit(cache=True)
def _quantile(ordered, q):
    """The ``q`` quantile of sorted values, linear between them (numpy's default)."""
    position = q * (ordered.shape[0] - 1)
    low = int(position)
    high = min(low + 1, ordered.shape[0] - 1)
    return ordered[low] + (position - low) * (ordered[high] - ordered[low])
