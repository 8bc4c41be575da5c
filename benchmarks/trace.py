"""A hash of every PPO rollout and update of a training run, to find where two machines part.

``benchmarks/reproduce.py`` says whether a retrain here gives the shipped agents; when it does
not, two traces of the same config and seed, one from each machine, say at which PPO update
the runs first differ and in what. This trains the config in this process as ``adbot train``
does (the same vec env, model and seeding; no evaluations, no checkpoints, nothing recorded)
and, after each rollout, takes a sha256 prefix of: the policy's weights and the optimiser's
state going into the rollout (after the updates before it), the rollout buffer's
observations (as normalised), actions, rewards (as normalised), values, log-probabilities,
episode starts, advantages and returns, and the VecNormalize statistics. The first field to
differ names the part: observations or rewards, the env (or VecNormalize); actions, the
sampling; values or log-probabilities, the forward pass; the weights, the update before.

Run: ``python benchmarks/trace.py [--config PATH] [--seed 1] [--updates 40] --out FILE``
(about a minute for 40 updates here), then on the other machine ``python
benchmarks/trace.py ... --compare FILE``: it traces the same run and prints the first update
and fields that differ (exit status 1), or that all agree.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any, cast

# Before torch loads: training's CPU math (adbot.rl.cpu_math), as `adbot train` runs it.
import adbot.rl  # noqa: F401

# isort: split
import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.utils import set_random_seed

from adbot.rl.config import load_training_config
from adbot.rl.cpu_math import cpu_math
from adbot.rl.train import build_model, build_vec_env

ROOT = Path(__file__).resolve().parents[1]
BUFFER_FIELDS = (
    "observations",
    "actions",
    "rewards",
    "values",
    "log_probs",
    "episode_starts",
    "advantages",
    "returns",
)


def digest(*arrays: Any) -> str:
    """sha256 prefix of the arrays' bytes (C order)."""
    h = hashlib.sha256()
    for array in arrays:
        h.update(np.ascontiguousarray(array).tobytes())
    return h.hexdigest()[:16]


def _tensors(state: Any) -> list[np.ndarray]:
    """Every tensor of a (nested) state dict, in its order, as numpy arrays."""
    if isinstance(state, torch.Tensor):
        return [state.detach().cpu().numpy()]
    if isinstance(state, dict):
        return [t for key in state for t in _tensors(state[key])]
    if isinstance(state, (list, tuple)):
        return [t for item in state for t in _tensors(item)]
    return [np.asarray(state, dtype=np.float64)] if isinstance(state, (int, float)) else []


class _Trace(BaseCallback):
    """Records one entry per rollout (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self.entries: list[dict[str, Any]] = []

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        model, venv = cast(PPO, self.model), self.model.get_env()
        buffer = model.rollout_buffer
        entry: dict[str, Any] = {
            "update": len(self.entries),
            "timesteps": int(model.num_timesteps),
            "weights": digest(*_tensors(model.policy.state_dict())),
            "optimizer": digest(*_tensors(model.policy.optimizer.state_dict())),
        }
        entry |= {name: digest(getattr(buffer, name)) for name in BUFFER_FIELDS}
        obs_rms, ret_rms = venv.obs_rms, venv.ret_rms  # type: ignore[union-attr]
        entry["normalisation"] = digest(
            obs_rms.mean, obs_rms.var, obs_rms.count, ret_rms.mean, ret_rms.var, ret_rms.count
        )
        self.entries.append(entry)


def trace(config_path: Path, seed: int, updates: int) -> list[dict[str, Any]]:
    """The entries of ``updates`` rollouts of the config trained with ``seed``."""
    config = load_training_config(config_path).with_overrides(seed=seed)
    torch.set_num_threads(config.torch_threads)
    set_random_seed(config.seed)
    venv = build_vec_env(config)
    try:
        model = build_model(config, venv)
        callback = _Trace()
        model.learn(updates * config.ppo.n_steps * config.n_envs, callback=callback)
    finally:
        venv.close()
    return callback.entries


def first_difference(ours: list[dict[str, Any]], theirs: list[dict[str, Any]]) -> str | None:
    """A line naming the first rollout and fields that differ, or None if all agree."""
    for mine, other in zip(ours, theirs, strict=False):
        fields = [key for key in mine if key != "update" and mine[key] != other.get(key)]
        if fields:
            return f"first difference at update {mine['update']}: {', '.join(fields)}"
    if len(ours) != len(theirs):
        return f"the traces agree over their first {min(len(ours), len(theirs))} updates"
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "configs/agents/default.yaml")
    parser.add_argument("--seed", type=int, default=1, help="training seed (default 1)")
    parser.add_argument("--updates", type=int, default=40, help="PPO rollouts (default 40)")
    parser.add_argument("--out", type=Path, help="write the trace here (JSON lines)")
    parser.add_argument("--compare", type=Path, help="a trace from another machine")
    args = parser.parse_args()
    if args.out is None and args.compare is None:
        parser.error("give --out FILE, --compare FILE or both")
    theirs = None
    if args.compare is not None:
        try:
            lines = args.compare.read_text().splitlines()
            theirs = [json.loads(line) for line in lines if line.strip()]
        except (OSError, ValueError) as error:
            parser.error(f"--compare {args.compare}: {error}")
    ours = trace(args.config, args.seed, args.updates)
    math = cpu_math()
    if args.out is not None:
        args.out.write_text("".join(json.dumps(e | {"cpu_math": math}) + "\n" for e in ours))
        print(f"{len(ours)} updates traced into {args.out} (CPU math {math})")
    if theirs is not None:
        theirs = [{k: v for k, v in e.items() if k != "cpu_math"} for e in theirs]
        verdict = first_difference(ours, theirs)
        print(verdict or f"the {len(ours)} updates agree with {args.compare}")
        if verdict is not None and verdict.startswith("first difference"):
            sys.exit(1)


if __name__ == "__main__":
    main()
