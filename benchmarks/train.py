"""PPO training speed on ``adbot/BidPacing-v0`` against Gymnasium's ``Pendulum-v1``.

Both run in the same process with the same PPO settings (those of
``configs/agents/default.yaml``: vectorised envs, VecNormalize, network, rollout and update
sizes); our env is exactly the training env of that config (random scenarios scaled to
``env.max_daily_queries``, each replayed about ``env.episode_reuse`` times). Prints
environment steps per second of ``model.learn`` for both and their ratio (target >= 0.8:
our env should not be what training waits for), plus the raw env step rate of each without
PPO, for context. Runs alternate (ours, Pendulum, ours, ...) and the median ratio is the
figure: on a shared 2-core machine one run's Pendulum rate can vary by a factor of 2. Each
run also prints the envs' own CPU time per step, counted inside the processes that step them
(the learner steps one group itself, the workers the others): a steadier measure of what our
env costs than the wall-clock rates; with it the CPU of the work done ahead of each step
(``BidPacingEnv.prepare``, while the learner computes).

Run: ``python benchmarks/train.py [--timesteps N] [--repeats R] [--config PATH]``.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import gymnasium as gym
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import VecNormalize

from adbot.rl.config import TrainingConfig, load_training_config
from adbot.rl.train import build_model, build_vec_env, make_env

TARGET = 0.8
ROOT = Path(__file__).resolve().parents[1]


class _StepClock(gym.Wrapper):  # type: ignore[type-arg]
    """Counts the CPU time of the wrapped env's steps (``step_cpu`` seconds, ``steps``) in
    the process that runs it: the env's own cost, free of the machine's wall-clock noise."""

    def __init__(self, env: gym.Env) -> None:  # type: ignore[type-arg]
        super().__init__(env)
        self.step_cpu = 0.0
        self.prepare_cpu = 0.0  # work ahead, between steps (``prepare``, if the env has one)
        self.steps = 0
        try:
            self._prepare = env.get_wrapper_attr("prepare")
        except AttributeError:
            self._prepare = None

    def prepare(self) -> None:
        if self._prepare is not None:
            start = time.thread_time()
            self._prepare()
            self.prepare_cpu += time.thread_time() - start

    def step(self, action: Any) -> Any:
        start = time.thread_time()
        result = self.env.step(action)
        self.step_cpu += time.thread_time() - start
        self.steps += 1
        return result


def _pendulum() -> gym.Env:  # type: ignore[type-arg]
    return gym.make("Pendulum-v1")


def _clocked(factory: Callable[[], gym.Env]) -> Callable[[], gym.Env]:  # type: ignore[type-arg]
    """``factory`` with its env's step CPU counted (``_StepClock``)."""
    return lambda: _StepClock(factory())


def _learn_rate(
    config: TrainingConfig, venv: VecNormalize, timesteps: int
) -> tuple[float, float, float]:
    """PPO env steps per second of ``model.learn``, the envs' CPU per step (us) inside
    ``step`` and ahead of it (``prepare``), all over the timed part only."""
    model: PPO = build_model(config, venv)
    rollout = config.ppo.n_steps * config.n_envs
    model.learn(rollout)  # warm-up: first episode draws, torch start-up
    cpu_before = sum(venv.get_attr("step_cpu"))
    ahead_before = sum(venv.get_attr("prepare_cpu"))
    steps_before = sum(venv.get_attr("steps"))
    start = time.perf_counter()
    model.learn(timesteps, reset_num_timesteps=False)
    rate = timesteps / (time.perf_counter() - start)
    cpu = sum(venv.get_attr("step_cpu")) - cpu_before
    ahead = sum(venv.get_attr("prepare_cpu")) - ahead_before
    steps = max(sum(venv.get_attr("steps")) - steps_before, 1)
    return rate, 1e6 * cpu / steps, 1e6 * ahead / steps


def _env_rate(env: gym.Env, steps: int) -> float:  # type: ignore[type-arg]
    env.reset(seed=0)
    env.action_space.seed(0)

    def play(n: int) -> None:
        for _ in range(n):
            _, _, terminated, truncated, _ = env.step(env.action_space.sample())
            if terminated or truncated:
                env.reset()

    play(steps // 4)  # warm-up: compiled kernels loaded, first draws made
    start = time.perf_counter()
    play(steps)
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "configs/agents/default.yaml")
    parser.add_argument("--timesteps", type=int, default=None, help="default: 4 rollouts")
    parser.add_argument(
        "--repeats", type=int, default=3, help="alternating runs of each env (default 3)"
    )
    args = parser.parse_args()
    config = load_training_config(args.config)
    torch.set_num_threads(config.torch_threads)
    timesteps = args.timesteps or 4 * config.ppo.n_steps * config.n_envs
    print(
        f"PPO settings of {args.config.name}: {config.n_envs} envs ({config.vec_env}), "
        f"n_steps {config.ppo.n_steps}, batch {config.ppo.batch_size}, "
        f"epochs {config.ppo.n_epochs}, net {list(config.ppo.net_arch)}; "
        f"{timesteps} timesteps each, {args.repeats} alternating runs; our env: random "
        f"scenarios capped at {config.env.max_daily_queries} queries/day, each market played "
        f"about {config.env.episode_reuse} times (env.episode_reuse)"
    )
    ours_env = _env_rate(make_env(config), 2000)
    pendulum_env = _env_rate(_pendulum(), 20000)
    print(
        f"raw env steps/s (no PPO, one env): BidPacing-v0 {ours_env:,.0f}, "
        f"Pendulum-v1 {pendulum_env:,.0f}"
    )
    ratios: list[float] = []
    cpu_ours: list[float] = []
    cpu_pendulum: list[float] = []
    ahead_ours: list[float] = []
    ours_factory = functools.partial(make_env, config)
    for run in range(1, args.repeats + 1):
        rates = []
        for factory, cpus in ((ours_factory, cpu_ours), (_pendulum, cpu_pendulum)):
            venv = build_vec_env(config, factory=_clocked(factory))
            rate, cpu, ahead = _learn_rate(config, venv, timesteps)
            rates.append(rate)
            cpus.append(cpu)
            if cpus is cpu_ours:
                ahead_ours.append(ahead)
            venv.close()
        ours, pendulum = rates
        ratios.append(ours / pendulum)
        print(
            f"run {run}: PPO env steps/s BidPacing-v0 {ours:,.0f}, Pendulum-v1 {pendulum:,.0f}, "
            f"ratio {ours / pendulum:.2f} (per env step {1e6 / ours:,.0f} us against "
            f"{1e6 / pendulum:,.0f} us; env CPU per step {cpu_ours[-1]:,.0f} "
            f"us + {ahead_ours[-1]:,.0f} us ahead against {cpu_pendulum[-1]:,.0f} us)"
        )
    ratio = statistics.median(ratios)
    verdict = "ok" if ratio >= TARGET else "BELOW TARGET"
    print(
        f"ratio, median of {len(ratios)} runs: {ratio:.2f} (range {min(ratios):.2f}-"
        f"{max(ratios):.2f}; target >= {TARGET}: {verdict}); env CPU per step in the "
        f"stepping processes, median: BidPacing-v0 {statistics.median(cpu_ours):,.0f} us in step + "
        f"{statistics.median(ahead_ours):,.0f} us ahead (prepare), Pendulum-v1 "
        f"{statistics.median(cpu_pendulum):,.0f} us"
    )


if __name__ == "__main__":
    main()
