"""Scenario files: MARKET.md's schema, defaults, one-line errors naming the field."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from market_helpers import SMALL, small_data

from adbot.errors import ScenarioError
from adbot.market import MarketSimulator
from adbot.market.scenario import bundled_scenarios, load_scenario, random_scenario
from adbot.market.universe import expected_step_queries


def test_bundled_scenarios_load_and_are_documented() -> None:
    paths = bundled_scenarios()
    names = {path.stem for path in paths}
    assert len(paths) >= 6
    assert {"tight-budget", "tight-cpa", "loose-budget", "value-roas"} <= names
    horizons = set()
    for path in paths:
        scenario = load_scenario(path)
        assert scenario.name == path.stem
        assert path.read_text().startswith("#"), f"{path.name} needs a comment saying what it tests"
        horizons.add(scenario.horizon.days)
    assert {1, 7} <= horizons


def test_bundled_scenario_by_name_and_example_fields() -> None:
    scenario = load_scenario("retail-tight-budget")
    assert scenario.campaign.daily_budget == 400.0
    assert scenario.market.position_ctr == (0.09, 0.05, 0.03, 0.02)
    assert scenario.market.shocks[0].competitor_cpc_multiplier == 1.5


def test_optional_fields_take_their_defaults() -> None:
    data = small_data()
    del data["horizon"]["start_weekday"]
    del data["campaign"]["target_cpa"]
    del data["campaign"]["min_bid"]
    del data["campaign"]["max_bid"]
    data["market"]["shocks"] = [{"day": 1}]
    scenario = load_scenario(data)
    assert scenario.horizon.start_weekday == 0
    assert scenario.campaign.target_cpa is None and scenario.campaign.target_roas is None
    assert (scenario.campaign.min_bid, scenario.campaign.max_bid) == (0.01, 100.0)
    assert scenario.market.competitor_budget is None
    shock = scenario.market.shocks[0]
    assert (shock.step, shock.competitor_cpc_multiplier, shock.volume_multiplier) == (0, 1.0, 1.0)
    assert shock.cvr_multiplier == 1.0
    del data["market"]["shocks"]
    assert load_scenario(data).market.shocks == ()


def test_a_shocks_key_with_nothing_after_it_lists_none(tmp_path: Path) -> None:
    """``shocks:`` with no items (YAML null), as files list no shocks, is the default."""
    data = small_data()
    del data["market"]["shocks"]
    text = yaml.safe_dump(data).replace("market:\n", "market:\n  shocks:\n", 1)
    path = tmp_path / "no-shocks.yaml"
    path.write_text(text)
    assert yaml.safe_load(text)["market"]["shocks"] is None
    assert load_scenario(path).market.shocks == ()


def test_round_trip_through_yaml(tmp_path: Path) -> None:
    scenario = load_scenario(small_data())
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(scenario.model_dump(mode="json")))
    assert load_scenario(path) == scenario
    assert load_scenario(str(path)) == scenario


BAD: list[tuple[dict[str, Any], str]] = [
    ({"market__position_ctr": [0.05, 0.1, 0.03]}, "market.position_ctr: must be non-increasing"),
    ({"market__position_ctr": [0.1, 0.05]}, "market.position_ctr: must have one value per slot"),
    ({"market__position_ctr": [0.1, 0.05, 1.5]}, "market.position_ctr.2: input should be less"),
    ({"market__hourly_profile": [1.0, 2.0]}, "market.hourly_profile: must have horizon.steps"),
    ({"market__hourly_profile": "weekend"}, "market.hourly_profile: must be 'flat', 'retail'"),
    (
        {"market__hourly_profile": [0.0] * 8},
        "market.hourly_profile: weights must be >= 0, with a pos",
    ),
    ({"market__weekday_profile": [1.0] * 6}, "market.weekday_profile: must have 7 weights"),
    ({"market__weekday_profile": [1.0] * 6 + [-1.0]}, "market.weekday_profile.6: input should"),
    ({"market__unknown": 1}, "market.unknown: unknown field"),
    ({"extra": 1}, "extra: unknown field"),
    ({"campaign__daily_budget": "400"}, "campaign.daily_budget: input should be a valid number"),
    ({"campaign__daily_budget": 0.0}, "campaign.daily_budget: input should be greater than 0"),
    ({"campaign__target_cpa": -5.0}, "campaign.target_cpa: input should be greater than 0"),
    ({"campaign__keywords": 2.5}, "campaign.keywords: input should be a valid integer"),
    ({"campaign__keywords": True}, "campaign.keywords: input should be a valid integer"),
    ({"campaign__min_bid": 50.0}, "campaign.min_bid: must not exceed campaign.max_bid"),
    ({"campaign__conversion_value": {"mean": 1.0}}, "campaign.conversion_value.sd_log: required"),
    ({"horizon__days": 0}, "horizon.days: input should be greater than or equal to 1"),
    ({"horizon__days": -3}, "horizon.days: input should be greater than or equal to 1"),
    ({"horizon__start_weekday": 7}, "horizon.start_weekday: input should be less than or equal"),
    ({"market__participation": 0.0}, "market.participation: input should be greater than 0"),
    ({"market__participation": 1.5}, "market.participation: input should be less than or equal"),
    ({"market__cvr": {"mean": float("nan"), "sd_log": 0.1}}, "market.cvr.mean: input should be"),
    ({"market__reserve_cpc": -0.1}, "market.reserve_cpc: input should be greater than or equal"),
    ({"market__competitors": -1}, "market.competitors: input should be greater than or equal"),
    ({"market__shocks": [{"day": 5}]}, "market.shocks.0.day: must be < horizon.days"),
    ({"market__shocks": [{"day": 0, "step": 8}]}, "market.shocks.0.step: must be < horizon.steps"),
    ({"market__shocks": [{"day": 0, "size": 2}]}, "market.shocks.0.size: unknown field"),
    # Both say "> 0" (-1 said ">= 0", though 0 is refused too).
    (
        {"market__shocks": [{"day": 0, "competitor_cpc_multiplier": -1.0}]},
        "market.shocks.0.competitor_cpc_multiplier: input should be greater than 0",
    ),
    (
        {"market__shocks": [{"day": 0, "competitor_cpc_multiplier": 0.0}]},
        "market.shocks.0.competitor_cpc_multiplier: input should be greater than 0",
    ),
    ({"name": "Bad Name"}, "name: string should match pattern"),
    ({"seed": -1}, "seed: input should be greater than or equal to 0"),
    # Limits that keep a run inside memory and float32 prices.
    ({"campaign__daily_budget": 2e12}, "campaign.daily_budget: input should be less than or"),
    (
        {"market__competitor_cpc": {"mean": 1e308, "sd_log": 0.5}},
        "market.competitor_cpc.mean: input should be less than or equal to 1000000000000",
    ),
    ({"market__cvr": {"mean": 0.05, "sd_log": 6.0}}, "market.cvr.sd_log: input should be less"),
    ({"market__pcvr_noise": 1e200}, "market.pcvr_noise: input should be less than or equal to 5"),
    (
        {"market__hourly_profile": [1e308] * 8},
        "market.hourly_profile: weights must be >= 0, with a pos",
    ),
    ({"market__weekday_profile": [1e308] * 7}, "market.weekday_profile: weights must have a"),
    # An integer past float range stopped the loader with OverflowError's traceback.
    (
        {"market__hourly_profile": [1.0] * 7 + [10**400]},
        "market.hourly_profile: weights must be finite numbers",
    ),
    (
        {"market__position_ctr": [0.1, 0.05, float("nan")]},
        "market.position_ctr.2: input should be a finite number",
    ),
    (
        {"market__daily_queries": 1e300},
        "market.daily_queries: the busiest day would expect 1.17e+300",
    ),
    (
        {"market__daily_queries": 9.5e6},
        "market.daily_queries: the busiest day would expect 11,083,333 queries",
    ),
    (
        {"horizon__steps_per_day": 600_000},
        "horizon: days x steps_per_day must be at most 1,000,000",
    ),
    ({"campaign__keywords": 20_000_000}, "campaign.keywords: keywords x (market.competitors + 1)"),
    (
        {
            "market__shocks": [
                {"day": 0, "volume_multiplier": 40},
                {"day": 1, "volume_multiplier": 40},
            ]
        },
        "market.shocks.1.volume_multiplier: shocks together may raise it at most 1,000-fold",
    ),
    ({"market__shocks": [{"day": 0, "cvr_multiplier": 1e4}]}, "market.shocks.0.cvr_multiplier: in"),
    ({"bad\nkey": 1}, "'bad\\nkey': unknown field"),
]


@pytest.mark.parametrize(("changes", "message"), BAD, ids=[m.split(":")[0] for _, m in BAD])
def test_malformed_scenario_is_one_line_naming_the_field(
    changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(ScenarioError) as info:
        load_scenario(small_data(**changes))
    text = str(info.value)
    assert "\n" not in text
    assert text.startswith(message), text


def test_missing_required_field_is_named() -> None:
    data = small_data()
    del data["market"]["slots"]
    with pytest.raises(ScenarioError, match=r"^market\.slots: required field missing"):
        load_scenario(data)


def test_several_problems_are_named_at_once_on_one_line() -> None:
    """A file with several faults names the first ``ERRORS_NAMED`` of them, so one run shows
    what to fix, and counts the rest."""
    data = small_data()
    del data["market"]["slots"]
    data["campaign"]["daily_budget"] = -1.0
    data["colour"] = "blue"
    with pytest.raises(ScenarioError) as caught:
        load_scenario(data)
    text = str(caught.value)
    assert "\n" not in text and " more)" not in text
    assert "market.slots: required field missing" in text
    assert "campaign.daily_budget: " in text and "colour: unknown field" in text
    with pytest.raises(ScenarioError) as caught:
        load_scenario({"name": "x"})
    assert str(caught.value) == "; ".join(
        f"{field}: required field missing" for field in ("seed", "horizon", "campaign", "market")
    )
    broken = {key: "?" for key in ("seed", "horizon", "campaign", "market")}
    with pytest.raises(ScenarioError, match=r"^seed: .*; a: unknown field \(and 1 more\)$"):
        load_scenario({"name": "x", **broken, "a": 1, "b": 2})  # 6 faults, 5 named


def test_file_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="scenario file not found"):
        load_scenario(tmp_path / "missing.yaml")
    with pytest.raises(ScenarioError, match=r"a directory, not a scenario file$"):
        load_scenario(tmp_path)
    # Not "not found": the path is there. A named pipe would also hold a read up for ever.
    with pytest.raises(ScenarioError, match=r"^/dev/null: not a regular file, not a scenario"):
        load_scenario("/dev/null")
    pipe = tmp_path / "pipe.yaml"
    os.mkfifo(pipe)
    with pytest.raises(ScenarioError, match=r"pipe.yaml: not a regular file, not a scenario file$"):
        load_scenario(pipe)
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed\n")
    with pytest.raises(ScenarioError, match=r"not valid YAML \(line"):
        load_scenario(broken)
    listing = tmp_path / "list.yaml"
    listing.write_text("- 1\n- 2\n")
    with pytest.raises(ScenarioError, match="must be a mapping"):
        load_scenario(listing)


def test_a_path_with_a_newline_is_quoted_on_the_one_line(tmp_path: Path) -> None:
    """A file name holding a newline split the error over two lines."""
    missing, bad = tmp_path / "no\nsuch.yaml", tmp_path / "bad\nname.yaml"
    bad.write_text("name: [")
    for path in (missing, bad):
        with pytest.raises(ScenarioError) as info:
            load_scenario(path)
        assert "\n" not in str(info.value) and repr(str(path)) in str(info.value)


def test_an_empty_path_is_no_scenario_file() -> None:
    """``adbot evaluate ""`` read the current directory: ": a directory, not a scenario
    file"."""
    with pytest.raises(ScenarioError, match=r"^scenario file not given: the path is empty$"):
        load_scenario("")


@pytest.mark.parametrize("source", [5, None, b"name: x", ["tight-budget"]])
def test_a_source_of_another_type_is_one_line(source: object) -> None:
    """``load_scenario(5)`` (and so ``BidPacingEnv(scenario=5)``) raised pathlib's TypeError."""
    with pytest.raises(ScenarioError, match=r"^scenario: expected a file, a bundled scenario's"):
        load_scenario(source)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "scenario: must be a mapping of fields"),
        (b"# only a comment\n", "scenario: must be a mapping of fields"),
        (b"~\n", "scenario: must be a mapping of fields"),
        (b"just words\n", "scenario: must be a mapping of fields"),
        (b"\x89PNG\r\n\x1a\n\x00\xff\xfe", "s.yaml: cannot be read (UnicodeDecodeError)"),
        (b"a: 1\n---\nb: 2\n", "s.yaml: not valid YAML (line 2: but found another document)"),
    ],
    ids=["empty", "comment", "null", "scalar", "binary", "two-documents"],
)
def test_a_file_without_a_scenario_is_one_line(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "s.yaml"
    path.write_bytes(content)
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert str(info.value).endswith(message), str(info.value)
    assert "\n" not in str(info.value)


def test_episode_query_limit_counts_every_day() -> None:
    # Each day is under the daily limit; together they pass the episode's.
    data = small_data(horizon__days=40, market__daily_queries=3e6, market__shocks=[])
    with pytest.raises(ScenarioError, match=r"^market\.daily_queries: the episode would expect"):
        load_scenario(data)
    data["market"]["daily_queries"] = 2e6
    assert load_scenario(data).horizon.days == 40


def test_weekday_weights_whose_mean_underflows_give_the_same_traffic() -> None:
    """``[5e-324, 0, ...]`` is one open weekday, as ``[1, 0, ...]`` is: its mean underflowed
    to 0, every factor was infinite, and a valid file was refused under
    ``market.daily_queries`` with numpy's RuntimeWarning on stderr."""
    open_monday = small_data(market__weekday_profile=[1.0] + [0.0] * 6)
    tiny = small_data(market__weekday_profile=[5e-324] + [0.0] * 6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        queries = expected_step_queries(load_scenario(tiny))
    np.testing.assert_array_equal(queries, expected_step_queries(load_scenario(open_monday)))


def test_numbers_are_read_as_yaml_1_2(tmp_path: Path) -> None:
    """``4e4`` is a number (YAML 1.1 made it a string, refused as "not a number")."""
    text = yaml.safe_dump(small_data())
    text = text.replace("daily_queries: 3000", "daily_queries: 3e3")
    text = text.replace("daily_budget: 60.0", "daily_budget: 6E+1")
    text = text.replace("days: 2", "days: 02")  # decimal 2 (1.1: octal)
    path = tmp_path / "s.yaml"
    path.write_text(text)
    scenario = load_scenario(path)
    assert scenario.market.daily_queries == 3000.0
    assert scenario.campaign.daily_budget == 60.0
    assert scenario.horizon.days == 2
    path.write_text(text.replace("keywords: 12", "keywords: 1_2"))  # 1.1: twelve; 1.2: a string
    with pytest.raises(ScenarioError, match=r"^campaign\.keywords: input should be a valid int"):
        load_scenario(path)


def test_yaml_file_problems_are_one_line(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("name: first\nseed: 1\nname: second\n")
    with pytest.raises(ScenarioError, match=r"not valid YAML \(line 3: duplicate key 'name'\)$"):
        load_scenario(path)
    path.write_text("name: " + "[" * 5000 + "]" * 5000 + "\n")
    too_deep = r"(line 1: exceeded maximum nesting depth|nested too deeply)"  # libyaml or not
    with pytest.raises(ScenarioError, match=rf"not valid YAML \({too_deep}\)$"):
        load_scenario(path)


def test_every_malformed_case_differs_from_the_valid_base() -> None:
    """The base loads and every case of ``BAD`` changes it, so each case's error is its
    change's (a change that left the base as it was could only pass by a wrong message)."""
    assert load_scenario(SMALL).name == "small-test"
    for changes, message in BAD:
        assert small_data(**changes) != SMALL, message


@settings(max_examples=12, deadline=None)
@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_random_scenarios_are_valid_and_playable(seed: int) -> None:
    scenario = random_scenario(np.random.default_rng(seed))
    assert load_scenario(scenario.model_dump(mode="json")) == scenario
    sim = MarketSimulator(scenario, 0)
    outcome = sim.step(np.clip(sim.keyword_values, sim.min_bid, sim.max_bid))
    assert outcome.total_cost >= 0
    assert outcome.spend_today <= sim.daily_budget + sim.max_bid


@settings(max_examples=12, deadline=None)
@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_wide_random_scenarios_are_valid_and_playable(seed: int) -> None:
    scenario = random_scenario(np.random.default_rng(seed), wide=True)
    assert load_scenario(scenario.model_dump(mode="json")) == scenario
    sim = MarketSimulator(scenario, 0)
    while not sim.done:
        outcome = sim.step(np.clip(sim.keyword_values, sim.min_bid, sim.max_bid))
        assert outcome.spend_today <= sim.daily_budget + sim.max_bid


def test_wide_draws_widen_the_standard_draw_they_start_from() -> None:
    """The wide draw is the standard one, then changed by further draws: the same universe
    seed, and each change at about its documented rate over 2,000 draws."""
    counts = dict.fromkeys(("steps", "keywords", "closed days", "open hours", "wide shock"), 0)
    for seed in range(2000):
        standard = random_scenario(np.random.default_rng(seed))
        wide = random_scenario(np.random.default_rng(seed), wide=True)
        assert (wide.seed, wide.campaign.target_cpa) == (
            standard.seed,
            standard.campaign.target_cpa,
        )
        counts["steps"] += wide.horizon.steps_per_day != 24
        counts["keywords"] += wide.campaign.keywords < 5
        counts["closed days"] += 0.0 in wide.market.weekday_profile
        counts["open hours"] += not isinstance(wide.market.hourly_profile, str)
        counts["wide shock"] += len(wide.market.shocks) > len(standard.market.shocks)
        if standard.horizon.steps_per_day == wide.horizon.steps_per_day:
            assert wide.market.shocks[: len(standard.market.shocks)] == standard.market.shocks
    # expected: 400, 300, 200, 160 (0.1 of the 80 % at 24 steps), 0.3 of the 6/7 of 2+ days
    assert 330 < counts["steps"] < 470 and 240 < counts["keywords"] < 360
    assert 150 < counts["closed days"] < 250 and 115 < counts["open hours"] < 205
    assert 450 < counts["wide shock"] < 580


def test_random_scenario_is_reproducible() -> None:
    first = random_scenario(np.random.default_rng(3))
    assert random_scenario(np.random.default_rng(3)) == first
    assert random_scenario(np.random.default_rng(4)) != first
