"""Vectorised envs in a few worker processes, each stepping its share of the envs in turn.

Stable-Baselines3's ``SubprocVecEnv`` runs one process per env. With more envs than CPU
cores (8 envs on 2 cores, say) the processes take turns on the cores at every step: each
step pays a round trip through a pipe and a context switch per env, and each env finds its
data evicted from the CPU caches by the others. :class:`GroupedSubprocVecEnv` runs
``n_workers`` processes (by default one per core); each holds a ``DummyVecEnv`` of its
consecutive share of the envs and answers one message per step for all of them.

Stepping, automatic resets (``terminal_observation``, ``TimeLimit.truncated``), seeds
(env ``i`` gets ``seed + i``), options and ``reset_infos`` are ``DummyVecEnv``'s, so the
observations, rewards and infos are exactly those of ``SubprocVecEnv`` or ``DummyVecEnv`` on
the same env functions.
"""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv
from stable_baselines3.common.vec_env.base_vec_env import (
    CloudpickleWrapper,
    VecEnvIndices,
    VecEnvObs,
    VecEnvStepReturn,
)

EnvFn = Callable[[], gym.Env]


def _worker(remote: Connection, parent: Connection, fns: CloudpickleWrapper) -> None:
    parent.close()
    venv = DummyVecEnv(fns.var)
    try:
        while True:
            command, data = remote.recv()
            if command == "step":
                venv.step_async(data)
                remote.send((*venv.step_wait(), venv.reset_infos))
            elif command == "reset":
                seed, options = data
                if seed is not None:  # else the envs keep their streams (no reseeding)
                    venv.seed(seed)
                venv.set_options(options)
                remote.send((venv.reset(), venv.reset_infos))
            elif command == "spaces":
                remote.send((venv.observation_space, venv.action_space))
            elif command == "get_attr":
                remote.send(venv.get_attr(*data))
            elif command == "set_attr":
                venv.set_attr(*data)
                remote.send([None] * len(data[2]))
            elif command == "env_method":
                name, args, kwargs, indices = data
                remote.send(venv.env_method(name, *args, indices=indices, **kwargs))
            elif command == "is_wrapped":
                remote.send(venv.env_is_wrapped(*data))
            elif command == "close":
                venv.close()
                remote.close()
                return
            else:
                raise NotImplementedError(f"unknown command {command!r}")
    except KeyboardInterrupt:
        venv.close()


class GroupedSubprocVecEnv(VecEnv):
    """``len(env_fns)`` envs in ``n_workers`` processes (see the module docstring)."""

    def __init__(
        self, env_fns: Sequence[EnvFn], n_workers: int, start_method: str = "fork"
    ) -> None:
        n_envs = len(env_fns)
        if not 1 <= n_workers <= n_envs:
            raise ValueError(f"n_workers must be in 1..{n_envs}, got {n_workers}")
        self.groups = [[int(i) for i in g] for g in np.array_split(np.arange(n_envs), n_workers)]
        self.waiting = self.closed = False
        context = mp.get_context(start_method)
        pipes = [context.Pipe() for _ in self.groups]
        self.remotes = [parent for parent, _ in pipes]
        self.processes = []
        for (parent, child), group in zip(pipes, self.groups, strict=True):
            fns = CloudpickleWrapper([env_fns[i] for i in group])
            process = context.Process(  # type: ignore[attr-defined]
                target=_worker, args=(child, parent, fns), daemon=True
            )
            process.start()
            child.close()
            self.processes.append(process)
        self.remotes[0].send(("spaces", None))
        observation_space, action_space = self.remotes[0].recv()
        super().__init__(n_envs, observation_space, action_space)
        if not isinstance(observation_space, spaces.Box):
            self.close()
            raise ValueError("GroupedSubprocVecEnv needs Box observations (stacked as arrays)")

    def step_async(self, actions: np.ndarray) -> None:
        for remote, group in zip(self.remotes, self.groups, strict=True):
            remote.send(("step", actions[group[0] : group[-1] + 1]))
        self.waiting = True

    def step_wait(self) -> VecEnvStepReturn:
        results = [remote.recv() for remote in self.remotes]
        self.waiting = False
        obs, rewards, dones, infos, reset_infos = zip(*results, strict=True)
        self.reset_infos = [info for part in reset_infos for info in part]
        return (
            np.concatenate(obs),
            np.concatenate(rewards),
            np.concatenate(dones),
            [info for part in infos for info in part],
        )

    def reset(self) -> VecEnvObs:
        for remote, group in zip(self.remotes, self.groups, strict=True):
            seeds = self._seeds[group[0]]
            options = [self._options[i] for i in group]
            remote.send(("reset", (seeds, options)))
        results = [remote.recv() for remote in self.remotes]
        self._reset_seeds()
        self._reset_options()
        self.reset_infos = [info for _, part in results for info in part]
        return np.concatenate([obs for obs, _ in results])

    def close(self) -> None:
        if self.closed:
            return
        if self.waiting:
            for remote in self.remotes:
                remote.recv()
        for remote in self.remotes:
            remote.send(("close", None))
        for process in self.processes:
            process.join()
        self.closed = True

    def _ask(
        self, command: str, indices: VecEnvIndices, make: Callable[[list[int]], Any]
    ) -> list[Any]:
        """Send ``make(local indices)`` to each worker holding some of ``indices``; the
        answers in the order of ``indices``."""
        wanted = list(self._get_indices(indices))
        answers: dict[int, Any] = {}
        for remote, group in zip(self.remotes, self.groups, strict=True):
            mine = [i for i in wanted if group[0] <= i <= group[-1]]
            if mine:
                remote.send((command, make([i - group[0] for i in mine])))
                answers.update(zip(mine, remote.recv(), strict=True))
        return [answers[i] for i in wanted]

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        return self._ask("get_attr", indices, lambda local: (attr_name, local))

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        self._ask("set_attr", indices, lambda local: (attr_name, value, local))

    def env_method(
        self, method_name: str, *method_args: Any, indices: VecEnvIndices = None, **kwargs: Any
    ) -> list[Any]:
        return self._ask(
            "env_method", indices, lambda local: (method_name, method_args, kwargs, local)
        )

    def env_is_wrapped(
        self,
        wrapper_class: type[gym.Wrapper],
        indices: VecEnvIndices = None,
    ) -> list[bool]:
        return self._ask("is_wrapped", indices, lambda local: (wrapper_class, local))


def default_workers(n_envs: int, cpus: int | None) -> int:
    """One worker per CPU core, at most one per env."""
    return max(1, min(n_envs, cpus or 1))


__all__ = ["GroupedSubprocVecEnv", "default_workers"]
