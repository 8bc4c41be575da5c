"""GroupedSubprocVecEnv: the same rollouts as DummyVecEnv, with several envs per process."""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv

from adbot.errors import InvalidInput
from adbot.market.scenario import load_scenario
from adbot.rl.config import TrainingConfig
from adbot.rl.env import BidPacingEnv, cap_daily_queries
from adbot.rl.train import _cpus, build_vec_env
from adbot.rl.vec_env import GroupedSubprocVecEnv, WorkerError, _LocalGroup, group_envs


def _bid_pacing() -> gym.Env[Any, Any]:  # one-day episodes of 24 steps
    scenario = cap_daily_queries(load_scenario("tight-budget"), 1500.0)
    return gym.wrappers.RecordEpisodeStatistics(BidPacingEnv(scenario))


def _training_bid_pacing() -> gym.Env[Any, Any]:
    """Random scenarios of 1-7 days, replayed, with the plan-alone twin: every piece of
    ``BidPacingEnv.prepare`` (days, landscapes, twin, the next episode) runs in the workers."""
    reward = {"components": {"score": 1.0, "baseline_score": 1.0}}
    env = BidPacingEnv(reward=reward, max_daily_queries=800.0, episode_reuse=3)
    return gym.wrappers.RecordEpisodeStatistics(env)


def _pendulum() -> gym.Env[Any, Any]:
    return gym.make("Pendulum-v1")  # truncated after 200 steps by its TimeLimit


def _rollout(venv: VecEnv, steps: int, seed: int) -> list[Any]:
    venv.seed(seed)
    first = venv.reset()
    rng = np.random.default_rng(seed)
    low, high = venv.action_space.low, venv.action_space.high  # type: ignore[attr-defined]
    out: list[Any] = [(first, None, None, [], copy.deepcopy(venv.reset_infos))]
    for _ in range(steps):
        actions = rng.uniform(low, high, size=(venv.num_envs, *low.shape)).astype(np.float32)
        out.append((*venv.step(actions), copy.deepcopy(venv.reset_infos)))
    return out


def _assert_same(a: list[Any], b: list[Any]) -> None:
    for got, expected in zip(a, b, strict=True):
        for x, y in zip(got, expected, strict=True):
            if isinstance(x, np.ndarray):
                np.testing.assert_array_equal(x, y)
            elif isinstance(x, list):
                assert len(x) == len(y)
                for info, other in zip(x, y, strict=True):
                    assert info.keys() == other.keys()
                    for key in info:
                        if isinstance(info[key], np.ndarray):
                            np.testing.assert_array_equal(info[key], other[key])
                        elif key != "episode":  # RecordEpisodeStatistics also times it
                            assert info[key] == other[key], key
            else:
                assert x == y


@pytest.mark.parametrize(
    ("n_envs", "workers", "local", "sizes"),
    [
        (8, 2, True, [3, 5]),  # the default config on 2 cores: the learner steps 3
        (8, 2, False, [4, 4]),
        (16, 2, True, [7, 9]),
        (9, 2, True, [4, 5]),
        (8, 3, True, [2, 3, 3]),
        (5, 2, True, [2, 3]),
        (4, 3, True, [2, 1, 1]),  # an even share of one or less: as even as they go
        (2, 2, True, [1, 1]),
        (8, 1, True, [8]),
    ],
)
def test_the_learners_group_is_one_env_under_an_even_share(
    n_envs: int, workers: int, local: bool, sizes: list[int]
) -> None:
    groups = group_envs(n_envs, workers, local_group=local)
    assert [len(g) for g in groups] == sizes
    assert [i for g in groups for i in g] == list(range(n_envs))


@pytest.mark.parametrize(
    ("factory", "n_envs", "workers", "steps", "local"),
    [
        (_bid_pacing, 5, 2, 60, False),  # 24-step episodes: resets inside the rollout
        (_bid_pacing, 5, 2, 60, True),  # the first group stepped in this process
        (_training_bid_pacing, 4, 2, 260, True),  # work ahead changes nothing
        (_pendulum, 4, 3, 210, False),  # truncation by TimeLimit
        (_pendulum, 4, 3, 210, True),
    ],
)
def test_grouped_rollouts_equal_dummy_rollouts(
    factory: Callable[[], gym.Env[Any, Any]], n_envs: int, workers: int, steps: int, local: bool
) -> None:
    fns = [factory] * n_envs
    grouped = GroupedSubprocVecEnv(fns, workers, local_group=local)
    assert len(grouped.processes) == workers - local
    try:
        assert grouped.groups == group_envs(n_envs, workers, local_group=local)
        got = _rollout(grouped, steps, seed=3)
        again = _rollout(grouped, 5, seed=4)
    finally:
        grouped.close()
    dummy = DummyVecEnv(fns)
    _assert_same(got, _rollout(dummy, steps, seed=3))
    _assert_same(again, _rollout(dummy, 5, seed=4))
    dones = np.concatenate([step[2] for step in got[1:]])
    assert dones.any()  # the rollout crossed episode ends
    terminal = [info for step in got[1:] for info in step[3] if "terminal_observation" in info]
    assert terminal


@pytest.mark.parametrize("local", [False, True])
def test_attributes_and_methods_reach_the_right_envs(local: bool) -> None:
    venv = GroupedSubprocVecEnv([_bid_pacing] * 5, 2, local_group=local)
    try:
        venv.seed(0)
        venv.reset()
        assert venv.get_attr("action_log_range") == [1.0] * 5
        venv.set_attr("action_log_range", 0.25, indices=[1, 3])
        assert venv.get_attr("action_log_range") == [1.0, 0.25, 1.0, 0.25, 1.0]
        assert venv.get_attr("action_log_range", indices=[4, 3, 1]) == [1.0, 0.25, 0.25]
        names = venv.env_method("get_wrapper_attr", "episode_reuse", indices=[0, 2, 4])
        assert names == [1, 1, 1]
        assert venv.env_is_wrapped(gym.wrappers.RecordEpisodeStatistics) == [True] * 5
        assert venv.env_is_wrapped(gym.wrappers.TimeLimit, indices=2) == [False]
    finally:
        venv.close()
    venv.close()  # closing twice is harmless


class _Counting(gym.Wrapper):  # type: ignore[type-arg]
    """Counts the calls of its env's work ahead."""

    calls = 0

    def prepare(self) -> None:
        type(self).calls += 1
        self.env.get_wrapper_attr("prepare")()


def test_the_learners_group_works_ahead_only_while_workers_compute() -> None:
    """The learner's own group works ahead env by env while ``waiting()`` (a worker has not
    answered yet) and leaves the rest to the step (not after the answers: that only
    delays the learner); a command that is not a step or reset does no work ahead."""
    group = _LocalGroup([lambda: _Counting(_bid_pacing())] * 3)
    try:
        group.send(("reset", (0, [{}] * 3)))
        group.recv()
        _Counting.calls = 0
        group.work_ahead(lambda: True)
        assert _Counting.calls == 3
        group.send(("step", np.zeros((3, 1), np.float32)))
        group.recv()
        assert _Counting.calls == 3  # the answer comes first
        answers = iter([True, False])
        group.work_ahead(lambda: next(answers))
        assert _Counting.calls == 4
        group.send(("step", np.zeros((3, 1), np.float32)))  # the other two left to it
        group.recv()
        group.work_ahead(lambda: False)
        assert _Counting.calls == 4
        group.work_ahead(lambda: True)
        assert _Counting.calls == 7  # this step's three
        group.send(("get_attr", ("episode_reuse", [0])))
        assert group.recv() == [1]
        group.work_ahead(lambda: True)
        assert _Counting.calls == 7
    finally:
        group.close()


def test_bad_worker_counts_are_refused() -> None:
    for workers in (0, 6):
        with pytest.raises(ValueError, match="n_workers"):
            GroupedSubprocVecEnv([_bid_pacing] * 5, workers)


def test_build_vec_env_picks_the_vec_env() -> None:
    base = TrainingConfig(n_envs=4, vec_env="subproc", ppo={"batch_size": 64})
    factory = functools.partial(_bid_pacing)
    one_per_core = min(4, _cpus())
    cases = [
        (base.with_overrides(vec_workers=2), GroupedSubprocVecEnv, 2),
        (base.with_overrides(vec_env="dummy"), DummyVecEnv, None),
        (base.with_overrides(vec_workers=4), SubprocVecEnv, None),
        (base, GroupedSubprocVecEnv if one_per_core < 4 else SubprocVecEnv, one_per_core),
    ]
    for config, kind, workers in cases:
        venv = build_vec_env(config, factory=factory)
        try:
            assert isinstance(venv.venv, kind)
            if kind is GroupedSubprocVecEnv:
                assert len(venv.venv.groups) == workers  # type: ignore[attr-defined]
        finally:
            venv.close()


def _broken() -> gym.Env[Any, Any]:
    raise InvalidInput("scenario file: market.slots must be >= 1")


@pytest.mark.parametrize("local", [False, True])
def test_worker_errors_reach_the_caller_with_their_message(local: bool) -> None:
    """Errors of envs in the workers, or in this process's group, are ``WorkerError``s
    carrying the env's message; every group still answers afterwards."""
    for fns in ([_bid_pacing, _bid_pacing, _broken], [_broken, _bid_pacing, _bid_pacing]):
        with pytest.raises(WorkerError, match=r"market\.slots must be >= 1"):
            GroupedSubprocVecEnv(fns, 2, local_group=local)
    venv = GroupedSubprocVecEnv([_bid_pacing] * 3, 2, local_group=local)
    try:
        venv.seed(0)
        venv.reset()
        for bad in (0, 2):  # in the first group (this process's with local) and the last
            actions = np.zeros((3, 1), dtype=np.float32)
            actions[bad] = np.nan
            with pytest.raises(WorkerError, match="finite"):
                venv.step(actions)
        for index in (0, 2):
            with pytest.raises(WorkerError, match="no_such_attribute"):
                venv.get_attr("no_such_attribute", indices=[index])
        assert venv.get_attr("action_log_range") == [1.0] * 3  # the workers still answer
    finally:
        venv.close()
    assert venv.closed
