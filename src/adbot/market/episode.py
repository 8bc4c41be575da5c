"""The pre-drawn market of one episode: every random draw the episode seed fixes.

Common random numbers: each day draws from its own generator, seeded by
``SeedSequence([scenario.seed, episode_seed, 1], spawn_key=(day,))``; nothing drawn depends
on bids, so every policy run on the same (scenario, episode seed) faces the same queries,
competitor bids and uniform numbers. A step keeps only what our auctions need: per query,
the keyword, the top ``slots`` competitor ad ranks (competitor ranks do not depend on
our bid), and the uniforms that decide tie-breaks, clicks and conversions (and, through
the latter, a conversion's value). Days are drawn lazily, on first use, and kept.

Competitor entry and lognormal bid jitter come from one 16-bit uniform per (competitor,
query), see ``entry_jitter_table``. Competitor arrays are laid out (competitors, queries) so each
operation is one long vector operation.

Competitor budgets (``market.competitor_budget``) are applied exactly, day by day, on the
auctions *without our campaign*: a competitor leaves for the rest of the day once its
cumulative spend reaches its budget. Tracking them without us keeps the market independent
of our bids (our presence can only push a competitor down and lower its spend, so with us
it would leave at most a little later). Competitor clicks use one uniform per query shared
by all slots (a click at slot j when ``u < ctr_j * quality_factor``). The day is served
query by query in a compiled kernel (numba, ``_serve_competitor_budgets``): the competitors
still present rank by bid x quality, the top ``slots`` pay the generalised second price on a
click, and one whose spend reaches its budget bids 0 from the next query on. Equal ranks go
to the lower competitor index (only positive ties matter, and they are rare).
"""

from __future__ import annotations

import functools
import json
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from statistics import NormalDist
from typing import TYPE_CHECKING

import numba
import numpy as np

from adbot.market.scenario import Scenario
from adbot.market.universe import MAX_CVR, Universe, build_universe, quality_factor

if TYPE_CHECKING:
    from adbot.market.landscape import Landscape

_EPISODE_TAG = 1
_CELLS = 2**16


@functools.cache
def _normal_quantiles() -> np.ndarray:
    """Standard normal quantiles at the midpoints of ``_CELLS`` equal-probability cells."""
    dist = NormalDist()
    return np.array([dist.inv_cdf((i + 0.5) / _CELLS) for i in range(_CELLS)])


@functools.lru_cache(maxsize=64)
def lognormal_quantiles(mean: float, sd: float) -> np.ndarray:
    """Mean-preserving lognormal ``mean * exp(sd z - sd^2 / 2)`` at the cell midpoints.

    Drawing ``table[floor(u * _CELLS)]`` for a uniform u gives 65,536 equally likely values:
    adjacent ones differ by under 0.1% relative in the body of the distribution, and |z| is
    clamped at 4.3 (a 1e-5 tail).
    """
    return mean * np.exp(sd * _normal_quantiles() - 0.5 * sd * sd)


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

    def subset(self, queries: np.ndarray) -> StepMarket:
        """The same step restricted to some queries (kept in serving order)."""
        return StepMarket(
            keyword=self.keyword[queries],
            comp_rank=self.comp_rank[:, queries],
            quality=self.quality[queries],
            cvr=self.cvr[queries],
            u_tie=self.u_tie[queries],
            u_click=self.u_click[queries],
            u_conv=self.u_conv[queries],
            value_table=self.value_table,
        )

    @classmethod
    def concatenate(cls, parts: list[StepMarket]) -> StepMarket:
        """Several steps' queries as one sequence, in order."""
        return cls(
            keyword=np.concatenate([p.keyword for p in parts]),
            comp_rank=np.concatenate([p.comp_rank for p in parts], axis=1),
            quality=np.concatenate([p.quality for p in parts]),
            cvr=np.concatenate([p.cvr for p in parts]),
            u_tie=np.concatenate([p.u_tie for p in parts]),
            u_click=np.concatenate([p.u_click for p in parts]),
            u_conv=np.concatenate([p.u_conv for p in parts]),
            value_table=parts[0].value_table,
        )


class _TopRanks:
    """Running top ``n`` of rows fed one at a time (an insertion network on whole rows).

    Each row is a vector over queries; after all rows, ``top[i]`` holds each query's
    (i+1)-th largest value. About 3x faster than sorting each query's few competitors.
    """

    def __init__(self, n: int, size: int) -> None:
        self.top = np.zeros((n, size), dtype=np.float32)
        self._spare = np.empty(size, dtype=np.float32)
        self._fed = 0

    def feed(self, row: np.ndarray) -> None:
        """Insert ``row`` (float32, not ``top`` itself); its contents are overwritten."""
        carry, spare = row, self._spare
        for i in range(min(self.top.shape[0], self._fed + 1)):
            np.minimum(self.top[i], carry, out=spare)
            np.maximum(self.top[i], carry, out=self.top[i])
            carry, spare = spare, carry
        self._fed += 1


def top_ranks(ranks: np.ndarray, n: int) -> np.ndarray:
    """The ``n`` largest of each column of ``ranks`` (C, Q) >= 0, descending, 0-padded."""
    network = _TopRanks(n, ranks.shape[1])
    for row in ranks:
        network.feed(row.astype(np.float32))
    return network.top


@functools.lru_cache(maxsize=64)
def entry_jitter_table(sd: float, participation: float) -> np.ndarray:
    """(65,536,) float32: a competitor's bid multiplier for each 16-bit uniform u, 0 = stays out.

    One uniform per (competitor, query) decides both: the competitor enters when
    ``u < participation``; given that, ``u / participation`` is again uniform and independent
    of the entry, so it picks the lognormal jitter from ``lognormal_quantiles``. With 16-bit
    uniforms the participation is rounded to 1/65,536 and the jitter takes about
    ``65,536 x participation`` equally likely values. One table lookup per (competitor,
    query) is the whole draw, which matters: this is the simulator's hottest loop.
    """
    u = (np.arange(_CELLS) + 0.5) / _CELLS
    share = u / participation
    cells = np.minimum(share * _CELLS, _CELLS - 1).astype(np.intp)
    jitter = lognormal_quantiles(1.0, sd)[cells]
    return np.where(share < 1.0, jitter, 0.0).astype(np.float32)


@dataclass
class _Day:
    keyword: np.ndarray  # (Qd,)
    step_of: np.ndarray  # (Qd,) step in the day of each query
    sizes: np.ndarray  # (steps,) queries per step
    uniforms: np.ndarray  # (3, Qd): tie, click, conversion
    # With competitor budgets only: (C, Qd) float32 competitor bids (0 where one does not
    # enter) and the competitors' click uniforms (Qd,); otherwise the competitors' top
    # ranks are computed on the fly, row by row, into comp_rank (slots, Qd).
    comp_bid: np.ndarray | None
    comp_click: np.ndarray | None
    comp_rank: np.ndarray | None


class EpisodeMarket:
    """Lazily drawn, cached market of one (scenario, episode seed)."""

    def __init__(self, scenario: Scenario, universe: Universe, episode_seed: int) -> None:
        self.scenario = scenario
        self.universe = universe
        self.episode_seed = episode_seed
        value = scenario.campaign.conversion_value
        self.value_table = lognormal_quantiles(value.mean, value.sd_log)
        self._days: dict[int, list[StepMarket]] = {}
        self._clickable: dict[int, StepMarket] = {}
        self._whole_days: dict[int, tuple[StepMarket, np.ndarray]] = {}
        # A day's landscapes of one multiplier grid, (steps, grid) arrays computed once for
        # every simulator of this episode; keyed by (day, the grid's bytes).
        self.day_landscapes: dict[tuple[int, bytes], Landscape] = {}

    def whole_day(self, day: int) -> tuple[StepMarket, np.ndarray]:
        """The day's queries as one sequence, in order, and the step in the day of each."""
        if day not in self._whole_days:
            spd = self.scenario.horizon.steps_per_day
            steps = [self.step(index) for index in range(day * spd, (day + 1) * spd)]
            sizes = [step.n_queries for step in steps]
            step_of = np.repeat(np.arange(spd), sizes)
            self._whole_days[day] = (StepMarket.concatenate(steps), step_of)
        return self._whole_days[day]

    def clickable_day(self, day: int) -> StepMarket:
        """The day's queries, in order, on which we could get a click at all, whatever we bid.

        Our click needs ``u_click < click_prob[k, slot] <= click_prob[k, 0]``; on the other
        queries no bid costs or earns anything, only impressions, so whole-episode searches
        over bids (the oracle) can skip them and still spend and convert exactly alike.
        """
        if day not in self._clickable:
            spd = self.scenario.horizon.steps_per_day
            parts = []
            for index in range(day * spd, (day + 1) * spd):
                step = self.step(index)
                best = self.universe.click_prob[step.keyword, 0]
                parts.append(step.subset(np.flatnonzero(step.u_click < best)))
            self._clickable[day] = StepMarket.concatenate(parts)
        return self._clickable[day]

    def step(self, index: int) -> StepMarket:
        spd = self.scenario.horizon.steps_per_day
        day = index // spd
        if day not in self._days:
            self._days[day] = self._split(day, self._draw_day(day))
        return self._days[day][index % spd]

    def _rng(self, day: int) -> np.random.Generator:
        entropy = [self.scenario.seed, self.episode_seed, _EPISODE_TAG]
        sequence = np.random.SeedSequence(entropy, spawn_key=(day,))
        return np.random.Generator(np.random.SFC64(sequence))

    def _draw_day(self, day: int) -> _Day:
        uni, spd = self.universe, self.scenario.horizon.steps_per_day
        rng = self._rng(day)
        first = day * spd
        counts = rng.poisson(np.outer(uni.step_queries[first : first + spd], uni.volume_share))
        sizes = counts.sum(axis=1)
        keyword = np.repeat(np.tile(np.arange(counts.shape[1]), spd), counts.ravel())
        ends = np.cumsum(sizes)
        for start, end in zip(ends - sizes, ends, strict=True):
            rng.shuffle(keyword[start:end])
        step_of = np.repeat(np.arange(spd), sizes)
        uniforms = rng.random((3, keyword.shape[0]))
        day_market = _Day(keyword, step_of, sizes, uniforms, None, None, None)
        cells = self.scenario.market.competitors * keyword.shape[0]
        bits = rng.bit_generator.random_raw((cells + 3) // 4).view(np.uint16)[:cells]
        bits = bits.reshape(self.scenario.market.competitors, keyword.shape[0])
        if uni.competitor_budget is None:
            day_market.comp_rank = self._ranks_direct(bits, keyword, first + step_of)
        else:
            rows = self._bid_rows(bits, keyword, first + step_of)
            day_market.comp_bid = np.array([row.copy() for row in rows]).reshape(bits.shape)
            day_market.comp_click = rng.random(keyword.shape[0])
        return day_market

    def _reserve_may_bind(self, multiplier: np.ndarray, table: np.ndarray) -> np.ndarray:
        """Per competitor: could any of its bids today fall under the reserve price?"""
        smallest = float(table[table > 0].min()) if (table > 0).any() else 0.0
        lowest = self.universe.competitor_cpc.min(axis=1) * smallest * multiplier.min()
        return lowest * 0.999 < self.scenario.market.reserve_cpc

    def _bid_rows(
        self, bits: np.ndarray, keyword: np.ndarray, step_index: np.ndarray
    ) -> Iterator[np.ndarray]:
        """Each competitor's max CPCs on the day's queries, 0 where it does not enter.

        One competitor (a row over the day's queries) at a time, in one reused buffer: few,
        long vector operations and no large temporaries. Consume each row before the next.
        """
        market, uni = self.scenario.market, self.universe
        q = keyword.shape[0]
        multiplier = uni.cpc_multiplier[step_index].astype(np.float32)
        table = entry_jitter_table(market.bid_noise, market.participation)
        check_reserve = self._reserve_may_bind(multiplier, table)
        shocked = not np.all(multiplier == 1.0)
        row, cpc = np.empty(q, dtype=np.float32), np.empty(q, dtype=np.float32)
        entry = np.empty(q, dtype=bool)
        for i in range(market.competitors):
            np.take(table, bits[i], out=row)
            np.take(uni.competitor_cpc[i], keyword, out=cpc)
            row *= cpc
            if shocked:
                row *= multiplier
            if check_reserve[i]:
                np.greater_equal(row, np.float32(market.reserve_cpc), out=entry)
                row *= entry
            yield row

    def _ranks_direct(
        self, bits: np.ndarray, keyword: np.ndarray, step_index: np.ndarray
    ) -> np.ndarray:
        """(slots, Qd) top competitor ranks straight from the draws (no competitor budgets).

        Rank = (CPC x quality)[keyword] x jitter: one table lookup per competitor, and the
        reserve test only for competitors whose bids can fall under it.
        """
        market, uni = self.scenario.market, self.universe
        q = keyword.shape[0]
        multiplier = uni.cpc_multiplier[step_index].astype(np.float32)
        shocked = not np.all(multiplier == 1.0)
        table = entry_jitter_table(market.bid_noise, market.participation)
        check_reserve = self._reserve_may_bind(multiplier, table)
        cpc_quality = uni.competitor_cpc * uni.competitor_quality
        reserve_share = np.float32(market.reserve_cpc) / uni.competitor_cpc
        network = _TopRanks(market.slots, q)
        jitter, row = np.empty(q, dtype=np.float32), np.empty(q, dtype=np.float32)
        entry = np.empty(q, dtype=bool)
        for i in range(market.competitors):
            np.take(table, bits[i], out=jitter)
            if shocked:
                jitter *= multiplier
            if check_reserve[i]:  # bid >= reserve  <=>  jitter >= reserve / cpc
                np.take(reserve_share[i], keyword, out=row)
                np.greater_equal(jitter, row, out=entry)
                jitter *= entry
            np.take(cpc_quality[i], keyword, out=row)
            row *= jitter
            network.feed(row)
        return network.top

    def _ranks(self, bid_rows: Iterable[np.ndarray], keyword: np.ndarray) -> np.ndarray:
        """(slots, Qd) best competitor ad ranks of each query, from bid rows (consumed).

        Only the top ``slots`` matter: with our rank below all of them we get no slot,
        otherwise the next rank below ours is one of them.
        """
        quality = self.universe.competitor_quality
        network = _TopRanks(self.scenario.market.slots, keyword.shape[0])
        rank = np.empty(keyword.shape[0], dtype=np.float32)
        for i, bids in enumerate(bid_rows):
            np.take(quality[i], keyword, out=rank)
            rank *= bids
            network.feed(rank)
        return network.top

    def _split(self, day: int, drawn: _Day) -> list[StepMarket]:
        uni = self.universe
        if drawn.comp_bid is not None:
            drawn.comp_bid = _budget_limited(drawn, uni, self.scenario)
            drawn.comp_rank = self._ranks(drawn.comp_bid, drawn.keyword)
        ranks = drawn.comp_rank
        assert ranks is not None
        spd = self.scenario.horizon.steps_per_day
        cvr = np.minimum(
            np.outer(uni.cvr_multiplier[day * spd : (day + 1) * spd], uni.true_cvr), MAX_CVR
        )
        query_cvr = cvr[drawn.step_of, drawn.keyword]
        quality = uni.quality[drawn.keyword]
        steps = []
        ends = np.cumsum(drawn.sizes)
        for a, b in zip(ends - drawn.sizes, ends, strict=True):
            steps.append(
                StepMarket(
                    keyword=drawn.keyword[a:b],
                    comp_rank=ranks[:, a:b],
                    quality=quality[a:b],
                    cvr=query_cvr[a:b],
                    u_tie=drawn.uniforms[0, a:b],
                    u_click=drawn.uniforms[1, a:b],
                    u_conv=drawn.uniforms[2, a:b],
                    value_table=self.value_table,
                )
            )
        return steps


def _competitor_spend(
    bid: np.ndarray, quality: np.ndarray, u_click: np.ndarray, scenario: Scenario
) -> np.ndarray:
    """(C, Q) spend of each competitor on each query, in the auction without us.

    The per-query definition that ``_serve_competitor_budgets`` runs, vectorised over queries
    with no budgets; the tests serve a day with it one query at a time as the reference.
    Equal ranks go to the lower competitor index first (a stable sort), as in the kernel.
    """
    market = scenario.market
    c, q = bid.shape
    ranks = bid.astype(np.float64) * quality
    order = np.argsort(-ranks, axis=0, kind="stable")[: min(market.slots + 1, c)]
    cols = np.arange(q)
    spend = np.zeros((c, q))
    for j in range(min(market.slots, c)):
        who = order[j]
        rank = ranks[who, cols]
        below = ranks[order[j + 1], cols] if j + 1 < order.shape[0] else np.zeros(q)
        own_q = quality[who, cols].astype(np.float64)
        price = np.minimum(bid[who, cols], np.maximum(market.reserve_cpc, below / own_q) + 0.01)
        p_click = np.minimum(market.position_ctr[j] * quality_factor(own_q), 1.0)
        clicked = (rank > 0) & (u_click < p_click)
        spend[who, cols] = np.where(clicked, price, 0.0)
    return spend


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
) -> np.ndarray:
    """(C,) int64: the query from which each competitor is out of budget (Q: never).

    Serves the day query by query: ``bid`` (C, Q) float32, 0 = does not enter; ``quality``
    and ``click_factor`` (C, K) float64, the latter ``quality_factor(quality)``. A running
    top ``slots + 1`` by rank is kept by insertion; an equal rank stays behind the lower
    competitor index.
    """
    c, q = bid.shape
    slots = position_ctr.shape[0]
    out_from = np.full(c, q, dtype=np.int64)
    spent = np.zeros(c)
    top_who = np.empty(slots + 1, dtype=np.int64)
    top_rank = np.empty(slots + 1)
    for t in range(q):
        k = keyword[t]
        filled = 0
        for i in range(c):
            if out_from[i] < q:
                continue
            if spent[i] >= budget[i]:
                out_from[i] = t
                continue
            rank = np.float64(bid[i, t]) * quality[i, k]
            if rank <= 0.0:
                continue
            pos = filled
            while pos > 0 and top_rank[pos - 1] < rank:
                pos -= 1
            if pos > slots:
                continue
            for m in range(min(filled, slots), pos, -1):
                top_who[m] = top_who[m - 1]
                top_rank[m] = top_rank[m - 1]
            top_who[pos] = i
            top_rank[pos] = rank
            filled = min(filled + 1, slots + 1)
        for j in range(min(slots, filled)):
            who = top_who[j]
            if u_click[t] >= min(position_ctr[j] * click_factor[who, k], 1.0):
                continue
            below = top_rank[j + 1] if j + 1 < filled else 0.0
            price = max(reserve, below / quality[who, k]) + 0.01
            spent[who] += min(np.float64(bid[who, t]), price)
    return out_from


def _budget_limited(drawn: _Day, uni: Universe, scenario: Scenario) -> np.ndarray:
    """Competitor bids, 0 from the query after the one where a competitor's day spend
    reaches its budget (see the module docstring)."""
    assert uni.competitor_budget is not None and drawn.comp_bid is not None
    assert drawn.comp_click is not None
    market = scenario.market
    quality = uni.competitor_quality.astype(np.float64)
    out_from = _serve_competitor_budgets(
        drawn.comp_bid,
        drawn.keyword,
        quality,
        quality_factor(quality),
        drawn.comp_click,
        uni.competitor_budget,
        np.asarray(market.position_ctr, dtype=np.float64),
        float(market.reserve_cpc),
    )
    live = drawn.comp_bid.copy()
    for i, start in enumerate(out_from):
        live[i, start:] = 0.0
    return live


_CACHE: OrderedDict[tuple[str, int], EpisodeMarket] = OrderedDict()
_UNIVERSES: OrderedDict[str, Universe] = OrderedDict()
_CACHE_SIZE = 4


def scenario_key(scenario: Scenario) -> str:
    return json.dumps(scenario.model_dump(mode="json"), sort_keys=True)


def universe_for(scenario: Scenario) -> Universe:
    """The scenario's universe, memoised (a few recent scenarios)."""
    key = scenario_key(scenario)
    if key not in _UNIVERSES:
        _UNIVERSES[key] = build_universe(scenario)
        while len(_UNIVERSES) > 4 * _CACHE_SIZE:
            _UNIVERSES.popitem(last=False)
    _UNIVERSES.move_to_end(key)
    return _UNIVERSES[key]


def episode_market(scenario: Scenario, episode_seed: int) -> EpisodeMarket:
    """The episode's market, shared by every policy run on the same (scenario, seed)."""
    key = (scenario_key(scenario), episode_seed)
    if key not in _CACHE:
        _CACHE[key] = EpisodeMarket(scenario, universe_for(scenario), episode_seed)
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    _CACHE.move_to_end(key)
    return _CACHE[key]
