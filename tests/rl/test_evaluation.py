"""The evaluation's (scenario, seed) pairs: fixed draws, those too small to judge skipped."""

from __future__ import annotations

from adbot.rl.config import EvalConfig
from adbot.rl.evaluation import conversion_bound, evaluation_pairs


def _config(**changes: object) -> EvalConfig:
    base = {"random_scenarios": 4, "max_daily_queries": 1500.0, "seed": 29}
    return EvalConfig.model_validate({**base, **changes})


def test_draws_too_small_to_judge_are_skipped() -> None:
    """With ``min_conversions`` every evaluated draw can reach that many conversions; without
    it the draws of the same seed include smaller ones."""
    every = [scenario for scenario, _ in evaluation_pairs(_config(min_conversions=0.0))]
    judged = evaluation_pairs(_config(min_conversions=10.0))
    assert len(judged) == 4 and all(conversion_bound(s) >= 10.0 for s, _ in judged)
    assert any(conversion_bound(s) < 10.0 for s in every)
    assert [s.name for s, _ in judged] != [s.name for s in every]
    assert evaluation_pairs(_config(min_conversions=10.0)) == judged  # the same every time


def test_each_draw_is_played_with_the_episode_seeds_and_files_come_last() -> None:
    pairs = evaluation_pairs(
        _config(random_scenarios=2, episodes=3, scenario_files=("tight-budget",))
    )
    assert [seed for _, seed in pairs] == [29, 30, 31] * 3
    assert [s.name for s, _ in pairs][-3:] == ["tight-budget"] * 3
    assert all(s.market.daily_queries <= 1500.0 for s, _ in pairs[:6])
