"""The pre-drawn market of one episode: every random draw the episode seed fixes.

Common random numbers: each day draws from its own generator, seeded by
``SeedSequence([scenario.seed, episode_seed, 1], spawn_key=(day,))``; nothing drawn depends
on bids, so every policy run on the same (scenario, episode seed) faces the same queries,
competitor bids and uniform numbers. A step keeps only what our auctions need: per query,
the keyword, the top ``slots`` competitor ad ranks (competitor ranks do not depend on
our bid) and how many more competitors tie with the last of them (a tie with our ad is
broken over all the tied), and the uniforms that decide tie-breaks, clicks and conversions
(and, through the latter, a conversion's value). Days are drawn lazily, on first use, and
kept.

Competitor entry and lognormal bid jitter come from one 16-bit uniform per (competitor,
query), see ``entry_jitter_table``; the draws are laid out (competitors, queries). Without
competitor budgets one compiled pass (``_top_competitor_ranks``) turns them into each query's
top ``slots`` ad ranks and the count of the others that tie with the last (``_feed_counting``),
keeping the float32 rounding of every product of the vectorised definition
(``(CPC x quality) x (jitter x shock multiplier)``, the reserve tested as
``jitter x multiplier >= reserve / CPC``), so the drawn market is bit for bit what it was.

Competitor budgets (``market.competitor_budget``) are applied exactly, day by day, on the
auctions *without our campaign*: a competitor leaves for the rest of the day once its
cumulative spend reaches its budget. Tracking them without us keeps the market independent
of our bids (our presence can only push a competitor down and lower its spend, so with us
it would leave at most a little later). Competitor clicks use one uniform per query shared
by all slots (a click at slot j when ``u < ctr_j * quality_factor``). The day is served
query by query in a compiled kernel (numba, ``_serve_competitor_budgets``): the competitors
still present rank by bid x quality, the top ``slots`` pay the generalised second price on a
click, and one whose spend reaches its budget bids 0 from the next query on. Equal ranks go
to the lower competitor index (only positive ties matter, and they are rare). The same pass
hands out each query's top ``slots`` ranks (a float32 bid times a float32 quality is exact
in float64, so rounding the kernel's rank to float32 gives the float32 product) and the
count of the competitors still in beyond them whose float32 rank ties with the last.
"""

from __future__ import annotations

import bisect
import functools
from collections import OrderedDict
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import TYPE_CHECKING, TypeVar, cast

import numba
import numpy as np
from scipy import special

from adbot.market import libm
from adbot.market.scenario import Scenario
from adbot.market.universe import Universe, build_universe, quality_factor

if TYPE_CHECKING:
    from adbot.market.landscape import Landscape

_EPISODE_TAG = 1
_CELLS = 2**16
# Up to this sd_log a lognormal's cells hold their midpoint quantiles, whose mean falls short
# of the lognormal's by at most 7e-5 (|z| is clamped at 4.3); kept so that every episode of
# such a scenario plays as it always did. Past it the shortfall grows fast (0.3 % at 2, 5 % at
# 3, 27 % at 4, 66 % at 5), and each cell holds its exact conditional mean instead: the table's
# mean is then the lognormal's, as MARKET.md asks of every draw (``_cell_means``).
MIDPOINT_MAX_SD = 1.0


@functools.cache
def _normal_quantiles() -> np.ndarray:
    """Standard normal quantiles at the midpoints of ``_CELLS`` equal-probability cells."""
    dist = NormalDist()
    return np.array([dist.inv_cdf((i + 0.5) / _CELLS) for i in range(_CELLS)])


@functools.cache
def _cell_midpoints() -> np.ndarray:
    """``(i + 0.5) / _CELLS``: the uniform each 16-bit cell stands for."""
    return (np.arange(_CELLS) + 0.5) / _CELLS


def _to_lognormal(z: np.ndarray, mean: float, sd: float) -> np.ndarray:
    """``mean * exp(sd z - sd^2 / 2)`` of standard normal quantiles ``z``, computed in ``z``.

    In place: chained 512 KB temporaries cost more in fresh pages than in arithmetic (4x).
    Element by element the same operations on the same operands, so the same floats on any
    subset of the quantiles as on all of them.
    """
    z *= sd
    z -= 0.5 * sd * sd
    libm.exp(z, out=z)
    z *= mean
    return z


@functools.lru_cache(maxsize=64)
def lognormal_quantiles(mean: float, sd: float) -> np.ndarray:
    """Mean-preserving lognormal ``mean * exp(sd z - sd^2 / 2)`` at the cell midpoints
    (past ``MIDPOINT_MAX_SD``, each cell's conditional mean: ``_cell_means``).

    Drawing ``table[floor(u * _CELLS)]`` for a uniform u gives 65,536 equally likely values:
    adjacent ones differ by under 0.1% relative in the body of the distribution, and |z| is
    clamped at 4.3 (a 1e-5 tail).
    """
    if sd > MIDPOINT_MAX_SD:
        return mean * _cell_means(sd)
    return _to_lognormal(_normal_quantiles().copy(), mean, sd)


@functools.lru_cache(maxsize=8)
def _cell_means(sd: float) -> np.ndarray:
    """The mean of ``exp(sd z - sd^2 / 2)`` over each of the ``_CELLS`` equal-probability
    cells of the standard normal z: ``_CELLS * (Phi(b - sd) - Phi(a - sd))`` for a cell from
    a to b, whose average over the cells is exactly 1. (Read-only: memoised.)"""
    edges = special.ndtri(np.arange(_CELLS + 1) / _CELLS)  # -inf ... inf
    low, high = edges[:-1] - sd, edges[1:] - sd
    # Above the median of the shifted normal, the difference of the upper tails keeps the
    # digits that one of two cdfs near 1 loses.
    upper = low > 0.0
    mass = np.where(
        upper, special.ndtr(-low) - special.ndtr(-high), special.ndtr(high) - special.ndtr(low)
    )
    means = mass * _CELLS
    means.flags.writeable = False
    return means


_NO_TIES = np.zeros(0, dtype=np.int32)  # ``StepMarket.comp_tied`` omitted


@dataclass(frozen=True)
class StepMarket:
    """The bid-independent market of one step, queries in serving order.

    A conversion's value is a function of the conversion's own uniform: given
    ``u_conv < cvr``, ``u_conv / cvr`` is uniform and independent of the conversion, so it
    picks the value from ``value_table`` (lognormal quantiles) with no further draw.
    """

    keyword: np.ndarray  # (Q,) intp
    comp_rank: np.ndarray  # (slots, Q) float32 top competitor ad ranks, descending, 0 = nobody
    quality: np.ndarray  # (Q,) our quality score on the query's keyword
    cvr: np.ndarray  # (Q,) true conversion probability (shocks applied, capped)
    u_tie: np.ndarray  # (Q,) uniforms: random tie-breaks among equal ad ranks
    u_click: np.ndarray  # (Q,) uniforms: our click happens when u < click probability
    u_conv: np.ndarray  # (Q,) uniforms: our click converts when u < cvr
    value_table: np.ndarray  # (_CELLS,) conversion value quantiles
    # (Q,) int32: competitors beyond ``comp_rank``'s rows whose rank equals its last row's
    # (positive). Omitted (empty): none anywhere.
    comp_tied: np.ndarray = field(default_factory=lambda: _NO_TIES)

    def __post_init__(self) -> None:
        if self.comp_tied is _NO_TIES:
            object.__setattr__(self, "comp_tied", np.zeros(self.keyword.shape, np.int32))

    @property
    def n_queries(self) -> int:
        return int(self.keyword.shape[0])

    def value_of(self, queries: np.ndarray) -> np.ndarray:
        """Conversion values on these queries (meaningful where a conversion happened)."""
        cvr = self.cvr[queries]
        with np.errstate(divide="ignore", invalid="ignore"):
            share = np.where(cvr > 0, self.u_conv[queries] / cvr, 0.0)
        cells = np.minimum(share * _CELLS, _CELLS - 1).astype(np.intp)
        return self.value_table[cells]

    @functools.cached_property
    def conv_value(self) -> np.ndarray:
        """(Q,) the value a conversion would have on each query."""
        return self.value_of(np.arange(self.n_queries))

    @staticmethod
    def joined(parts: list[StepMarket]) -> StepMarket:
        """Steps (or days) one after the other, as one sequence (copies); at least one part,
        all with the same value table."""
        return StepMarket(
            keyword=np.concatenate([p.keyword for p in parts]),
            comp_rank=np.concatenate([p.comp_rank for p in parts], axis=1),
            quality=np.concatenate([p.quality for p in parts]),
            cvr=np.concatenate([p.cvr for p in parts]),
            u_tie=np.concatenate([p.u_tie for p in parts]),
            u_click=np.concatenate([p.u_click for p in parts]),
            u_conv=np.concatenate([p.u_conv for p in parts]),
            value_table=parts[0].value_table,
            comp_tied=np.concatenate([p.comp_tied for p in parts]),
        )

    def subset(self, queries: np.ndarray | slice) -> StepMarket:
        """The same step restricted to some queries (kept in serving order); a slice gives
        views, an index array copies."""
        return StepMarket(
            keyword=self.keyword[queries],
            comp_rank=self.comp_rank[:, queries],
            quality=self.quality[queries],
            cvr=self.cvr[queries],
            u_tie=self.u_tie[queries],
            u_click=self.u_click[queries],
            u_conv=self.u_conv[queries],
            value_table=self.value_table,
            comp_tied=self.comp_tied[queries],
        )


@numba.njit(cache=True, nogil=True)
def _compare_exchange(row: np.ndarray, carry: np.ndarray) -> None:
    """Element-wise, ``row`` keeps the larger value and ``carry`` the smaller (vectorises)."""
    for t in range(row.shape[0]):
        kept, fed = row[t], carry[t]
        row[t] = kept if kept > fed else fed
        carry[t] = fed if kept > fed else kept


@numba.njit(cache=True, nogil=True)
def _feed(top: np.ndarray, carry: np.ndarray, fed: int) -> None:
    """Insert the row ``carry`` (overwritten) into ``top`` (n, Q), the running top ``n`` of each
    column of the ``fed`` rows before it (an insertion network on whole rows; rows past
    ``fed`` are still 0, so they take the carry as it is)."""
    for j in range(min(top.shape[0], fed + 1)):
        _compare_exchange(top[j], carry)


@numba.njit(cache=True, nogil=True)
def _feed_counting(top: np.ndarray, carry: np.ndarray, fed: int, tied: np.ndarray) -> None:
    """``_feed``, keeping ``tied`` (Q,) the count of the values that left the top ``n`` (or
    never entered it) equal to its last, positive, value.

    Every value out is at most the last one, so when the last rises none equals it any more;
    when it stays, the value dropped adds one if equal. Done in the last row's exchange,
    where the old last, the new one and the value dropped are all at hand.
    """
    n = top.shape[0]
    _feed(top[: n - 1], carry, fed)
    if fed < n - 1:
        return  # the last row is still 0 and stays so: nothing drops out
    last = top[n - 1]
    for t in range(last.shape[0]):
        kept, fed_value = last[t], carry[t]
        high = kept if kept > fed_value else fed_value
        low = fed_value if kept > fed_value else kept
        last[t] = high
        tied[t] = (tied[t] if high == kept else 0) + (low == high and low > 0)


def entry_jitter_table(sd: float, participation: float) -> np.ndarray:
    """(65,536,) float32: a competitor's bid multiplier for each 16-bit uniform u, 0 = stays out.

    One uniform per (competitor, query) decides both: the competitor enters when
    ``u < participation``; given that, ``u / participation`` is again uniform and independent
    of the entry, so it picks the lognormal jitter from ``lognormal_quantiles``. With 16-bit
    uniforms the participation is rounded to 1/65,536 and the jitter takes about
    ``65,536 x participation`` equally likely values. One table lookup per (competitor,
    query) is the whole draw, which matters: this is the simulator's hottest loop.
    Memoised (the last 64 tables).
    """
    return _exhaust(_jitter_table_stages(sd, participation))


def _jitter_table_stages(sd: float, participation: float) -> Generator[None, None, np.ndarray]:
    """``entry_jitter_table``, its jitter computed ``_JITTER_PART`` cells at a time, a stage
    (a yield) between parts: up to a millisecond at once. ``_to_lognormal`` gives the same
    floats on any part of the quantiles as on all of them."""
    key = (sd, participation)
    table = _JITTER_TABLES.get(key)
    if table is None:
        midpoints = _cell_midpoints()
        # u / participation grows with u (IEEE division is monotone), so the cells that enter
        # are a prefix; only their jitter is computed (random training scenarios never repeat
        # a table, so each is new work and new memory).
        entering = bisect.bisect_left(
            range(_CELLS), True, key=lambda i: float(midpoints[i]) / participation >= 1.0
        )
        share = midpoints[:entering] / participation
        cells = np.multiply(share, _CELLS, out=share)
        np.minimum(cells, _CELLS - 1, out=cells)
        rows = cells.astype(np.intp)
        table = np.zeros(_CELLS, dtype=np.float32)
        for start in range(0, entering, _JITTER_PART):
            if start:
                yield
            end = min(start + _JITTER_PART, entering)
            if sd > MIDPOINT_MAX_SD:
                table[start:end] = _cell_means(sd)[rows[start:end]]
            else:
                table[start:end] = _to_lognormal(_normal_quantiles()[rows[start:end]], 1.0, sd)
        _JITTER_TABLES[key] = table
        while len(_JITTER_TABLES) > 64:
            _JITTER_TABLES.popitem(last=False)
    _JITTER_TABLES.move_to_end(key)
    return table


_JITTER_TABLES: OrderedDict[tuple[float, float], np.ndarray] = OrderedDict()
_JITTER_PART = 1 << 14  # cells of a jitter table computed per stage


@functools.lru_cache(maxsize=64)
def _smallest_jitter(sd: float, participation: float) -> float:
    """The smallest positive entry of ``entry_jitter_table(sd, participation)`` (0 if none)."""
    table = entry_jitter_table(sd, participation)
    smallest = table.min(where=table > 0, initial=np.inf)
    return float(smallest) if np.isfinite(smallest) else 0.0


@dataclass
class _Day:
    keyword: np.ndarray  # (Qd,)
    step_of: np.ndarray  # (Qd,) step in the day of each query
    sizes: np.ndarray  # (steps,) queries per step
    uniforms: np.ndarray  # (3, Qd): tie, click, conversion
    # Without competitor budgets, the competitors' top ranks (slots, Qd) straight from the
    # draws; with them, (C, Qd) float32 competitor bids (0 where one does not enter) and the
    # competitors' click uniforms (Qd,), served (and ranked) in ``_split``.
    comp_bid: np.ndarray | None
    comp_click: np.ndarray | None
    comp_rank: np.ndarray | None
    comp_tied: np.ndarray | None = None  # (Qd,) int32, ``StepMarket.comp_tied``


@dataclass(frozen=True)
class _DayMarket:
    whole: StepMarket  # the day's queries in serving order
    step_of: np.ndarray  # (Qd,) step in the day of each query
    steps: list[StepMarket]  # views of ``whole``, one per step


@dataclass(frozen=True)
class _BidDraw:
    """What turns a day's 16-bit draws into competitor bids (see ``entry_jitter_table``)."""

    table: np.ndarray  # (_CELLS,) float32 entry and jitter
    multiplier: np.ndarray  # (steps,) float32 competitor CPC multiplier of each step
    check_reserve: np.ndarray  # (C,) bool: may a bid of this competitor fall under the reserve?


_T = TypeVar("_T")


def _exhaust(stages: Generator[None, None, _T]) -> _T:
    """What a generator of stages returns, all its stages run."""
    while True:
        try:
            next(stages)
        except StopIteration as stop:
            return cast(_T, stop.value)


# (competitor, query) draws ranked, and bids served with budgets, per stage of
# ``EpisodeMarket.draw_ahead``: a few hundred microseconds.
_RANK_CELLS = 40_000
_BUDGET_CELLS = 20_000


class EpisodeMarket:
    """Lazily drawn, cached market of one (scenario, episode seed)."""

    def __init__(self, scenario: Scenario, universe: Universe, episode_seed: int) -> None:
        self.scenario = scenario
        self.universe = universe
        self.episode_seed = episode_seed
        value = scenario.campaign.conversion_value
        self.value_table = lognormal_quantiles(value.mean, value.sd_log)
        self._days: dict[int, _DayMarket] = {}
        # Days being drawn ahead a stage at a time (``draw_ahead``): each one's stages left.
        self._drawing: dict[int, Iterator[None]] = {}
        self._clickable: tuple[StepMarket, np.ndarray] | None = None
        # A day's landscapes of one multiplier grid, (steps, grid) arrays computed once for
        # every simulator of this episode; keyed by (day, the grid's bytes).
        self.day_landscapes: dict[tuple[int, bytes], Landscape] = {}
        # The same being computed a part at a time (``MarketSimulator.work_ahead``).
        self.landscape_stages: dict[tuple[int, bytes], Iterator[None]] = {}

    def __getstate__(self) -> dict[str, object]:
        """Days and landscapes being computed ahead are finished first: their stages left
        (generators) cannot be pickled or copied."""
        for day in list(self._drawing):
            self._day(day)
        for stages in list(self.landscape_stages.values()):
            for _ in stages:
                pass
        return self.__dict__.copy()

    def whole_day(self, day: int) -> tuple[StepMarket, np.ndarray]:
        """The day's queries as one sequence, in order, and the step in the day of each.

        The day is drawn as one sequence; the steps are views of it, so nothing is copied.
        """
        drawn = self._day(day)
        return drawn.whole, drawn.step_of

    def clickable(self) -> tuple[StepMarket, np.ndarray]:
        """The episode's queries on which we could get a click at all, whatever we bid, day
        after day in serving order, and where each step ends among them: (days x steps,)
        cumulative counts (the oracle sums its clicks step by step, as the simulator does).

        Our click needs ``u_click < click_prob[k, slot] <= click_prob[k, 0]``; on the other
        queries no bid costs or earns anything, only impressions, so whole-episode searches
        over bids (the oracle) can skip them and still spend and convert exactly alike. One
        sequence for the whole episode, so that such a search plays many short days in one
        dense call (a day is a few hundred queries in a long scenario); drawn on first use,
        every day of the episode with it.
        """
        if self._clickable is None:
            steps = self.scenario.horizon.steps_per_day
            parts, per_step = [], []
            for day in range(self.scenario.horizon.days):
                drawn = self._day(day)
                whole = drawn.whole
                index = np.flatnonzero(whole.u_click < self.universe.click_prob[whole.keyword, 0])
                parts.append(whole.subset(index))
                per_step.append(np.bincount(drawn.step_of[index], minlength=steps))
            self._clickable = (StepMarket.joined(parts), np.cumsum(np.concatenate(per_step)))
        return self._clickable

    def clickable_day(self, day: int) -> StepMarket:
        """:meth:`clickable` of one day (views)."""
        queries, step_ends = self.clickable()
        steps = self.scenario.horizon.steps_per_day
        start = int(step_ends[day * steps - 1]) if day else 0
        return queries.subset(slice(start, int(step_ends[(day + 1) * steps - 1])))

    def step(self, index: int) -> StepMarket:
        day, step = divmod(index, self.scenario.horizon.steps_per_day)
        return self._day(day).steps[step]

    def _day(self, day: int) -> _DayMarket:
        drawn = self._days.get(day)
        if drawn is None:
            for _ in self._stages(day):
                pass
            drawn = self._days[day]
        return drawn

    def draw_ahead(self, day: int) -> bool:
        """Draw the next stage of day ``day`` (the queries; their serving order, in two
        halves; their uniforms; the competitors' jitter table, in parts; their ranks, in
        parts for a large day, or with budgets their bids, their clicks, then the budgets
        served, in parts; the day's steps: each a few hundred microseconds); True, drawing
        nothing, once the day is drawn.

        The same draws as drawing the day at once, in the same order from the day's own
        generator, only spread out: a vec env's worker calls this between steps, and a whole
        day at once (about 1 ms) would hold up the step the learner waits for. Nothing of the
        day is handed out before it is played.
        """
        if day in self._days:
            return True
        next(self._stages(day), None)
        return False

    def _stages(self, day: int) -> Iterator[None]:
        """The day's stages left to draw (a generator, kept between ``draw_ahead`` calls);
        the last stores the day."""
        stages = self._drawing.get(day)
        if stages is None:
            stages = self._drawing[day] = self._draw_stages(day)
        return stages

    def _draw_stages(self, day: int) -> Iterator[None]:
        try:
            drawn = yield from self._drawing_day(day)
            if drawn.comp_bid is not None:
                _, drawn.comp_rank, drawn.comp_tied = yield from _serving_budgets(
                    drawn, self.universe, self.scenario
                )
                yield
            self._days[day] = self._split(day, drawn)
        finally:
            # Also when a stage is cut short (an error, a Ctrl-C, out of memory): a spent
            # generator left here would stand for the day's stages left, and every later
            # play of the day would find nothing drawn. The next one draws it again, from
            # the day's own seeds.
            self._drawing.pop(day, None)

    def _drawing_day(self, day: int) -> Generator[None, None, _Day]:
        """The day's draws, a stage at a time, in the order its generator gives them: the
        queries, their serving order, their uniforms, the competitors' ranks (with budgets,
        their bids and clicks, not yet served)."""
        rng = self._rng(day)
        keyword, sizes = self._draw_queries(day, rng)
        yield
        step_of = yield from self._shuffle_steps(rng, keyword, sizes)
        yield
        drawn, bits = self._draw_uniforms(rng, keyword, step_of, sizes)
        yield
        yield from self._draw_competitors(day, rng, drawn, bits)
        return drawn

    def _draw_day(self, day: int) -> _Day:
        """``_drawing_day`` at once (the tests compare it with a reference)."""
        return _exhaust(self._drawing_day(day))

    def _rng(self, day: int) -> np.random.Generator:
        entropy = [self.scenario.seed, self.episode_seed, _EPISODE_TAG]
        sequence = np.random.SeedSequence(entropy, spawn_key=(day,))
        return np.random.Generator(np.random.SFC64(sequence))

    def _draw_queries(self, day: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """The day's queries (the generator's first draws): their keywords, grouped by step
        and keyword (``_shuffle_steps`` puts each step in serving order), and the queries
        per step."""
        uni = self.universe
        spd = self.scenario.horizon.steps_per_day
        first = day * spd
        counts = rng.poisson(np.outer(uni.step_queries[first : first + spd], uni.volume_share))
        keyword = np.repeat(np.tile(np.arange(counts.shape[1]), spd), counts.ravel())
        return keyword, counts.sum(axis=1)

    @staticmethod
    def _shuffle_steps(
        rng: np.random.Generator, keyword: np.ndarray, sizes: np.ndarray
    ) -> Generator[None, None, np.ndarray]:
        """Shuffle each step's queries in place, in order, the first half of the steps
        before a stage ends (a yield) and the rest after; returns the step of each query."""
        ends = np.cumsum(sizes)
        half = sizes.shape[0] // 2
        for step, (start, end) in enumerate(zip(ends - sizes, ends, strict=True)):
            if step == half:
                yield
            rng.shuffle(keyword[start:end])
        return np.repeat(np.arange(sizes.shape[0]), sizes)

    def _draw_uniforms(
        self, rng: np.random.Generator, keyword: np.ndarray, step_of: np.ndarray, sizes: np.ndarray
    ) -> tuple[_Day, np.ndarray]:
        """The queries' uniforms (tie, click, conversion) and the competitors' 16-bit draws
        (C, Qd), the generator's next draws."""
        market = self.scenario.market
        uniforms = rng.random((3, keyword.shape[0]))
        day_market = _Day(keyword, step_of, sizes, uniforms, None, None, None)
        cells = market.competitors * keyword.shape[0]
        bits = rng.bit_generator.random_raw((cells + 3) // 4).view(np.uint16)[:cells]
        return day_market, bits.reshape(market.competitors, keyword.shape[0])

    def _draw_competitors(
        self, day: int, rng: np.random.Generator, day_market: _Day, bits: np.ndarray
    ) -> Generator[None, None, None]:
        """The competitors' top ranks of each query (or, with budgets, their bids and click
        uniforms) from ``bits``; a stage (a yield) after each part of about
        ``_RANK_CELLS`` (competitor, query) draws, each query's ranks being its own."""
        market, uni = self.scenario.market, self.universe
        keyword, step_of = day_market.keyword, day_market.step_of
        yield from _jitter_table_stages(market.bid_noise, market.participation)
        draw = self._bid_draw(day, day_market.sizes)
        yield
        if uni.competitor_budget is None:
            cpc_quality = uni.competitor_cpc * uni.competitor_quality
            # A base CPC under float32's smallest (a scenario's mean of 1e-300) is 0 here: its
            # share is inf (never clears a positive reserve) or NaN (a reserve of 0, and a rank
            # of 0 anyway); either way that competitor is nobody, without numpy's warning.
            with np.errstate(divide="ignore", invalid="ignore"):
                reserve_share = np.float32(market.reserve_cpc) / uni.competitor_cpc
            n_queries = keyword.shape[0]
            ranks = np.zeros((market.slots, n_queries), dtype=np.float32)
            tied = np.zeros(n_queries, dtype=np.int32)
            part = max(1, _RANK_CELLS // max(market.competitors, 1))
            for start in range(0, n_queries, part):
                end = min(start + part, n_queries)
                ranks[:, start:end], tied[start:end] = _top_competitor_ranks(
                    bits[:, start:end],
                    keyword[start:end],
                    step_of[start:end],
                    draw.table,
                    cpc_quality,
                    reserve_share,
                    draw.check_reserve,
                    draw.multiplier,
                    market.slots,
                )
                yield
            day_market.comp_rank, day_market.comp_tied = ranks, tied
        else:
            day_market.comp_bid = _competitor_bids(
                bits,
                keyword,
                step_of,
                draw.table,
                uni.competitor_cpc,
                np.float32(market.reserve_cpc),
                draw.check_reserve,
                draw.multiplier,
            )
            yield
            day_market.comp_click = rng.random((keyword.shape[0],))
            yield

    def _bid_draw(self, day: int, sizes: np.ndarray) -> _BidDraw:
        """The day's jitter table, step multipliers and which competitors the reserve may cut.

        A competitor's bids can fall under the reserve only if its smallest base CPC times the
        smallest jitter and the smallest multiplier of a step with queries can (0.1% margin);
        testing the others would change nothing, so the kernels skip it.
        """
        market, uni = self.scenario.market, self.universe
        spd = self.scenario.horizon.steps_per_day
        multiplier = uni.cpc_multiplier[day * spd : (day + 1) * spd].astype(np.float32)
        table = entry_jitter_table(market.bid_noise, market.participation)
        if not sizes.any():  # a day without queries: no bid is ever tested against the reserve
            return _BidDraw(table, multiplier, np.zeros(uni.competitor_cpc.shape[0], bool))
        smallest = _smallest_jitter(market.bid_noise, market.participation)
        lowest_multiplier = multiplier.min(where=sizes > 0, initial=np.inf)
        lowest = uni.competitor_cpc.min(axis=1) * smallest * lowest_multiplier
        return _BidDraw(table, multiplier, lowest * 0.999 < market.reserve_cpc)

    def _split(self, day: int, drawn: _Day) -> _DayMarket:
        uni = self.universe
        ranks, tied = drawn.comp_rank, drawn.comp_tied
        assert ranks is not None and tied is not None
        spd = self.scenario.horizon.steps_per_day
        cvr = uni.cvr_at(slice(day * spd, (day + 1) * spd))
        quality, query_cvr = _per_query(drawn.keyword, drawn.step_of, uni.quality, cvr)
        whole = StepMarket(
            keyword=drawn.keyword,
            comp_rank=ranks,
            quality=quality,
            cvr=query_cvr,
            u_tie=drawn.uniforms[0],
            u_click=drawn.uniforms[1],
            u_conv=drawn.uniforms[2],
            value_table=self.value_table,
            comp_tied=tied,
        )
        ends = np.cumsum(drawn.sizes).tolist()  # Python ints slice faster than numpy's
        starts = [0, *ends[:-1]]
        steps = [whole.subset(slice(a, b)) for a, b in zip(starts, ends, strict=True)]
        return _DayMarket(whole, drawn.step_of, steps)


@numba.njit(cache=True, nogil=True)
def _per_query(
    keyword: np.ndarray, step_of: np.ndarray, quality: np.ndarray, cvr: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Each query's ``quality[keyword]`` and ``cvr[step, keyword]``: one pass instead of two
    numpy gathers (the two-index one is slow), the same values."""
    n = keyword.shape[0]
    query_quality = np.empty(n, dtype=quality.dtype)
    query_cvr = np.empty(n, dtype=cvr.dtype)
    for i in range(n):
        k = keyword[i]
        query_quality[i] = quality[k]
        query_cvr[i] = cvr[step_of[i], k]
    return query_quality, query_cvr


@numba.njit(cache=True, nogil=True)
def _top_competitor_ranks(
    bits: np.ndarray,
    keyword: np.ndarray,
    step_of: np.ndarray,
    table: np.ndarray,
    cpc_quality: np.ndarray,
    reserve_share: np.ndarray,
    check_reserve: np.ndarray,
    multiplier: np.ndarray,
    slots: int,
) -> tuple[np.ndarray, np.ndarray]:
    """(slots, Q) float32 top competitor ad ranks of each query, descending, 0 = nobody, and
    (Q,) int32 how many competitors beyond those tie with the last (``StepMarket.comp_tied``).

    ``bits`` (C, Q) uint16 draws; ``table``, ``cpc_quality`` (C, K), ``reserve_share`` (C, K)
    (reserve / CPC) and ``multiplier`` (steps,) are float32 and every product is rounded to
    float32: rank = cpc_quality x (table[bits] x multiplier), 0 where a competitor flagged in
    ``check_reserve`` has ``table[bits] x multiplier`` under ``reserve_share``.
    """
    c, q = bits.shape
    top = np.zeros((slots, q), dtype=np.float32)
    tied = np.zeros(q, dtype=np.int32)
    rank = np.empty(q, dtype=np.float32)
    for i in range(c):
        check = check_reserve[i]
        for t in range(q):
            k = keyword[t]
            jitter = np.float32(table[bits[i, t]] * multiplier[step_of[t]])
            # Computed either way, then picked: with a branch the kernel takes 1.5x as long.
            value = np.float32(cpc_quality[i, k] * jitter)
            rank[t] = np.float32(0.0) if check and jitter < reserve_share[i, k] else value
        _feed_counting(top, rank, i, tied)
    return top, tied


@numba.njit(cache=True, nogil=True)
def _competitor_bids(
    bits: np.ndarray,
    keyword: np.ndarray,
    step_of: np.ndarray,
    table: np.ndarray,
    cpc: np.ndarray,
    reserve: np.float32,
    check_reserve: np.ndarray,
    multiplier: np.ndarray,
) -> np.ndarray:
    """(C, Q) float32 max CPCs ``(table[bits] x cpc) x multiplier``, each product rounded to
    float32, 0 where a competitor flagged in ``check_reserve`` bids under ``reserve``."""
    c, q = bits.shape
    bid = np.empty((c, q), dtype=np.float32)
    for i in range(c):
        for t in range(q):
            value = np.float32(table[bits[i, t]] * cpc[i, keyword[t]])
            value = np.float32(value * multiplier[step_of[t]])
            bid[i, t] = 0.0 if check_reserve[i] and value < reserve else value
    return bid


@numba.njit(cache=True, nogil=True)
def _serve_competitor_budgets(
    bid: np.ndarray,
    keyword: np.ndarray,
    quality: np.ndarray,
    click_factor: np.ndarray,
    u_click: np.ndarray,
    budget: np.ndarray,
    position_ctr: np.ndarray,
    reserve: float,
    out_from: np.ndarray,
    spent: np.ndarray,
    day_ranks: np.ndarray,
    day_tied: np.ndarray,
    start: int,
    end: int,
) -> None:
    """Serve the day's queries ``start..end-1``, in place: ``out_from`` (C,) int64, the query
    from which each competitor is out of budget (Q: not yet), ``spent`` (C,) each one's spend
    so far, ``day_ranks`` (slots, Q) float32, the top ranks of each query among the
    competitors still in, and ``day_tied`` (Q,) int32, how many more of them tie with the
    last of those ranks (``_count_tied``). Consecutive ranges from 0 give what one pass over
    the day gives.

    Serves the day query by query: ``bid`` (C, Q) float32, 0 = does not enter; ``quality``
    and ``click_factor`` (C, K) float64, the latter ``quality_factor(quality)``. A running
    top ``slots + 1`` by rank is kept by insertion; an equal rank stays behind the lower
    competitor index. Once it is full, a rank must beat its last to enter: one test that
    also skips the competitors that do not enter (0), so fewer mispredicted branches.
    """
    c, q = bid.shape
    slots = position_ctr.shape[0]
    top_who = np.empty(slots + 1, dtype=np.int64)
    top_rank = np.empty(slots + 1)
    for t in range(start, end):
        k = keyword[t]
        filled = 0
        floor = 0.0
        for i in range(c):
            if out_from[i] < q:
                continue
            if spent[i] >= budget[i]:
                out_from[i] = t
                continue
            rank = np.float64(bid[i, t]) * quality[i, k]
            if rank <= floor:
                continue
            pos = min(filled, slots)  # when full, the last drops out
            while pos > 0 and top_rank[pos - 1] < rank:
                top_who[pos] = top_who[pos - 1]
                top_rank[pos] = top_rank[pos - 1]
                pos -= 1
            top_who[pos] = i
            top_rank[pos] = rank
            filled = min(filled + 1, slots + 1)
            if filled == slots + 1:
                floor = float(top_rank[slots])
        for j in range(min(slots, filled)):
            day_ranks[j, t] = top_rank[j]
            who = top_who[j]
            if u_click[t] >= min(position_ctr[j] * click_factor[who, k], 1.0):
                continue
            below = top_rank[j + 1] if j + 1 < filled else 0.0
            price = max(reserve, below / quality[who, k]) + 0.01
            spent[who] += min(np.float64(bid[who, t]), price)
        # Spending only takes a competitor out from the next query on: the same ones are in.
        if filled == slots + 1 and np.float32(top_rank[slots]) == day_ranks[slots - 1, t]:
            day_tied[t] = _count_tied(bid, quality, out_from, day_ranks, t, k)


@numba.njit(cache=True, nogil=True)
def _count_tied(
    bid: np.ndarray,
    quality: np.ndarray,
    out_from: np.ndarray,
    day_ranks: np.ndarray,
    t: int,
    k: int,
) -> int:
    """How many competitors still in on query ``t`` beyond its top ranks ``day_ranks[:, t]``
    rank as its last (as float32, the ranks we meet): a second look at every competitor, on
    the rare queries where one beyond the top does."""
    last = day_ranks[day_ranks.shape[0] - 1, t]
    count = 0
    for i in range(bid.shape[0]):
        if out_from[i] == bid.shape[1]:
            count += np.float32(np.float64(bid[i, t]) * quality[i, k]) == last
    for j in range(day_ranks.shape[0]):
        count -= day_ranks[j, t] == last
    return count


def _serve_budgets(drawn: _Day, uni: Universe, scenario: Scenario) -> tuple[np.ndarray, np.ndarray]:
    """The day's competitor bids served with budgets (see the module docstring): the query
    from which each competitor is out, and each query's top ranks among those still in."""
    out_from, day_ranks, _ = _exhaust(_serving_budgets(drawn, uni, scenario))
    return out_from, day_ranks


def _serving_budgets(
    drawn: _Day, uni: Universe, scenario: Scenario
) -> Generator[None, None, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``_serve_budgets`` a part of about ``_BUDGET_CELLS`` (competitor, query) bids at a time,
    a stage (a yield) between parts, with each query's ``StepMarket.comp_tied``."""
    assert uni.competitor_budget is not None and drawn.comp_bid is not None
    assert drawn.comp_click is not None
    market = scenario.market
    quality = uni.competitor_quality.astype(np.float64)
    click_factor = quality_factor(quality)
    position_ctr = np.asarray(market.position_ctr, dtype=np.float64)
    competitors, n_queries = drawn.comp_bid.shape
    out_from = np.full(competitors, n_queries, dtype=np.int64)
    spent = np.zeros(competitors)
    day_ranks = np.zeros((position_ctr.shape[0], n_queries), dtype=np.float32)
    day_tied = np.zeros(n_queries, dtype=np.int32)
    part = max(1, _BUDGET_CELLS // max(competitors, 1))
    for start in range(0, n_queries, part):
        if start:
            yield
        _serve_competitor_budgets(
            drawn.comp_bid,
            drawn.keyword,
            quality,
            click_factor,
            drawn.comp_click,
            uni.competitor_budget,
            position_ctr,
            float(market.reserve_cpc),
            out_from,
            spent,
            day_ranks,
            day_tied,
            start,
            min(start + part, n_queries),
        )
    return out_from, day_ranks, day_tied


_CACHE: OrderedDict[tuple[str, int], EpisodeMarket] = OrderedDict()
_UNIVERSES: OrderedDict[str, Universe] = OrderedDict()
_CACHE_SIZE = 4


def scenario_key(scenario: Scenario) -> str:
    """A string equal for two scenarios exactly when all their fields are (a cache key).

    Pydantic's own JSON: fields in their fixed order, each float in its shortest exact form;
    several times cheaper than dumping to a dict and through ``json``.
    """
    return scenario.model_dump_json()


def universe_for(scenario: Scenario) -> Universe:
    """The scenario's universe, memoised (a few recent scenarios)."""
    return _universe(scenario_key(scenario), scenario)


def _universe(key: str, scenario: Scenario) -> Universe:
    if key not in _UNIVERSES:
        _UNIVERSES[key] = build_universe(scenario)
        while len(_UNIVERSES) > 4 * _CACHE_SIZE:
            _UNIVERSES.popitem(last=False)
    _UNIVERSES.move_to_end(key)
    return _UNIVERSES[key]


def forget_episode_market(scenario: Scenario, episode_seed: int) -> None:
    """Drop the episode's market from the cache (it is drawn again if asked for): a caller
    done with an episode frees its draws at once, about 80 bytes a query, instead of
    keeping the last few episodes' (gigabytes for a large scenario)."""
    _CACHE.pop((scenario_key(scenario), episode_seed), None)


def episode_market(scenario: Scenario, episode_seed: int) -> EpisodeMarket:
    """The episode's market, shared by every policy run on the same (scenario, seed)."""
    scenario_id = scenario_key(scenario)
    key = (scenario_id, episode_seed)
    if key not in _CACHE:
        _CACHE[key] = EpisodeMarket(scenario, _universe(scenario_id, scenario), episode_seed)
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    _CACHE.move_to_end(key)
    return _CACHE[key]
