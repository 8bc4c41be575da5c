"""Vectorised envs in a few worker processes, each stepping its share of the envs in turn.

Stable-Baselines3's ``SubprocVecEnv`` runs one process per env. With more envs than CPU
cores (8 envs on 2 cores, say) the processes take turns on the cores at every step: each
step pays a round trip through a pipe and a context switch per env, and each env finds its
data evicted from the CPU caches by the others. :class:`GroupedSubprocVecEnv` runs
``n_workers`` processes (by default one per core); each holds a ``DummyVecEnv`` of its
consecutive share of the envs and answers one message per step for all of them.

With ``local_group=True`` the first group is stepped in the calling process (so there are
``n_workers - 1`` worker processes): the learner does nothing but wait while the envs step,
so it steps a share of them itself (one env less than an even share, :func:`group_envs`),
and that share pays no round trip through a pipe (to a sleeping worker, some 200 us on the
2-core VM this was measured on, more than four ``Pendulum-v1`` steps). The learner steps its
group, then works ahead on it env by env while the workers compute their answers, and not
once they have answered (it would only delay the learner): what is left, the next step
computes while the workers step theirs.

Stepping, automatic resets (``terminal_observation``, ``TimeLimit.truncated``), seeds
(env ``i`` gets ``seed + i``), options and ``reset_infos`` are ``DummyVecEnv``'s, so the
observations, rewards and infos are exactly those of ``SubprocVecEnv`` or ``DummyVecEnv`` on
the same env functions.

Work ahead: after answering a step or a reset, a worker calls the ``prepare()`` method of
each of its envs that has one (found through the wrappers with ``get_wrapper_attr``), for
instance :meth:`adbot.rl.env.BidPacingEnv.prepare`: work the next step needs whatever the
action, done while the learner computes the next actions and the worker would otherwise
wait (at a lower priority than the learner: ``WORKER_NICE``). It must not change any
result, only when it is computed; an exception in it is left for the step to raise again
(the step recomputes what ``prepare`` did not finish).

A worker exits by itself once the process that started it is gone (:func:`exit_with_parent`):
a learner killed outright (SIGKILL, the OOM killer) cannot stop its workers, and SB3's
``SubprocVecEnv`` workers, each holding a copy of the others' pipes, never see them close.
"""

from __future__ import annotations

import contextlib
import gc
import multiprocessing as mp
import os
import traceback
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
from stable_baselines3.common.vec_env.util import dict_to_obs

from adbot.processes import on_parent_exit

EnvFn = Callable[[], gym.Env]
# Workers run this much nicer than the learner. While the learner waits for their answers
# nothing competes with them; while it computes, their work ahead yields it the CPU (on 2
# cores, 2 workers and the learner: the median ratio of benchmarks/train.py rose by 0.01-0.06
# in three interleaved pairs of invocations).
WORKER_NICE = 5


_watched_pid: int | None = None  # the process whose parent is watched


def exit_with_parent() -> None:
    """In a process started by ``multiprocessing``: exit (at once, as there is no one left
    to answer) when the process that started it is gone; a no-op in any other process and
    the second time in one."""
    global _watched_pid
    if _watched_pid != os.getpid() and on_parent_exit(lambda: os._exit(1)):
        _watched_pid = os.getpid()


class StopsWithParent:
    """An env function that, called in a worker process (SB3's ``SubprocVecEnv`` calls it
    there), first makes the worker exit with its parent; called in the process that made
    it (``DummyVecEnv``), it only builds the env."""

    def __init__(self, fn: EnvFn) -> None:
        self.fn, self.pid = fn, os.getpid()

    def __call__(self) -> gym.Env:
        if os.getpid() != self.pid:
            exit_with_parent()
        return self.fn()


class WorkerError(RuntimeError):
    """An env raised in a worker process; the message is the worker's traceback."""


class _SentInfos(list[dict[str, Any]]):
    """A worker's info buffer: ``deepcopy`` of it is a shallow copy (see ``_WorkerEnvs``)."""

    def __deepcopy__(self, memo: dict[int, Any]) -> list[dict[str, Any]]:
        return list(self)


class _WorkerEnvs(DummyVecEnv):
    """A worker's share of the envs: ``DummyVecEnv`` without its defensive copies.

    ``DummyVecEnv.step_wait`` deep-copies the observation buffer and the info dicts so a
    caller cannot alias the next step's; a worker pickles its answer to the parent at once,
    which copies anyway (the infos are new dicts from each env step). The two copies were
    about 7% of a worker's time on ``BidPacing-v0``.
    """

    def __init__(self, env_fns: list[EnvFn]) -> None:
        super().__init__(env_fns)
        self.buf_infos = _SentInfos(self.buf_infos)

    def _obs_from_buf(self) -> VecEnvObs:
        return dict_to_obs(self.observation_space, self.buf_obs)


def _answer(venv: DummyVecEnv, command: str, data: Any) -> Any:
    """What a worker replies to one command on its share of the envs. After a step, only
    the reset infos of the envs reset in it travel (the parent keeps the others)."""
    if command == "step":
        venv.step_async(data)
        obs, rewards, dones, infos = venv.step_wait()
        reset = [(i, venv.reset_infos[i]) for i in np.flatnonzero(dones)]
        return obs, rewards, dones, infos, reset
    if command == "reset":
        seed, options = data
        if seed is not None:  # else the envs keep their streams (no reseeding)
            venv.seed(seed)
        venv.set_options(options)
        return venv.reset(), venv.reset_infos
    if command == "get_attr":
        return venv.get_attr(*data)
    if command == "set_attr":
        venv.set_attr(*data)
        return [None] * len(data[2])
    if command == "env_method":
        name, args, kwargs, indices = data
        return venv.env_method(name, *args, indices=indices, **kwargs)
    if command == "spaces":
        return venv.observation_space, venv.action_space
    if command == "is_wrapped":
        return venv.env_is_wrapped(*data)
    raise ValueError(f"unknown vec-env command {command!r}")


def _preparers(venv: DummyVecEnv) -> list[Callable[[], None]]:
    """The ``prepare`` methods of the envs that have one (see the module docstring)."""
    found = []
    for env in venv.envs:
        with contextlib.suppress(AttributeError):
            prepare = env.get_wrapper_attr("prepare")
            if callable(prepare):
                found.append(prepare)
    return found


def _reply(venv: DummyVecEnv, command: str, data: Any) -> tuple[Any, bool]:
    """The answer to one command (a ``WorkerError`` if it raised), and whether to work
    ahead after it (after a step or a reset that went through)."""
    try:
        return _answer(venv, command, data), command in ("step", "reset")
    except Exception:
        return WorkerError(traceback.format_exc()), False


def _work_ahead(preparers: list[Callable[[], None]]) -> None:
    for prepare in preparers:
        # The step recomputes whatever prepare did not finish, and raises the error then.
        with contextlib.suppress(Exception):
            prepare()


def _worker(remote: Connection, parent: Connection, fns: CloudpickleWrapper) -> None:
    """Build the envs and send their spaces, then answer commands until ``close``. An
    exception (building the envs included) is sent back as a ``WorkerError``, so the caller
    sees what went wrong instead of a broken pipe."""
    parent.close()
    exit_with_parent()
    try:
        venv = _WorkerEnvs(fns.var)
    except Exception:
        remote.send(WorkerError(traceback.format_exc()))
        remote.close()
        return
    # The worker inherits the parent's heap (torch, SB3: some 300,000 objects the cyclic
    # garbage collector tracks). Frozen, they are skipped by every collection; a full one
    # over them took ~0.1 s, about a tenth of a worker's time on BidPacing-v0.
    gc.freeze()
    with contextlib.suppress(OSError):  # a platform without nice values: run as is
        os.nice(WORKER_NICE)
    preparers = _preparers(venv)
    remote.send((venv.observation_space, venv.action_space))
    try:
        while True:
            command, data = remote.recv()
            if command == "close":
                break
            answer, ahead = _reply(venv, command, data)
            remote.send(answer)  # before the work ahead: the learner is waiting for it
            if ahead:
                _work_ahead(preparers)
    except (KeyboardInterrupt, EOFError):
        pass
    finally:
        venv.close()
        remote.close()


class _LocalGroup:
    """A group of envs stepped in the calling process, behind the same ``send``/``recv`` as
    a worker's pipe: ``recv`` computes the answer, then works ahead, as a worker does (while
    the workers still compute theirs); an exception, building the envs included, comes back
    as a ``WorkerError``."""

    def __init__(self, fns: list[EnvFn]) -> None:
        self.venv: _WorkerEnvs | None = None
        self._error: WorkerError | None = None
        try:
            self.venv = _WorkerEnvs(fns)
        except Exception:
            self._error = WorkerError(traceback.format_exc())
        self.preparers = [] if self.venv is None else _preparers(self.venv)
        self._ahead: list[Callable[[], None]] = []  # the preparers not yet run this step
        self._pending: tuple[str, Any] | None = None

    def send(self, message: tuple[str, Any]) -> None:
        self._pending = message

    def recv(self) -> Any:
        assert self._pending is not None, "recv without a command"
        (command, data), self._pending = self._pending, None
        if self.venv is None:
            return self._error
        answer, ahead = _reply(self.venv, command, data)
        self._ahead = list(self.preparers) if ahead else []
        return answer

    def work_ahead(self, waiting: Callable[[], bool]) -> None:
        """Work ahead on the envs one by one while ``waiting()`` (for the workers' answers);
        what is left the next step computes (in the time the workers step theirs)."""
        while self._ahead and waiting():
            _work_ahead([self._ahead.pop(0)])

    def close(self) -> None:
        if self.venv is not None:
            self.venv.close()


def _received(remotes: Sequence[Connection | _LocalGroup]) -> list[Any]:
    """Every remote's answer, all read before the first worker's error is raised (so no
    answer is left in a pipe to be mistaken for the next one). The local group answers
    first, then works ahead while workers are still computing (not after: that would only
    delay the learner)."""
    groups = [remote for remote in remotes if isinstance(remote, _LocalGroup)]
    pipes = [remote for remote in remotes if not isinstance(remote, _LocalGroup)]
    local = {id(group): group.recv() for group in groups}
    for group in groups:
        group.work_ahead(lambda: not all(pipe.poll() for pipe in pipes))
    answers = [local[id(remote)] if id(remote) in local else remote.recv() for remote in remotes]
    for answer in answers:
        if isinstance(answer, WorkerError):
            raise answer
    return answers


def group_envs(n_envs: int, n_workers: int, *, local_group: bool) -> list[list[int]]:
    """The envs' indices in ``n_workers`` groups of consecutive envs, as even as they go; with
    ``local_group`` the first, the learner's own, is one env smaller than an even share
    (never empty), its env going to the worker groups: the learner also computes the next
    actions, and with the 4 and 4 of 8 envs on 2 cores it was the one the step waited for.
    ``benchmarks/train.py``, five interleaved pairs, 3 and 5 against 4 and 4: a ratio to
    Pendulum higher by 0.00 to 0.03, mean +0.014 (twelfth session)."""
    if not local_group or n_workers == 1 or n_envs // n_workers <= 1:
        return [[int(i) for i in g] for g in np.array_split(np.arange(n_envs), n_workers)]
    local = -(-n_envs // n_workers) - 1  # an even share, rounded up, less one
    rest = np.array_split(np.arange(local, n_envs), n_workers - 1)
    return [list(range(local)), *([int(i) for i in g] for g in rest)]


class GroupedSubprocVecEnv(VecEnv):
    """``len(env_fns)`` envs in ``n_workers`` groups, each stepped by a worker process, or
    the first by this process with ``local_group`` (see the module docstring)."""

    def __init__(
        self,
        env_fns: Sequence[EnvFn],
        n_workers: int,
        start_method: str = "fork",
        local_group: bool = False,
    ) -> None:
        n_envs = len(env_fns)
        if not 1 <= n_workers <= n_envs:
            raise ValueError(f"n_workers must be in 1..{n_envs}, got {n_workers}")
        self.groups = group_envs(n_envs, n_workers, local_group=local_group)
        self.waiting = self.closed = False
        context = mp.get_context(start_method)
        remote_groups = self.groups[1:] if local_group else self.groups
        pipes = [context.Pipe() for _ in remote_groups]
        self.remotes: list[Connection | _LocalGroup] = [parent for parent, _ in pipes]
        self.processes = []
        for (parent, child), group in zip(pipes, remote_groups, strict=True):
            fns = CloudpickleWrapper([env_fns[i] for i in group])
            process = context.Process(  # type: ignore[attr-defined]
                target=_worker, args=(child, parent, fns), daemon=True
            )
            process.start()
            child.close()
            self.processes.append(process)
        if local_group:
            self.remotes.insert(0, _LocalGroup([env_fns[i] for i in self.groups[0]]))
            self.remotes[0].send(("spaces", None))
        try:
            observation_space, action_space = _received(self.remotes)[0]
        except WorkerError:
            self._stop()
            raise
        if not isinstance(observation_space, spaces.Box):
            self._stop()
            raise ValueError("GroupedSubprocVecEnv needs Box observations (stacked as arrays)")
        super().__init__(n_envs, observation_space, action_space)

    def step_async(self, actions: np.ndarray) -> None:
        for remote, group in zip(self.remotes, self.groups, strict=True):
            remote.send(("step", actions[group[0] : group[-1] + 1]))
        self.waiting = True

    def step_wait(self) -> VecEnvStepReturn:
        self.waiting = False
        results = _received(self.remotes)
        obs, rewards, dones, infos, resets = zip(*results, strict=True)
        for group, reset in zip(self.groups, resets, strict=True):
            for i, info in reset:
                self.reset_infos[group[0] + int(i)] = info
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
        results = _received(self.remotes)
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
        self._stop()

    def _stop(self) -> None:
        """Ask every worker still listening to close, and wait for all of them."""
        for remote in self.remotes:
            if isinstance(remote, _LocalGroup):
                remote.close()
                continue
            with contextlib.suppress(OSError):  # that worker has already stopped
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
                answers.update(zip(mine, _received([remote])[0], strict=True))
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


__all__ = ["GroupedSubprocVecEnv", "StopsWithParent", "WorkerError", "exit_with_parent"]
