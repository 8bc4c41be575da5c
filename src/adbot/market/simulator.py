"""The step API shared by the Gymnasium env, the simulated platform and the evaluator."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from typing import NamedTuple

import numpy as np

from adbot.errors import InvalidInput
from adbot.market.auction import (
    AMOUNT_ROWS,
    COUNT_ROWS,
    AuctionRules,
    Served,
    serve,
    serve_multiplier,
)
from adbot.market.episode import EpisodeMarket, StepMarket, episode_market
from adbot.market.landscape import Landscape, bid_landscape, multiplier_landscape
from adbot.market.scenario import Scenario
from adbot.market.score import EpisodeMetrics
from adbot.market.universe import expected_step_queries

# Steps of a day whose landscapes are computed in one pass (a stage of ``work_ahead``: a few
# hundred microseconds).
LANDSCAPE_PART_STEPS = 4
# The largest episode seed: a signed 64-bit integer, as a trace's or a database's column
# holds it (``adbot simulate`` refuses larger ones, so every evaluated episode replays).
EPISODE_SEED_MAX = 2**63 - 1


# A step carrying more than this share of what is forecast for the rest of its day is most
# of it (one step a day, one open hour): bidding it blind, before any landscape, stakes the
# day, where the first step of a 24-step day stakes an hour. The first bid's shade
# (adbot.rl.features.initial_alpha) and the keyword calibration (KeywordBidder.bids) both
# treat such a step apart; every standard training draw's and bundled scenario's first step
# carries 1/24 of its day or less.
MOST_OF_DAY = 0.25


class _Row:
    """A read-only attribute that is row ``row`` of the instance's 2-D array ``table``."""

    def __init__(self, table: str, names: tuple[str, ...], name: str) -> None:
        self.table, self.row, self.name = table, names.index(name), name

    def __get__(self, outcome: object, owner: type | None = None) -> np.ndarray:
        return getattr(outcome, self.table)[self.row]

    def __set__(self, outcome: object, value: object) -> None:
        raise AttributeError(f"{type(outcome).__name__}.{self.name} is read-only")


class _OutcomeFields(NamedTuple):
    day: int
    step: int
    index: int  # type: ignore[assignment]  # the step's index shadows tuple.index, on purpose
    bids: np.ndarray
    counts: np.ndarray
    amounts: np.ndarray
    total_queries: int
    total_impressions: int
    total_clicks: int
    total_cost: float
    total_conversions: int
    total_value: float
    spend_today: float
    budget_exhausted: bool


class StepOutcome(_OutcomeFields):
    """What one step gave, per keyword (arrays of shape (K,)) and in total.

    ``impression_share`` is impressions / queries on the keyword, ``avg_position`` the mean
    1-based slot of our impressions, ``avg_cpc`` the mean price paid per click (0 where
    undefined). ``spend_today`` is the day's spend after this step. The per-keyword arrays
    are rows of ``counts`` (int64, rows ``COUNT_ROWS``) and ``amounts`` (float64, rows
    ``AMOUNT_ROWS``), as the auction kernel fills them; the named rows are views made when
    read (the RL env's step reads a few of them). The fields are those of the named tuple
    ``_OutcomeFields``: one outcome is built at every step, and a frozen dataclass would set
    each of its 14 fields through ``object.__setattr__`` (about 4 us against 0.5).
    """

    __slots__ = ()

    # The named per-keyword rows, views of ``counts`` and ``amounts``.
    queries = _Row("counts", COUNT_ROWS, "queries")
    auctions_entered = _Row("counts", COUNT_ROWS, "auctions_entered")
    impressions = _Row("counts", COUNT_ROWS, "impressions")
    clicks = _Row("counts", COUNT_ROWS, "clicks")
    conversions = _Row("counts", COUNT_ROWS, "conversions")
    cost = _Row("amounts", AMOUNT_ROWS, "cost")
    value = _Row("amounts", AMOUNT_ROWS, "value")
    impression_share = _Row("amounts", AMOUNT_ROWS, "impression_share")
    avg_position = _Row("amounts", AMOUNT_ROWS, "avg_position")
    avg_cpc = _Row("amounts", AMOUNT_ROWS, "avg_cpc")


class MarketSimulator:
    """One episode of the market for one campaign, played one decision step at a time.

    ``step(bids)`` takes a max CPC per keyword (K,). A bid of 0 pauses the keyword; other
    bids are clipped to ``[campaign.min_bid, campaign.max_bid]``. Two simulators built from
    the same (scenario, episode seed) share one pre-drawn market (common random numbers): the
    one in a small process-wide cache, or ``market`` when the caller keeps it (the RL env
    keeps those of the episodes it replays, which a shared cache of a few would evict).
    """

    def __init__(
        self, scenario: Scenario, episode_seed: int, market: EpisodeMarket | None = None
    ) -> None:
        if isinstance(episode_seed, bool) or not isinstance(episode_seed, int | np.integer):
            raise InvalidInput(f"episode seed must be an integer, got {episode_seed!r}")
        if not 0 <= episode_seed <= EPISODE_SEED_MAX:
            raise InvalidInput(f"episode seed must be 0 to 2**63 - 1, got {episode_seed}")
        self.scenario = scenario
        self.episode_seed = int(episode_seed)
        if market is None:
            market = episode_market(scenario, self.episode_seed)
        elif market.episode_seed != self.episode_seed or (
            market.scenario is not scenario and market.scenario != scenario
        ):
            raise InvalidInput("the market given was drawn for another scenario or episode seed")
        self.market: EpisodeMarket = market
        universe = self.market.universe
        campaign = scenario.campaign
        self.n_keywords = campaign.keywords
        self.days = scenario.horizon.days
        self.steps_per_day = scenario.horizon.steps_per_day
        self.n_steps = self.days * self.steps_per_day
        self.pcvr = universe.pcvr
        self.value_per_conversion = campaign.value_per_conversion
        self.keyword_values = universe.pcvr * self.value_per_conversion
        self.daily_budget = campaign.daily_budget
        self.min_bid, self.max_bid = campaign.min_bid, campaign.max_bid
        # Traffic forecast a bidder may know (profiles, no shocks), queries per step.
        self.expected_queries = expected_step_queries(scenario, with_shocks=False)
        self.rules = AuctionRules(
            reserve=scenario.market.reserve_cpc,
            slots=scenario.market.slots,
            click_prob=universe.click_prob,
        )
        self.step_index = 0
        self.spend_today = 0.0
        self._totals = [0.0] * 5  # impressions, clicks, cost, conversions, value
        self._last_grid: tuple[object, bytes] = (None, b"")

    @property
    def done(self) -> bool:
        return self.step_index >= self.n_steps

    @property
    def day(self) -> int:
        """Day of the next step to play (``days`` once done)."""
        return self.step_index // self.steps_per_day

    @property
    def step_in_day(self) -> int:
        return self.step_index % self.steps_per_day

    @property
    def keyword_texts(self) -> tuple[str, ...]:
        """The keywords' readable texts (drawn on first use: only platforms and the CLI read
        them)."""
        return self.market.universe.keyword_texts

    @property
    def budget_left_today(self) -> float:
        return max(0.0, self.daily_budget - self.spend_today)

    def forecast_share_of_day(self, index: int) -> float:
        """Step ``index``'s share of the forecast traffic (no shocks) of its day from that step
        on; 0 when none is left. Above ``MOST_OF_DAY`` a step bid blind stakes its day."""
        end = min((index // self.steps_per_day + 1) * self.steps_per_day, self.n_steps)
        left = float(np.sum(self.expected_queries[index:end]))
        return float(self.expected_queries[index]) / left if left > 0.0 else 0.0

    def validate_bids(self, bids: object) -> np.ndarray:
        """The bids the market will use, or ``InvalidInput`` saying what is wrong."""
        try:
            array = np.asarray(bids, dtype=np.float64)
        except (TypeError, ValueError):
            raise InvalidInput("bids must be a numeric array") from None
        if array.shape != (self.n_keywords,):
            raise InvalidInput(f"bids must have shape ({self.n_keywords},), got {array.shape}")
        if not np.isfinite(array).all():
            raise InvalidInput("bids must be finite (no NaN or infinity)")
        if (array < 0).any():
            raise InvalidInput("bids must be >= 0")
        return np.where(array > 0, np.clip(array, self.min_bid, self.max_bid), 0.0)

    def step(self, bids: object) -> StepOutcome:
        """Play the next step with these max CPCs and return what happened."""
        if self.done:
            raise InvalidInput("the episode is over; build a new simulator")
        return self._play(self.validate_bids(bids))

    def step_multiplier(self, alpha: float) -> StepOutcome:
        """``step`` with MARKET.md's multiplier bids ``clip(alpha x v_k, min_bid, max_bid)``.

        The same outcome as passing those bids to ``step``, without re-checking bids that
        are valid by construction (the env's hot path).
        """
        if not (math.isfinite(alpha) and alpha > 0):
            raise InvalidInput(f"the bid multiplier must be a positive finite number, got {alpha}")
        if self.done:
            raise InvalidInput("the episode is over; build a new simulator")
        market = self.market.step(self.step_index)
        bids, served = serve_multiplier(
            market,
            alpha,
            self.keyword_values,
            (self.min_bid, self.max_bid),
            self.spend_today,
            self.daily_budget,
            self.rules,
        )
        return self._record(market, bids, served)

    def _play(self, used: np.ndarray) -> StepOutcome:
        market = self.market.step(self.step_index)
        served = serve(market, used, self.spend_today, self.daily_budget, self.rules)
        return self._record(market, used, served)

    def _record(self, market: StepMarket, used: np.ndarray, served: Served) -> StepOutcome:
        """Fold the step's result into the running totals and move to the next step."""
        outcome = self._outcome(market, used, served)
        self.spend_today = outcome.spend_today
        totals = self._totals
        totals[0] += outcome.total_impressions
        totals[1] += outcome.total_clicks
        totals[2] += outcome.total_cost
        totals[3] += outcome.total_conversions
        totals[4] += outcome.total_value
        self.step_index += 1
        if self.step_index % self.steps_per_day == 0:
            self.spend_today = 0.0
        return outcome

    def _outcome(self, market: StepMarket, bids: np.ndarray, served: Served) -> StepOutcome:
        index = self.step_index
        day, step = divmod(index, self.steps_per_day)
        spend_after = served.spend_after
        return StepOutcome(
            day,
            step,
            index,
            bids,
            served.counts,
            served.amounts,
            market.n_queries,
            served.n_shown,
            served.n_clicked,
            served.total_cost,
            served.n_converted,
            served.total_value,
            spend_after,
            spend_after >= self.daily_budget,
        )

    def _grid_key(self, alphas: np.ndarray) -> bytes:
        """A checked multiplier grid's bytes; a read-only grid (a planner's constant) is
        checked once, not at every step."""
        if alphas is self._last_grid[0]:
            return self._last_grid[1]
        key = _checked_grid(alphas).tobytes()
        if isinstance(alphas, np.ndarray) and not alphas.flags.writeable:
            self._last_grid = (alphas, key)
        return key

    def _day_landscapes(self, day: int, alphas: np.ndarray) -> Landscape:
        """Day ``day``'s multiplier landscapes, (steps, grid) arrays: the whole day in a few
        vectorised passes (one per ``LANDSCAPE_PART_STEPS`` steps) instead of one per step,
        kept in the market for every simulator of this episode; only played steps are ever
        handed out."""
        key = (day, self._grid_key(alphas))
        landscapes = self.market.day_landscapes.get(key)
        if landscapes is None:
            for _ in self._landscape_parts(key, alphas):
                pass
            landscapes = self.market.day_landscapes[key]
        return landscapes

    def _landscape_parts(self, key: tuple[int, bytes], alphas: np.ndarray) -> Iterator[None]:
        """The day's landscape parts left to compute (a generator kept in the market between
        ``work_ahead`` calls); the last stores the day's landscapes. Each step's queries are
        summed apart, in order, so the parts are the rows of the day computed at once."""
        stages = self.market.landscape_stages.get(key)
        if stages is None:
            stages = self.market.landscape_stages[key] = self._landscape_stages(key, alphas)
        return stages

    def _landscape_stages(self, key: tuple[int, bytes], alphas: np.ndarray) -> Iterator[None]:
        try:
            yield from self._computing_landscapes(key, alphas)
        finally:
            # Also when a part is cut short (an error, a Ctrl-C): a spent generator left here
            # would stand for the parts left, and the day's landscapes would never be stored.
            self.market.landscape_stages.pop(key, None)

    def _computing_landscapes(self, key: tuple[int, bytes], alphas: np.ndarray) -> Iterator[None]:
        queries, step_of = self.market.whole_day(key[0])
        grid = np.asarray(alphas, dtype=np.float64)
        spd = self.steps_per_day
        firsts = np.arange(0, spd, LANDSCAPE_PART_STEPS)  # each part's first step
        bounds = [*np.searchsorted(step_of, firsts).tolist(), step_of.shape[0]]
        parts = []
        for part, (start, end) in enumerate(itertools.pairwise(bounds)):
            if part:
                yield
            first = part * LANDSCAPE_PART_STEPS
            groups = (step_of[start:end] - first, min(LANDSCAPE_PART_STEPS, spd - first))
            parts.append(self._grouped_landscape(queries.subset(slice(start, end)), grid, groups))
        self.market.day_landscapes[key] = Landscape(
            *(np.concatenate([getattr(part, name) for part in parts]) for name in Landscape._fields)
        )

    def work_ahead(self, day: int, alphas: np.ndarray | None = None) -> bool:
        """One stage of day ``day``, ahead of time: its draws (``EpisodeMarket.draw_ahead``),
        then, with ``alphas``, its landscapes a part at a time; True, computing nothing, once
        all is done. Each stage takes a few hundred microseconds at most: a vec env's worker
        calls this between steps, and a whole day at once (1-2 ms) would hold up the step
        the learner waits for. Nothing is handed out before it is played."""
        if not self.market.draw_ahead(day):
            return False
        if alphas is None:
            return True
        key = (day, self._grid_key(alphas))
        if key in self.market.day_landscapes:
            return True
        next(self._landscape_parts(key, alphas), None)
        return False

    def prepare(self, alphas: np.ndarray | None = None) -> None:
        """Compute now what the next step will need and no action changes: its day's draws
        and, with ``alphas``, that day's multiplier landscapes on them; then a stage of the
        next day's (``work_ahead``), one per call.

        Nothing is played and nothing is handed out (``multiplier_landscape`` still answers
        for played steps only); the same numbers are computed, only earlier. A vec env's
        worker calls it while the learner computes, so the step it waits for is cheaper.
        """
        if self.done:
            return
        self.market.step(self.step_index)
        if alphas is not None:
            self._day_landscapes(self.day, alphas)
        tomorrow = self.day + 1
        if tomorrow < self.days:
            self.work_ahead(tomorrow, alphas)

    def totals(self) -> EpisodeMetrics:
        """Running totals of the steps played so far, with their score."""
        impressions, clicks, cost, conversions, value = self._totals
        return EpisodeMetrics.from_totals(
            self.scenario,
            impressions=impressions,
            clicks=clicks,
            cost=cost,
            conversions=conversions,
            value=value,
        )

    def bid_landscape(self, index: int, bids: np.ndarray) -> Landscape:
        """Expected results of other bid vectors (A, K) on an already played step.

        The bid simulator a platform offers: for steps already played only, and in
        expectation with our predicted CVR, so it reveals no future and no hidden draws.
        """
        self._check_played(index)
        return bid_landscape(
            self.market.step(index),
            np.atleast_2d(np.asarray(bids, dtype=np.float64)),
            self.rules,
            self.pcvr,
            self.value_per_conversion,
        )

    def keyword_landscape(self, index: int, alphas: np.ndarray) -> tuple[np.ndarray, Landscape]:
        """``multiplier_landscape`` keyword by keyword, for the keywords queried on played step
        ``index``: their ids (ascending, U of them) and (U, A) arrays, row u the expected
        results of keyword u's queries when it bids ``clip(alpha * v_k, min_bid, max_bid)`` (a
        keyword's auctions depend on its own bid only). ``alphas`` must be ascending; one
        compiled pass over the step's queries, memory by queries and not by keywords."""
        self._check_played(index)
        step = self.market.step(index)
        keywords, group = np.unique(step.keyword, return_inverse=True)
        groups = (group, keywords.shape[0])
        return keywords, self._grouped_landscape(step, _checked_grid(alphas), groups)

    def _grouped_landscape(
        self, queries: StepMarket, grid: np.ndarray, groups: tuple[np.ndarray, int]
    ) -> Landscape:
        """The compiled multiplier landscape of ``queries`` with this campaign's values, bid
        limits and auction rules, summed per group."""
        return multiplier_landscape(
            queries,
            grid,
            self.keyword_values,
            (self.min_bid, self.max_bid),
            self.rules,
            self.pcvr,
            self.value_per_conversion,
            groups=groups,
        )

    def _check_played(self, index: int) -> None:
        """The platform's bid simulator answers for played steps only."""
        if not 0 <= index < self.step_index:
            raise InvalidInput(f"landscape only for played steps (0..{self.step_index - 1})")

    def multiplier_landscape(self, index: int, alphas: np.ndarray) -> Landscape:
        """``bid_landscape`` of multiplier bids ``clip(alpha * v_k, min_bid, max_bid)``.

        ``alphas`` must be ascending; much faster than passing the bid matrix.
        """
        landscapes, step = self.played_day_landscapes(index, alphas)
        return Landscape(
            clicks=landscapes.clicks[step],
            cost=landscapes.cost[step],
            conversions=landscapes.conversions[step],
            value=landscapes.value[step],
        )

    def played_day_landscapes(self, index: int, alphas: np.ndarray) -> tuple[Landscape, int]:
        """The multiplier landscapes of the whole day of played step ``index``, (steps, grid)
        arrays, and that step's row in them: ``multiplier_landscape`` without making the
        step's views (the RL env's compiled step reads the row itself)."""
        self._check_played(index)
        day, step = divmod(index, self.steps_per_day)
        return self._day_landscapes(day, alphas), step


def _checked_grid(alphas: np.ndarray) -> np.ndarray:
    """``alphas`` as a float64 multiplier grid, or ``InvalidInput`` unless it is 1-D, ascending
    and non-negative (no NaN)."""
    grid = np.asarray(alphas, dtype=np.float64)
    if grid.ndim != 1 or not np.all(np.diff(grid) >= 0) or not np.all(grid >= 0):
        raise InvalidInput("alphas must be a 1-D ascending array of non-negative numbers (no NaN)")
    return grid
