"""Retrain a shipped agent from its config and compare it with what ships, member by member.

``ppo:default`` is the mean of the agents trained from ``configs/agents/default.yaml`` with
the seeds of its members (``src/adbot/rl/agents/default/ensemble.json``). This trains every
member's seed with ``adbot train`` itself, side by side, each into a directory of its own with
its own SQLite database and MLflow store, and compares each run's best checkpoint with the
shipped member: the step it was taken at, its evaluation score, every weight of the policy and
the normalisation statistics, all exactly. The checkpoints record the CPU math they were
trained on (``adbot.rl.cpu_math``); that is printed too. Exit status 1 when anything differs.

Run: ``python benchmarks/reproduce.py [--agent default] [--config PATH] [--seeds 0 1 2]
[--keep DIR]``; 5 to 15 minutes here for the three side by side (4 min 38 s on a quiet
machine in the twelfth session, every member identical, on the AMD EPYC with AVX-512 they were
trained on; about 14 minutes in the sixteenth session on an AMD EPYC without AVX-512, every
member identical; on an Intel Xeon in the thirteenth session every member differed, see the
README's Training).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from adbot.rl.checkpoints import Checkpoint, load_checkpoint
from adbot.rl.config import load_training_config
from adbot.rl.policy import AGENTS_DIR, ensemble_members

ROOT = Path(__file__).resolve().parents[1]
ADBOT = Path(sys.executable).with_name("adbot")


@dataclass
class Comparison:
    seed: int
    shipped: Checkpoint
    retrained: Checkpoint

    def differences(self) -> list[str]:
        a, b = self.shipped, self.retrained
        found = []
        if a.meta.timesteps != b.meta.timesteps:
            found.append(f"best at step {b.meta.timesteps:,}, shipped {a.meta.timesteps:,}")
        if a.meta.score_ratio != b.meta.score_ratio:
            found.append(f"score {b.meta.score_ratio!r}, shipped {a.meta.score_ratio!r}")
        if a.meta.config_fingerprint != b.meta.config_fingerprint:
            found.append("another config")
        ours, theirs = a.model.policy.state_dict(), b.model.policy.state_dict()
        unequal = [name for name in ours if not torch.equal(ours[name], theirs[name])]
        if unequal:
            found.append(f"weights differ in {len(unequal)} of {len(ours)} tensors")
        if a.normalization != b.normalization:
            found.append("normalisation statistics differ")
        return found


def _members(agent: Path) -> dict[int, Checkpoint]:
    directories = ensemble_members(agent) or [agent]
    return {c.meta.seed: c for c in (load_checkpoint(d) for d in directories)}


def _train(config: Path, seed: int, out: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "ADBOT_DB__URL": f"sqlite:///{out}/adbot.db",
        "ADBOT_MLFLOW__TRACKING_URI": f"sqlite:///{out}/mlflow.db",
        "ADBOT_DATA_DIR": str(out / "data"),
    }
    subprocess.run([ADBOT, "db", "upgrade"], env=env, check=True, capture_output=True)
    log = (out / "train.log").open("wb")
    command = [ADBOT, "train", "--config", str(config), "--seed", str(seed)]
    return subprocess.Popen(
        [*command, "--output", str(out / "run")], env=env, stdout=log, stderr=log
    )


def _checkpoints(out: Path) -> int:
    directory = out / "run" / "checkpoints"
    return len(list(directory.iterdir())) if directory.is_dir() else 0


def _retrain(config: Path, seeds: list[int], work: Path, console: Console) -> dict[int, Path]:
    frozen = load_training_config(config)
    rollout = frozen.ppo.n_steps * frozen.n_envs
    steps = -(-frozen.total_timesteps // rollout) * rollout  # PPO stops after whole rollouts
    every = frozen.evaluation.every_timesteps
    total = steps // every + (steps % every > 0)  # one every `every` steps, and the last step's
    runs = {seed: work / f"seed{seed}" for seed in seeds}
    for out in runs.values():
        out.mkdir(parents=True)
    processes = {seed: _train(config, seed, out) for seed, out in runs.items()}
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} checkpoints"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:
        tasks = {seed: progress.add_task(f"seed {seed}", total=total) for seed in seeds}
        while any(p.poll() is None for p in processes.values()):
            for seed, out in runs.items():
                progress.update(tasks[seed], completed=_checkpoints(out))
            progress.refresh()
            with contextlib.suppress(subprocess.TimeoutExpired, StopIteration):
                next(p for p in processes.values() if p.poll() is None).wait(timeout=5)
        for seed, out in runs.items():
            progress.update(tasks[seed], completed=_checkpoints(out))
    failed = [seed for seed, p in processes.items() if p.returncode != 0]
    if failed:
        logs = ", ".join(str(runs[seed] / "train.log") for seed in failed)
        raise SystemExit(f"training failed for seed(s) {failed}: see {logs}")
    return {seed: out / "run" / "best" for seed, out in runs.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agent", default="default", help="shipped agent (default: default)")
    parser.add_argument("--config", type=Path, default=ROOT / "configs/agents/default.yaml")
    parser.add_argument("--seeds", type=int, nargs="+", help="default: every member's seed")
    parser.add_argument("--keep", type=Path, help="train into this (new) directory and keep it")
    args = parser.parse_args()
    console = Console(stderr=True)
    shipped = _members(AGENTS_DIR / args.agent)
    seeds = args.seeds or sorted(shipped)
    unknown = sorted(set(seeds) - set(shipped))
    if unknown:
        raise SystemExit(f"ppo:{args.agent} has no member of seed {unknown}: {sorted(shipped)}")
    with tempfile.TemporaryDirectory(prefix="adbot-reproduce-") as scratch:
        work = args.keep or Path(scratch)
        best = _retrain(args.config, seeds, work, console)
        comparisons = [Comparison(s, shipped[s], load_checkpoint(best[s])) for s in seeds]
    table = Table(title=f"ppo:{args.agent} retrained from {args.config.name}")
    for column in ("seed", "best step", "score", "CPU math (retrained)", "result"):
        table.add_column(column)
    for c in comparisons:
        math = c.retrained.meta.cpu_math or {}
        where = f"ATen {math.get('aten_capability')}, MKL_CBWR {math.get('mkl_cbwr')}"
        result = "; ".join(c.differences()) or "identical"
        step, score = c.retrained.meta.timesteps, c.retrained.meta.score_ratio
        table.add_row(str(c.seed), f"{step:,}", f"{score:.5f}", where, result)
    Console().print(table)
    if any(c.differences() for c in comparisons):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
