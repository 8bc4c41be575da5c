"""The auction against a query-by-query reference: slots, GSP prices, clicks, budget cut-off."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adbot.market import MarketSimulator
from adbot.market import episode as episode_module
from adbot.market.auction import (
    AMOUNT_ROWS,
    COUNT_ROWS,
    AuctionRules,
    Served,
    placed_dense,
    serve,
)
from adbot.market.episode import StepMarket, _feed, entry_jitter_table, episode_market
from adbot.market.scenario import Scenario


def reference_serve(
    step: StepMarket, bids: np.ndarray, spend: float, budget: float, rules: AuctionRules
) -> dict[str, list[float]]:
    """MARKET.md's auction, one query at a time (a test oracle, not fast)."""
    shown, slots, clicked, cost, converted = [], [], [], [], []
    n_served = 0
    for i in range(step.n_queries):
        if spend >= budget:
            break
        n_served = i + 1
        bid = float(bids[step.keyword[i]])
        if bid <= 0 or bid < rules.reserve:
            continue
        rank = bid * step.quality[i]
        competitors = step.comp_rank[:, i]
        above = int(np.sum(competitors > rank))
        ties = int(np.sum(competitors == rank))
        slot = above + int(step.u_tie[i] * (ties + 1))
        if slot >= rules.slots:
            continue
        price = min(bid, max(rules.reserve, competitors[slot] / step.quality[i]) + 0.01)
        shown.append(i)
        slots.append(slot)
        if step.u_click[i] < rules.click_prob[step.keyword[i], slot]:
            clicked.append(i)
            cost.append(price)
            converted.append(step.u_conv[i] < step.cvr[i])
            spend += price
    return {
        "n_served": [n_served],
        "spend": [spend],
        "shown": shown,
        "slot": slots,
        "clicked": clicked,
        "cost": cost,
        "converted": converted,
    }


def assert_matches(served: Served, expected: dict[str, list[float]]) -> None:
    assert served.n_served == expected["n_served"][0]
    assert served.spend_after == pytest.approx(expected["spend"][0], rel=1e-12, abs=1e-12)
    assert served.shown.tolist() == expected["shown"]
    assert served.slot.tolist() == expected["slot"]
    assert served.clicked.tolist() == expected["clicked"]
    np.testing.assert_allclose(served.cost, expected["cost"], rtol=1e-12)
    assert served.converted.tolist() == expected["converted"]


def _sim(scenario: Scenario, seed: int = 0) -> MarketSimulator:
    return MarketSimulator(scenario, seed)


@settings(max_examples=30, deadline=None)
@given(
    alpha=st.floats(min_value=0.0, max_value=6.0),
    noise=st.integers(min_value=0, max_value=1000),
    budget=st.sampled_from([5.0, 40.0, 1e9]),
    spend=st.sampled_from([0.0, 3.0, 60.0]),
    index=st.integers(min_value=0, max_value=15),
)
def test_serve_matches_query_by_query_reference(
    small: Scenario, alpha: float, noise: int, budget: float, spend: float, index: int
) -> None:
    sim = _sim(small)
    rng = np.random.default_rng(noise)
    bids = sim.validate_bids(alpha * sim.keyword_values * rng.lognormal(0, 0.5, sim.n_keywords))
    step = sim.market.step(index)
    served = serve(step, bids, spend, budget, sim.rules)
    expected = reference_serve(step, bids, spend, budget, sim.rules)
    assert_matches(served, expected)
    assert_keyword_totals(served, step, bids, expected, sim.rules)


def assert_keyword_totals(
    served: Served,
    step: StepMarket,
    bids: np.ndarray,
    expected: dict[str, list[float]],
    rules: AuctionRules,
) -> None:
    """``Served.counts``/``amounts`` are the reference's queries aggregated per keyword."""
    k = rules.click_prob.shape[0]
    n = int(expected["n_served"][0])
    kw = step.keyword

    def per_keyword(queries: list[float], weights: list[float] | None = None) -> np.ndarray:
        return np.bincount(kw[np.asarray(queries, dtype=np.intp)], weights, minlength=k)

    served_bids = bids[kw[:n]]
    entered = np.flatnonzero((served_bids > 0) & (served_bids >= rules.reserve))
    clicked = np.asarray(expected["clicked"], dtype=np.intp)
    converted = clicked[np.asarray(expected["converted"], dtype=bool)]
    queries = np.bincount(kw, minlength=k)
    impressions = per_keyword(expected["shown"])
    clicks = per_keyword(expected["clicked"])
    cost = per_keyword(expected["clicked"], expected["cost"])
    counts = dict(zip(COUNT_ROWS, served.counts, strict=True))
    amounts = dict(zip(AMOUNT_ROWS, served.amounts, strict=True))
    assert np.array_equal(counts["queries"], queries)
    assert np.array_equal(counts["auctions_entered"], per_keyword(list(entered)))
    assert np.array_equal(counts["impressions"], impressions)
    assert np.array_equal(counts["clicks"], clicks)
    assert np.array_equal(counts["conversions"], per_keyword(list(converted)))
    np.testing.assert_allclose(amounts["cost"], cost, rtol=1e-12, atol=1e-12)
    value = per_keyword(list(converted), list(step.value_of(converted)))
    np.testing.assert_allclose(amounts["value"], value, rtol=1e-12, atol=1e-12)
    share = np.divide(impressions, queries, out=np.zeros(k), where=queries > 0)
    np.testing.assert_allclose(amounts["impression_share"], share, rtol=1e-12)
    positions = per_keyword(expected["shown"], [s + 1.0 for s in expected["slot"]])
    position = np.divide(positions, impressions, out=np.zeros(k), where=impressions > 0)
    np.testing.assert_allclose(amounts["avg_position"], position, rtol=1e-12)
    cpc = np.divide(cost, clicks, out=np.zeros(k), where=clicks > 0)
    np.testing.assert_allclose(amounts["avg_cpc"], cpc, rtol=1e-12, atol=1e-12)
    assert served.total_cost == pytest.approx(sum(expected["cost"]), rel=1e-12, abs=1e-12)
    assert served.total_value == pytest.approx(value.sum(), rel=1e-12, abs=1e-12)


def _tied_step(sim: MarketSimulator, bids: np.ndarray) -> StepMarket:
    """A real step whose competitor ranks are overwritten to tie with our ranks.

    Quality 1 and bids in eighths make our ranks exact in the float32 the ranks are kept in.
    """
    step = sim.market.step(3)
    ranks = step.comp_rank.copy()
    ours = bids[step.keyword]
    ranks[0, ::3] = np.maximum(ranks[0, ::3], ours[::3])
    ranks[1, ::3] = ours[::3]  # a tie on every third query (when it keeps the order)
    ranks = -np.sort(-ranks, axis=0)
    return StepMarket(
        keyword=step.keyword,
        comp_rank=ranks.astype(np.float32),
        quality=np.ones(step.n_queries),
        cvr=step.cvr,
        u_tie=step.u_tie,
        u_click=step.u_click,
        u_conv=step.u_conv,
        value_table=step.value_table,
    )


def test_ties_are_broken_at_random_and_match_the_reference(small: Scenario) -> None:
    sim = _sim(small)
    bids = sim.validate_bids(np.round(8 * np.clip(sim.keyword_values, 0.5, 9)) / 8)
    step = _tied_step(sim, bids)
    served = serve(step, bids, 0.0, 1e9, sim.rules)
    expected = reference_serve(step, bids, 0.0, 1e9, sim.rules)
    assert_matches(served, expected)
    assert_keyword_totals(served, step, bids, expected, sim.rules)
    ours = bids[step.keyword] * step.quality
    tied = np.flatnonzero((step.comp_rank == ours).any(axis=0) & (ours > 0))
    shown_tied = np.intersect1d(tied, served.shown)
    assert shown_tied.size > 0
    above = (step.comp_rank[:, shown_tied] > ours[shown_tied]).sum(axis=0)
    slots = served.slot[np.searchsorted(served.shown, shown_tied)]
    assert (slots >= above).all() and (slots > above).any() and (slots == above).any()
    # The oracle's dense placement (batch.py) breaks the same ties the same way.
    impression, slot, price, p_click = placed_dense(step, bids[None, :], sim.rules)
    assert np.array_equal(np.flatnonzero(impression[0]), served.shown)
    assert np.array_equal(slot[0, served.shown], served.slot)
    clicked = np.flatnonzero(impression[0] & (step.u_click < p_click[0]))
    assert np.array_equal(clicked, served.clicked)
    assert np.array_equal(price[0, clicked], served.cost)


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(min_value=0, max_value=10_000),
    scale=st.floats(min_value=0.01, max_value=30.0),
    index=st.integers(min_value=0, max_value=15),
)
def test_gsp_price_within_reserve_and_own_bid(
    small: Scenario, seed: int, scale: float, index: int
) -> None:
    sim = _sim(small, seed % 7)
    rng = np.random.default_rng(seed)
    bids = sim.validate_bids(scale * rng.random(sim.n_keywords))
    served = serve(sim.market.step(index), bids, 0.0, 1e9, sim.rules)
    step = sim.market.step(index)
    own = bids[step.keyword[served.clicked]]
    assert (served.cost <= own).all()
    assert (served.cost >= small.market.reserve_cpc).all()


def test_slots_follow_ad_rank(small: Scenario) -> None:
    sim = _sim(small)
    bids = sim.validate_bids(np.clip(1.5 * sim.keyword_values, sim.min_bid, sim.max_bid))
    for index in range(sim.n_steps):
        step = sim.market.step(index)
        assert (np.diff(step.comp_rank, axis=0) <= 0).all()  # competitors sorted by rank
        served = serve(step, bids, 0.0, 1e9, sim.rules)
        ours = bids[step.keyword[served.shown]] * step.quality[served.shown]
        above = (step.comp_rank[:, served.shown] > ours).sum(axis=0)
        assert np.array_equal(served.slot, above)
        assert (served.slot < small.market.slots).all()
        not_shown = np.setdiff1d(np.arange(step.n_queries), served.shown)
        theirs = bids[step.keyword[not_shown]] * step.quality[not_shown]
        lost = (step.comp_rank[:, not_shown] > theirs).sum(axis=0) >= small.market.slots
        below_reserve = bids[step.keyword[not_shown]] < small.market.reserve_cpc
        assert (lost | below_reserve).all()


def top_ranks(ranks: np.ndarray, n: int) -> np.ndarray:
    """The running top ``n`` of the rows of ``ranks``, fed one by one into ``_feed``."""
    top = np.zeros((n, ranks.shape[1]), dtype=np.float32)
    for i, row in enumerate(ranks):
        _feed(top, row.astype(np.float32), i)
    return top


def test_top_ranks_are_the_sorted_best() -> None:
    rng = np.random.default_rng(1)
    ranks = rng.random((9, 500)).astype(np.float32)
    ranks[rng.random(ranks.shape) < 0.4] = 0.0
    for n in (1, 3, 9, 12):
        expected = -np.sort(-ranks, axis=0)[:n]
        got = top_ranks(ranks, n)
        assert np.array_equal(got[: expected.shape[0]], expected)
        assert (got[expected.shape[0] :] == 0).all()


def test_clickable_day_keeps_every_possible_click(small: Scenario) -> None:
    market = episode_market(small, 2)
    sim = _sim(small, 2)
    bids = np.clip(3.0 * sim.keyword_values, sim.min_bid, sim.max_bid)
    spd = small.horizon.steps_per_day
    clicks = sum(serve(market.step(i), bids, 0.0, 1e9, sim.rules).clicked.size for i in range(spd))
    day = market.clickable_day(0)
    assert day.n_queries < sum(market.step(i).n_queries for i in range(spd))
    assert serve(day, bids, 0.0, 1e9, sim.rules).clicked.size == clicks


@pytest.mark.parametrize(("sd", "participation"), [(0.15, 0.6), (0.5, 1.0), (0.0, 0.3)])
def test_entry_and_jitter_table_is_lognormal_with_the_participation(
    sd: float, participation: float
) -> None:
    table = entry_jitter_table(sd, participation)
    inside = table > 0
    assert inside.mean() == pytest.approx(participation, abs=1 / 65_536)
    assert table[inside].mean() == pytest.approx(1.0, rel=2e-3)  # mean-preserving
    assert np.log(table[inside]).std() == pytest.approx(sd, rel=1e-2, abs=1e-6)
    assert (np.diff(table[inside]) >= 0).all()  # an inverse CDF


@pytest.mark.parametrize(("sd", "participation"), [(0.15, 0.6), (0.5, 1.0), (0.3, 0.01)])
def test_jitter_table_in_parts_is_the_table_at_once(
    sd: float, participation: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The work ahead computes a new table a part at a time (``_jitter_table_stages``): the
    same floats as at once, and memoised like it."""
    episode_module._JITTER_TABLES.clear()
    at_once = entry_jitter_table(sd, participation).copy()
    episode_module._JITTER_TABLES.clear()
    monkeypatch.setattr(episode_module, "_JITTER_PART", 1000)
    stages = episode_module._jitter_table_stages(sd, participation)
    parts = 0
    with pytest.raises(StopIteration) as done:
        while True:
            next(stages)
            parts += 1
    assert parts == max(0, -(-int((at_once > 0).sum()) // 1000) - 1)
    assert np.array_equal(done.value.value, at_once)
    assert entry_jitter_table(sd, participation) is done.value.value  # memoised
