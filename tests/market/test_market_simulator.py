"""The step API: determinism, common random numbers, budgets, monotonicity, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from market_helpers import budget_limited, competitor_spend, small_data, tied_budget_day

from adbot.errors import InvalidInput
from adbot.market import MarketSimulator, StepOutcome, load_scenario
from adbot.market import episode as episode_module
from adbot.market import simulator as simulator_module
from adbot.market.auction import AMOUNT_ROWS, COUNT_ROWS, multiplier_bids
from adbot.market.batch import evaluate_multipliers
from adbot.market.episode import episode_market
from adbot.market.scenario import Scenario
from adbot.market.universe import expected_step_queries


def _play(scenario: Scenario, seed: int, alpha: float) -> list[StepOutcome]:
    sim = MarketSimulator(scenario, seed)
    bids = np.clip(alpha * sim.keyword_values, sim.min_bid, sim.max_bid)
    return [sim.step(bids) for _ in range(sim.n_steps)]


def _clear_caches() -> None:
    episode_module._CACHE.clear()
    episode_module._UNIVERSES.clear()


def test_same_seeds_same_results(small: Scenario) -> None:
    first = _play(small, 3, 1.2)
    _clear_caches()
    again = _play(small, 3, 1.2)
    for a, b in zip(first, again, strict=True):
        for name in ("queries", "impressions", "clicks", "cost", "conversions", "value"):
            assert np.array_equal(getattr(a, name), getattr(b, name))
    other = _play(small, 4, 1.2)
    assert [o.total_queries for o in other] != [o.total_queries for o in first]


def test_bids_do_not_change_the_market(small: Scenario) -> None:
    """Common random numbers: the drawn episode is the same whatever was bid before."""
    low = _play(small, 8, 0.3)
    _clear_caches()
    high = _play(small, 8, 4.0)
    assert [o.total_queries for o in low] == [o.total_queries for o in high]
    for a, b in zip(low, high, strict=True):
        assert np.array_equal(a.queries, b.queries)
    fresh = episode_market(small, 8)
    _clear_caches()
    MarketSimulator(small, 8).step(np.zeros(small.campaign.keywords))
    redrawn = episode_market(small, 8)
    assert fresh is not redrawn
    for index in range(small.n_steps):
        a, b = fresh.step(index), redrawn.step(index)
        for name in ("keyword", "comp_rank", "u_tie", "u_click", "u_conv", "conv_value"):
            assert np.array_equal(getattr(a, name), getattr(b, name))


def test_zero_bids_cost_nothing(small: Scenario) -> None:
    """Every step has queries (the market runs as usual) and none is entered at bid 0."""
    sim = MarketSimulator(small, 1)
    while not sim.done:
        outcome = sim.step(np.zeros(sim.n_keywords))
        assert outcome.total_queries > 0
        assert outcome.total_impressions == 0 and outcome.total_clicks == 0
        assert outcome.total_cost == 0.0 and outcome.auctions_entered.sum() == 0
    assert sim.totals().score == 0.0 and sim.totals().cost == 0.0


@settings(max_examples=20, deadline=None)
@given(
    alpha=st.floats(min_value=0.5, max_value=50.0),
    budget=st.floats(min_value=1.0, max_value=80.0),
    seed=st.integers(min_value=0, max_value=50),
)
def test_daily_spend_exceeds_budget_by_at_most_one_click(
    alpha: float, budget: float, seed: int
) -> None:
    scenario = load_scenario(small_data(campaign__daily_budget=budget))
    sim = MarketSimulator(scenario, seed)
    bids = np.clip(alpha * sim.keyword_values, sim.min_bid, sim.max_bid)
    while not sim.done:
        spent_before = sim.spend_today
        outcome = sim.step(bids)
        # A click costs at most the bid; the crossing click is the only one over budget.
        assert outcome.spend_today - budget <= bids.max()
        if spent_before >= budget:
            assert outcome.total_cost == 0 and outcome.total_impressions == 0
    assert sim.totals().cost <= scenario.horizon.days * budget + 2 * bids.max()


def test_overshoot_is_one_click_at_most(small: Scenario) -> None:
    scenario = load_scenario(small_data(campaign__daily_budget=5.0))
    sim = MarketSimulator(scenario, 0)
    bids = np.full(sim.n_keywords, sim.max_bid)
    spends = []
    while not sim.done:
        outcome = sim.step(bids)
        if outcome.step == scenario.horizon.steps_per_day - 1:
            spends.append(outcome.spend_today)
    for spend in spends:
        assert 5.0 <= spend <= 5.0 + sim.max_bid
    assert sim.totals().budget_utilization >= 1.0


def test_higher_multiplier_weakly_more_clicks_and_cost(unlimited: Scenario) -> None:
    alphas = np.geomspace(0.05, 20, 30)
    for seed in (0, 1):
        totals = evaluate_multipliers(unlimited, seed, alphas)
        assert (np.diff(totals.clicks) >= 0).all()
        assert (np.diff(totals.cost) >= 0).all()
    low, high = _play(unlimited, 5, 0.7), _play(unlimited, 5, 1.4)
    for a, b in zip(low, high, strict=True):
        assert (b.clicks >= a.clicks).all() and (b.cost >= a.cost - 1e-12).all()
        assert (b.impressions >= a.impressions).all()


@pytest.mark.parametrize(
    "bids",
    [
        np.ones(11),
        np.ones((2, 12)),
        np.array([np.nan] + [1.0] * 11),
        np.array([np.inf] + [1.0] * 11),
        np.array([-0.5] + [1.0] * 11),
        ["a"] * 12,
        None,
    ],
    ids=["short", "2d", "nan", "inf", "negative", "strings", "none"],
)
def test_bad_bid_vectors_are_refused(small: Scenario, bids: object) -> None:
    sim = MarketSimulator(small, 0)
    with pytest.raises(InvalidInput, match="bids"):
        sim.step(bids)
    assert sim.step_index == 0


def test_step_after_the_end_and_bad_seeds_are_refused(small: Scenario) -> None:
    sim = MarketSimulator(small, 0)
    while not sim.done:
        sim.step(np.zeros(sim.n_keywords))
    with pytest.raises(InvalidInput, match="episode is over"):
        sim.step(np.zeros(sim.n_keywords))
    # Past 2**63 - 1 (a trace's or a database's 64-bit column) the env took 2**64 too.
    for bad in (-1, 2**63, np.uint64(2**64 - 1)):
        with pytest.raises(
            InvalidInput, match=rf"episode seed must be 0 to 2\*\*63 - 1, got {bad}$"
        ):
            MarketSimulator(small, bad)
    for bad in (1.5, True, "3"):
        with pytest.raises(InvalidInput, match="episode seed must be an integer, got "):
            MarketSimulator(small, bad)  # type: ignore[arg-type]
    assert MarketSimulator(small, np.int64(3)).episode_seed == 3


def test_bids_are_clipped_and_zero_pauses(small: Scenario) -> None:
    sim = MarketSimulator(small, 0)
    used = sim.validate_bids(np.array([0.0, 0.001, 1.0, 500.0] + [0.0] * 8))
    assert used[:4].tolist() == [0.0, sim.min_bid, 1.0, sim.max_bid]


def test_outcome_is_consistent(small: Scenario) -> None:
    sim = MarketSimulator(small, 2)
    bids = np.clip(1.5 * sim.keyword_values, sim.min_bid, sim.max_bid)
    spent_today = 0.0
    while not sim.done:
        day, step = sim.day, sim.step_in_day
        outcome = sim.step(bids)
        assert (outcome.day, outcome.step) == (day, step)
        assert outcome.total_queries == outcome.queries.sum()
        assert outcome.total_clicks == outcome.clicks.sum() <= outcome.impressions.sum()
        assert outcome.total_impressions == outcome.impressions.sum()
        assert outcome.total_cost == pytest.approx(outcome.cost.sum())
        assert outcome.total_conversions == outcome.conversions.sum() <= outcome.total_clicks
        assert (outcome.impressions <= outcome.auctions_entered).all()
        assert (outcome.auctions_entered <= outcome.queries).all()
        assert ((outcome.impression_share >= 0) & (outcome.impression_share <= 1)).all()
        shown = outcome.impressions > 0
        assert ((outcome.avg_position[shown] >= 1) & (outcome.avg_position[shown] <= 3)).all()
        spent_today = (spent_today if step else 0.0) + outcome.total_cost
        assert outcome.spend_today == pytest.approx(spent_today)
    metrics = sim.totals()
    assert metrics.cpa == pytest.approx(metrics.cost / metrics.conversions)
    assert metrics.budget_utilization == pytest.approx(metrics.cost / (60.0 * 2))


def test_query_volume_follows_the_profiles() -> None:
    scenario = load_scenario(small_data(horizon__days=7, market__hourly_profile="b2b"))
    expected = expected_step_queries(scenario)
    sim = MarketSimulator(scenario, 0)
    seen = np.array([sim.step(np.zeros(sim.n_keywords)).total_queries for _ in range(sim.n_steps)])
    assert abs(seen.sum() / expected.sum() - 1) < 0.02
    by_step = seen.reshape(7, 8).sum(axis=0) / expected.reshape(7, 8).sum(axis=0)
    assert np.all(np.abs(by_step - 1) < 0.1)
    assert seen.reshape(7, 8)[:, 3:6].sum() > 3 * seen.reshape(7, 8)[:, :2].sum()


def test_competitor_shock_raises_prices(small: Scenario) -> None:
    market = episode_market(small, 0)
    before = np.mean([market.step(i).comp_rank[0].mean() for i in range(8, 10)])
    after = np.mean([market.step(i).comp_rank[0].mean() for i in range(10, 16)])
    assert after > 1.25 * before  # x1.5 from day 1, step 2


def test_landscape_matches_direct_evaluation(small: Scenario) -> None:
    sim = MarketSimulator(small, 3)
    with pytest.raises(InvalidInput, match="played steps"):
        sim.multiplier_landscape(0, np.array([1.0]))
    sim.step(np.zeros(sim.n_keywords))
    sim.step(np.zeros(sim.n_keywords))
    alphas = np.geomspace(0.05, 30, 40)
    for index in (0, 1):
        fast = sim.multiplier_landscape(index, alphas)
        bids = multiplier_bids(alphas, sim.keyword_values, sim.min_bid, sim.max_bid)
        direct = sim.bid_landscape(index, bids[::-1])  # descending: evaluated bid by bid
        monotone = sim.bid_landscape(index, bids)
        for name in ("clicks", "cost", "conversions", "value"):
            np.testing.assert_allclose(getattr(fast, name), getattr(direct, name)[::-1], rtol=1e-9)
            np.testing.assert_allclose(getattr(monotone, name), getattr(fast, name), rtol=1e-9)
        assert (np.diff(fast.clicks) >= -1e-12).all() and (np.diff(fast.cost) >= -1e-12).all()
    with pytest.raises(InvalidInput, match="ascending"):
        sim.multiplier_landscape(0, alphas[::-1])
    for bad in (np.array([0.1, np.nan, 2.0]), np.array([-1.0, 1.0]), np.ones((2, 2))):
        with pytest.raises(InvalidInput, match="ascending array of non-negative numbers"):
            sim.multiplier_landscape(0, bad)
    with pytest.raises(InvalidInput, match="played steps"):
        sim.bid_landscape(2, np.ones((1, sim.n_keywords)))
    for unplayed in (sim.step_index, -1):
        with pytest.raises(InvalidInput, match="played steps"):
            sim.multiplier_landscape(unplayed, alphas)
        with pytest.raises(InvalidInput, match="played steps"):
            sim.played_day_landscapes(unplayed, alphas)


def test_keyword_landscape_is_each_keywords_own_bid_landscape(small: Scenario) -> None:
    sim = MarketSimulator(small, 5)
    alphas = np.geomspace(0.1, 20, 25)
    with pytest.raises(InvalidInput, match="played steps"):
        sim.keyword_landscape(0, alphas)
    sim.step(np.clip(sim.keyword_values, sim.min_bid, sim.max_bid))
    keywords, per_keyword = sim.keyword_landscape(0, alphas)
    np.testing.assert_array_equal(keywords, np.unique(sim.market.step(0).keyword))
    assert per_keyword.cost.shape == (keywords.size, alphas.size)
    whole = sim.multiplier_landscape(0, alphas)
    for name in ("clicks", "cost", "conversions", "value"):
        np.testing.assert_allclose(
            getattr(per_keyword, name).sum(axis=0), getattr(whole, name), rtol=1e-9
        )
    row = int(np.argmax(per_keyword.cost[:, -1]))  # the keyword with the most at stake
    keyword = keywords[row]
    matrix = np.zeros((alphas.size, sim.n_keywords))  # every other keyword left out
    matrix[:, keyword] = np.clip(alphas * sim.keyword_values[keyword], sim.min_bid, sim.max_bid)
    direct = sim.bid_landscape(0, matrix[::-1])  # descending: evaluated bid vector by vector
    for name in ("clicks", "cost", "conversions", "value"):
        np.testing.assert_allclose(
            getattr(per_keyword, name)[row], getattr(direct, name)[::-1], rtol=1e-9
        )
    assert per_keyword.cost[row, -1] > 0
    for bad in (alphas[::-1], np.array([np.nan, 1.0]), np.array([-1.0, 1.0]), alphas[None, :]):
        with pytest.raises(InvalidInput, match="ascending array"):
            sim.keyword_landscape(0, bad)


def _sequential_competitor_budgets(
    bid: np.ndarray, quality: np.ndarray, u: np.ndarray, budget: np.ndarray, scenario: Scenario
) -> np.ndarray:
    """Competitors leave once their spend reaches their budget, one query at a time."""
    live = bid.copy()
    spent = np.zeros(bid.shape[0])
    for q in range(bid.shape[1]):
        out = spent >= budget
        live[out, q:] = 0.0
        spent += competitor_spend(
            live[:, q : q + 1], quality[:, q : q + 1], u[q : q + 1], scenario
        )[:, 0]
    return live


def _limited_and_sequential(scenario: Scenario, seed: int, day: int) -> tuple[np.ndarray, ...]:
    """The day's competitor bids before budgets, with the kernel's and the reference's."""
    market = episode_market(scenario, seed)
    drawn = market._draw_day(day)
    assert drawn.comp_bid is not None and drawn.comp_click is not None
    budget = market.universe.competitor_budget
    assert budget is not None
    quality = np.take(market.universe.competitor_quality, drawn.keyword, axis=1)
    expected = _sequential_competitor_budgets(
        drawn.comp_bid, quality, drawn.comp_click, budget, scenario
    )
    return drawn.comp_bid, budget_limited(drawn, market.universe, scenario), expected


def test_competitor_budgets_match_sequential_serving() -> None:
    scenario = load_scenario(
        small_data(
            market__competitor_budget={"mean": 6.0, "sd_log": 0.8},
            market__competitors=8,
            market__daily_queries=1500,
        )
    )
    bid, limited, expected = _limited_and_sequential(scenario, 0, 0)
    assert np.array_equal(limited, expected)
    assert (limited == 0).sum() > (bid == 0).sum()  # some competitors ran out


@pytest.mark.parametrize(
    ("changes", "seed", "day"),
    [
        pytest.param(
            {"market__competitors": 30, "market__participation": 0.9}, 1, 0, id="many-competitors"
        ),
        pytest.param(
            {"market__slots": 1, "market__position_ctr": [0.15], "market__competitors": 10},
            2,
            1,
            id="one-slot-shocked-day",
        ),
        pytest.param(
            {"market__competitor_budget": {"mean": 0.4, "sd_log": 1.0}}, 3, 0, id="bind-early"
        ),
        pytest.param(
            {"market__reserve_cpc": 0.9, "market__competitor_cpc": {"mean": 1.5, "sd_log": 0.3}},
            4,
            0,
            id="reserve-binds",
        ),
        pytest.param({"market__competitors": 1}, 5, 0, id="one-competitor"),
    ],
)
def test_competitor_budget_kernel_matches_sequential_serving(
    changes: dict[str, object], seed: int, day: int
) -> None:
    base = {
        "market__competitor_budget": {"mean": 3.0, "sd_log": 0.8},
        "market__daily_queries": 1200,
    }
    scenario = load_scenario(small_data(**{**base, **changes}))
    bid, limited, expected = _limited_and_sequential(scenario, seed, day)
    assert np.array_equal(limited, expected)
    assert (limited == 0).sum() > (bid == 0).sum()


def test_competitor_budget_ties_and_exact_budget_hits() -> None:
    """Equal positive ranks (equal qualities and bids) are served in stable-sort order, and a
    spend exactly equal to the budget ends the day (prices here are 0.11, 1 or 2)."""
    scenario, drawn, uni = tied_budget_day([1.0, 1.0, 2.0, 2.0, 3.0, 1.11, 1.22])
    assert drawn.comp_bid is not None
    assert uni.competitor_budget is not None
    quality = np.take(uni.competitor_quality, drawn.keyword, axis=1)
    expected = _sequential_competitor_budgets(
        drawn.comp_bid, quality, drawn.comp_click, uni.competitor_budget, scenario
    )
    limited = budget_limited(drawn, uni, scenario)
    assert np.array_equal(limited, expected)
    assert (limited == 0).sum() > (drawn.comp_bid == 0).sum()


def test_outcome_rows_are_named_views_and_read_only(small: Scenario) -> None:
    outcome = MarketSimulator(small, 2).step_multiplier(1.0)
    for table, names in (("counts", COUNT_ROWS), ("amounts", AMOUNT_ROWS)):
        for row, name in enumerate(names):
            assert np.shares_memory(getattr(outcome, name), getattr(outcome, table)[row])
            np.testing.assert_array_equal(getattr(outcome, name), getattr(outcome, table)[row])
            with pytest.raises(AttributeError, match=f"StepOutcome.{name} is read-only"):
                setattr(outcome, name, np.zeros(3))
    with pytest.raises(AttributeError):
        outcome.total_cost = 0.0  # type: ignore[misc]
    assert int(outcome.clicks.sum()) == outcome.total_clicks
    assert int(outcome.queries.sum()) == outcome.total_queries


def test_prepare_draws_the_next_day_a_stage_at_a_time(small: Scenario) -> None:
    """``prepare`` computes the next step's day and landscapes, then one stage of the next
    day per call (its draws, then its landscapes); nothing of it is handed out before it
    is played, and the episode plays as without it."""
    grid = np.exp(np.linspace(np.log(0.1), np.log(10.0), 9))
    grid.flags.writeable = False
    scenario = small.model_copy(update={"horizon": small.horizon.model_copy(update={"days": 3})})
    _clear_caches()
    sim = MarketSimulator(scenario, 3)
    market = sim.market
    steps = sim.steps_per_day
    assert steps >= 6
    sim.prepare(grid)
    assert list(market._days) == [0] and list(market._drawing) == [1]  # a stage of day 1
    calls = 1
    while not any(day == 1 for day, _ in market.day_landscapes):
        sim.prepare(grid)
        calls += 1
    # A stage per call: the queries, their order (two halves), their uniforms, the jitter
    # table, the ranks, the steps, then the landscapes of each LANDSCAPE_PART_STEPS steps.
    parts = -(-steps // simulator_module.LANDSCAPE_PART_STEPS)
    assert calls == 7 + parts
    assert sorted(market._days) == [0, 1] and not market._drawing
    assert not market.landscape_stages
    assert sorted(day for day, _ in market.day_landscapes) == [0, 1]
    with pytest.raises(InvalidInput, match="played steps"):
        sim.multiplier_landscape(steps, grid)  # day 1 is drawn, not played
    while sim.step_index < steps:
        sim.step_multiplier(1.0)
        sim.prepare(grid)
    # Now in day 1: the first stage of day 2 (its queries) is drawn, no more.
    assert sorted(market._days) == [0, 1] and list(market._drawing) == [2]
    ahead = [sim.step_multiplier(1.0) for _ in range(steps)]
    _clear_caches()
    plain = MarketSimulator(scenario, 3)
    expected = [plain.step_multiplier(1.0) for _ in range(2 * steps)][steps:]
    for got, want in zip(ahead, expected, strict=True):
        assert np.array_equal(got.counts, want.counts)
        assert np.array_equal(got.amounts, want.amounts)
        assert got.total_cost == want.total_cost


class _CutShort(Exception):
    """An interruption in the middle of a day's landscapes (a Ctrl-C, out of memory)."""


def test_landscapes_cut_short_are_computed_again() -> None:
    """A landscape part that raises leaves no spent generator behind: the day's landscapes
    are computed again, the same as a simulator never interrupted."""
    scenario = load_scenario(small_data(**{"market__daily_queries": 1500}))
    grid = np.geomspace(0.1, 10.0, 9)
    clean = MarketSimulator(scenario, 0)
    clean.step_multiplier(1.0)
    sim = MarketSimulator(scenario, 0)
    sim.work_ahead(0, grid)  # the day's draws ahead
    while sim.market.draw_ahead(0) and not sim.market.landscape_stages:
        sim.work_ahead(0, grid)  # the first landscape part
    assert sim.market.landscape_stages

    def cut_short(*args: object, **kwargs: object) -> None:
        raise _CutShort

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(simulator_module, "multiplier_landscape", cut_short)
        with pytest.raises(_CutShort):
            for _ in range(100):
                sim.work_ahead(0, grid)
    assert not sim.market.landscape_stages
    sim.step_multiplier(1.0)
    again, want = sim.multiplier_landscape(0, grid), clean.multiplier_landscape(0, grid)
    for name in want._fields:
        assert np.array_equal(getattr(again, name), getattr(want, name)), name
