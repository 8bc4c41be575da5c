"""PPO training speed on ``adbot/BidPacing-v0`` against Gymnasium's ``Pendulum-v1``.

Both run in the same process with the same PPO settings (those of
``configs/agents/default.yaml``: vectorised envs, VecNormalize, network, rollout and update
sizes); our env is exactly the training env of that config (random scenarios scaled to
``env.max_daily_queries``, each replayed about ``env.episode_reuse`` times). Prints
environment steps per second of ``model.learn`` for both and their ratio (target >= 0.8:
our env should not be what training waits for), plus the raw env step rate of each without
PPO, for context. Both models and vec envs live through the whole run, and timed rounds
alternate between them (four rollouts and their updates on each, which goes first
alternating): on this shared 2-core machine the speed of everything drifts by up to 2x from
minute to minute, so only rates taken close together compare. (Rounds of one rollout put
our env at a disadvantage training does not have: each round starts with its data evicted
from the caches by the other env's round.) The figure is the median of the
rounds' ratios. Each round also prints the envs' own CPU time per step, counted inside the
processes that step them (the learner steps one group itself, the workers the others): a
steadier measure of what our env costs than the wall-clock rates, with the CPU of the work
done ahead of each step (``BidPacingEnv.prepare``, while the learner computes).

Run: ``python benchmarks/train.py [--rounds R] [--timesteps N] [--config PATH]``.
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

# Before torch loads: training's CPU math (adbot.rl.cpu_math), as `adbot train` runs it.
import adbot.rl  # noqa: F401

os.environ.setdefault("OMP_NUM_THREADS", "1")

import gymnasium as gym
import torch
from stable_baselines3 import PPO

from adbot.rl.config import TrainingConfig, load_training_config
from adbot.rl.cpu_math import cpu_math
from adbot.rl.train import build_model, build_vec_env, make_env

TARGET = 0.8
LONG_AHEAD = 0.5e-3  # seconds: a work-ahead call longer than the learner's compute per step
ROOT = Path(__file__).resolve().parents[1]


class _StepClock(gym.Wrapper):  # type: ignore[type-arg]
    """Counts the CPU time of the wrapped env's steps (``step_cpu`` seconds, ``steps``) in
    the process that runs it: the env's own cost, free of the machine's wall-clock noise."""

    def __init__(self, env: gym.Env) -> None:  # type: ignore[type-arg]
        super().__init__(env)
        self.step_cpu = 0.0
        self.prepare_cpu = 0.0  # work ahead, between steps (``prepare``, if the env has one)
        self.prepare_calls = 0
        # Work-ahead calls over LONG_AHEAD and their CPU: one long call holds up the step the
        # learner waits for, however small the mean (see ``main``).
        self.long_calls = 0
        self.long_cpu = 0.0
        self.long_steps = 0  # steps over LONG_AHEAD (the learner's group does in its step
        # what it had no time to do ahead)
        self.steps = 0
        try:
            self._prepare = env.get_wrapper_attr("prepare")
        except AttributeError:
            self._prepare = None

    def prepare(self) -> None:
        if self._prepare is not None:
            start = time.thread_time()
            self._prepare()
            spent = time.thread_time() - start
            self.prepare_cpu += spent
            self.prepare_calls += 1
            if spent > LONG_AHEAD:
                self.long_calls += 1
                self.long_cpu += spent

    def step(self, action: Any) -> Any:
        start = time.thread_time()
        result = self.env.step(action)
        spent = time.thread_time() - start
        self.step_cpu += spent
        self.long_steps += spent > LONG_AHEAD
        self.steps += 1
        return result


def _pendulum() -> gym.Env:  # type: ignore[type-arg]
    return gym.make("Pendulum-v1")


def _clocked(factory: Callable[[], gym.Env]) -> Callable[[], gym.Env]:  # type: ignore[type-arg]
    """``factory`` with its env's step CPU counted (``_StepClock``)."""
    return lambda: _StepClock(factory())


class _Run:
    """One env's vec env and PPO model, kept for the whole benchmark, timed round by round."""

    def __init__(self, config: TrainingConfig, factory: Callable[[], gym.Env]) -> None:  # type: ignore[type-arg]
        self.venv = build_vec_env(config, factory=_clocked(factory))
        self.model: PPO = build_model(config, self.venv)
        self.model.learn(config.ppo.n_steps * config.n_envs)  # warm-up: draws, torch start-up

    def learn(self, timesteps: int) -> tuple[float, float, float]:
        """PPO env steps per second of ``model.learn(timesteps)``, and the envs' CPU per step
        (us) inside ``step`` and ahead of it (``prepare``) over those steps."""
        venv = self.venv
        cpu_before = sum(venv.get_attr("step_cpu"))
        ahead_before = sum(venv.get_attr("prepare_cpu"))
        steps_before = sum(venv.get_attr("steps"))
        start = time.perf_counter()
        self.model.learn(timesteps, reset_num_timesteps=False)
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
    parser.add_argument(
        "--timesteps", type=int, default=None, help="per env and round (default: 4 rollouts)"
    )
    parser.add_argument("--rounds", type=int, default=6, help="timed rounds (default 6)")
    args = parser.parse_args()
    config = load_training_config(args.config)
    torch.set_num_threads(config.torch_threads)
    timesteps = args.timesteps or 4 * config.ppo.n_steps * config.n_envs
    print(
        f"PPO settings of {args.config.name}: {config.n_envs} envs ({config.vec_env}), "
        f"n_steps {config.ppo.n_steps}, batch {config.ppo.batch_size}, "
        f"epochs {config.ppo.n_epochs}, net {list(config.ppo.net_arch)}; {args.rounds} "
        f"rounds of {timesteps} timesteps on each env; our env: random scenarios capped at "
        f"{config.env.max_daily_queries} queries/day, each market played about "
        f"{config.env.episode_reuse} times (env.episode_reuse); torch CPU math {cpu_math()}"
    )
    ours_env = _env_rate(make_env(config), 2000)
    pendulum_env = _env_rate(_pendulum(), 20000)
    print(
        f"raw env steps/s (no PPO, one env): BidPacing-v0 {ours_env:,.0f}, "
        f"Pendulum-v1 {pendulum_env:,.0f}"
    )
    ours = _Run(config, functools.partial(make_env, config))
    pendulum = _Run(config, _pendulum)
    ratios: list[float] = []
    figures: dict[str, list[tuple[float, float, float]]] = {"ours": [], "pendulum": []}
    try:
        for round_ in range(1, args.rounds + 1):
            # Alternate which goes first, so neither always follows the other.
            order = [("ours", ours), ("pendulum", pendulum)]
            for name, run in order if round_ % 2 else order[::-1]:
                figures[name].append(run.learn(timesteps))
            (rate, cpu, ahead), (rate_p, cpu_p, _) = figures["ours"][-1], figures["pendulum"][-1]
            ratios.append(rate / rate_p)
            print(
                f"round {round_}: PPO env steps/s BidPacing-v0 {rate:,.0f}, Pendulum-v1 "
                f"{rate_p:,.0f}, ratio {rate / rate_p:.2f} (per env step {1e6 / rate:,.0f} us "
                f"against {1e6 / rate_p:,.0f} us; env CPU per step {cpu:,.0f} us + {ahead:,.0f} "
                f"us ahead against {cpu_p:,.0f} us)"
            )
        calls, long_calls, ahead_cpu, long_cpu, steps, long_steps = (
            sum(ours.venv.get_attr(name))
            for name in (
                "prepare_calls",
                "long_calls",
                "prepare_cpu",
                "long_cpu",
                "steps",
                "long_steps",
            )
        )
    finally:
        ours.venv.close()
        pendulum.venv.close()
    ratio = statistics.median(ratios)
    verdict = "ok" if ratio >= TARGET else "BELOW TARGET"
    overall = statistics.fmean(1 / f[0] for f in figures["pendulum"]) / statistics.fmean(
        1 / f[0] for f in figures["ours"]
    )
    quartiles = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else [ratio] * 3
    print(
        f"ratio, median of {len(ratios)} rounds: {ratio:.2f} (quartiles {quartiles[0]:.2f}-"
        f"{quartiles[2]:.2f}, range {min(ratios):.2f}-{max(ratios):.2f}; all rounds' time: "
        f"{overall:.2f}; target >= {TARGET}: {verdict}); env CPU per step, median: "
        f"BidPacing-v0 {statistics.median(f[1] for f in figures['ours']):,.0f} us in step + "
        f"{statistics.median(f[2] for f in figures['ours']):,.0f} us ahead (prepare), "
        f"Pendulum-v1 {statistics.median(f[1] for f in figures['pendulum']):,.0f} us"
    )
    print(
        f"work-ahead calls of BidPacing-v0 over {LONG_AHEAD * 1e3:g} ms: "
        f"{100 * long_calls / max(calls, 1):.2f}% of {calls:,} calls, "
        f"{100 * long_cpu / max(ahead_cpu, 1e-12):.0f}% of the work-ahead CPU; steps over "
        f"{LONG_AHEAD * 1e3:g} ms: {100 * long_steps / max(steps, 1):.2f}% of {steps:,}"
    )


if __name__ == "__main__":
    main()
