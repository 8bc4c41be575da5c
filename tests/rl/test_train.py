"""A tiny PPO run end to end: checkpoints, MLflow, resume, and the run's records (the
training service: bad input records nothing; a failed run leaves a ready agent ready)."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import gymnasium as gym
import mlflow
import numpy as np
import pytest
from rich.console import Console
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

from adbot.bidding import make_policy
from adbot.bidding.calibration import CalibratedPolicy
from adbot.bidding.runner import run_episode
from adbot.config import Settings
from adbot.db.models import (
    Agent,
    AgentConfig,
    AgentStatus,
    ModelCheckpoint,
    TrainingRun,
    TrainingStatus,
)
from adbot.errors import InvalidInput, ScenarioError
from adbot.market.scenario import Scenario
from adbot.rl.checkpoints import load_checkpoint, read_model_data, save_checkpoint
from adbot.rl.cpu_math import cpu_math
from adbot.rl.evaluation import evaluate_policy, evaluation_pairs
from adbot.rl.features import N_FEATURES, OBS_BOUND
from adbot.rl.policy import PpoPolicy
from adbot.rl.train import build_model, build_vec_env, train
from adbot.services.training import train_agent, training_account
from training_helpers import LONGER, TINY, diverging, set_score, train_recorded, tree

pytestmark = pytest.mark.slow


def test_train_writes_checkpoints_and_an_mlflow_run(tmp_path: Path, settings: Settings) -> None:
    result = train(TINY, output_dir=tmp_path / "run", settings=settings)
    assert result.timesteps == 256
    steps = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert steps == ["step-000000128", "step-000000256"]
    assert [h["timesteps"] for h in result.history] == [128.0, 256.0]
    assert min(h["eval/score_ratio"] for h in result.history) > 0
    final = load_checkpoint(result.final_checkpoint)
    assert final.config == TINY and final.meta.seed == 5 and final.meta.timesteps == 256
    assert load_checkpoint(result.best_checkpoint).meta.score_ratio == result.best_score_ratio
    assert final.meta.cpu_math == cpu_math()
    stats = json.loads((result.final_checkpoint / "normalization.json").read_text())
    assert len(stats["obs_mean"]) == final.model.observation_space.shape[0]  # type: ignore[index]

    client = mlflow.tracking.MlflowClient(settings.mlflow.tracking_uri)
    run = client.get_run(result.mlflow_run_id or "")
    assert run.data.params["ppo.n_steps"] == "64" and run.info.status == "FINISHED"
    assert {k: v for k, v in run.data.tags.items() if k.startswith("cpu_math.")} == {
        f"cpu_math.{key}": value for key, value in cpu_math().items()
    }
    history = client.get_metric_history(run.info.run_id, "eval/score_ratio")
    assert [m.step for m in history] == [128, 256]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "best")}
    assert "best/model.zip" in artifacts


def test_final_holds_the_last_update_when_an_evaluation_falls_on_the_last_step(
    tmp_path: Path, settings: Settings
) -> None:
    """TINY evaluates every 128 steps, its rollouts are 128 steps: the evaluation due at
    step 256, the last rollout's last step, came before that rollout's update, and
    ``final/`` was that copy (1 update of 2; a run of two rollouts kept its untrained
    weights). Now the final checkpoint evaluates after the last update."""
    result = train(TINY, output_dir=tmp_path / "run", settings=settings, track=False)
    rollouts = TINY.total_timesteps // (TINY.ppo.n_steps * TINY.n_envs)
    assert rollouts == 2 and TINY.evaluation.every_timesteps == 128
    data = read_model_data(result.final_checkpoint / "model.zip")
    assert data["_n_updates"] == rollouts * TINY.ppo.n_epochs
    steps = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert steps == ["step-000000128", "step-000000256"]


def test_resume_continues_from_a_checkpoint(tmp_path: Path, settings: Settings) -> None:
    first = train(TINY, output_dir=tmp_path / "a", settings=settings, track=False)
    longer = TINY.with_overrides(total_timesteps=384)
    resumed = train(
        longer,
        output_dir=tmp_path / "b",
        resume=first.final_checkpoint,
        settings=settings,
        track=False,
    )
    assert resumed.timesteps == 384
    assert [h["timesteps"] for h in resumed.history] == [384.0]
    with pytest.raises(InvalidInput, match="nothing to train"):
        train(TINY, output_dir=tmp_path / "c", resume=first.final_checkpoint, settings=settings)
    other = longer.with_overrides(env={"action_log_range": 0.5})
    with pytest.raises(InvalidInput, match="another env"):
        train(other, output_dir=tmp_path / "d", resume=first.final_checkpoint, settings=settings)
    raw = longer.with_overrides(normalize_observations=False)
    with pytest.raises(InvalidInput, match="another env, reward, network or normalisation"):
        train(raw, output_dir=tmp_path / "e", resume=first.final_checkpoint, settings=settings)


def test_a_resume_loads_the_checkpoints_model_once(
    tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The model check_run loaded (and checked against checkpoint.json) is the one that
    trains on: model.zip is not read a second time, unchecked. A resumed run may step
    more envs than its checkpoint did (the model is loaded for the run's count)."""
    first = train(TINY, output_dir=tmp_path / "a", settings=settings, track=False)
    loads: list[Path] = []
    load = PPO.load

    def counting_load(path: Path, *args: Any, **kwargs: Any) -> PPO:
        loads.append(Path(path))
        return load(path, *args, **kwargs)

    monkeypatch.setattr(PPO, "load", counting_load)
    for n_envs, output in ((2, "same"), (4, "more-envs")):
        loads.clear()
        longer = TINY.with_overrides(total_timesteps=512, n_envs=n_envs)
        resumed = train(
            longer,
            output_dir=tmp_path / output,
            resume=first.final_checkpoint,
            settings=settings,
            track=False,
        )
        assert resumed.timesteps == 512
        assert loads == [first.final_checkpoint / "model.zip"], n_envs


def test_checkpoint_with_a_changed_model_is_refused(tmp_path: Path, settings: Settings) -> None:
    result = train(TINY, output_dir=tmp_path / "run", settings=settings, track=False)
    model = result.final_checkpoint / "model.zip"
    model.write_bytes(model.read_bytes() + b"\0")
    with pytest.raises(InvalidInput, match="sha256"):
        load_checkpoint(result.final_checkpoint)


def test_a_checkpoint_whose_timesteps_are_not_its_models_is_refused(tmp_path: Path) -> None:
    """``checkpoint.json`` edited to another count loaded silently (the sha256 covers
    model.zip only); the model's own count is in its data."""
    venv = build_vec_env(TINY)
    directory = tmp_path / "checkpoint"
    save_checkpoint(
        directory, model=build_model(TINY, venv), vec_normalize=venv, config=TINY, score_ratio=None
    )
    venv.close()
    load_checkpoint(directory)
    meta = json.loads((directory / "checkpoint.json").read_text())
    (directory / "checkpoint.json").write_text(json.dumps({**meta, "timesteps": 512}))
    with pytest.raises(InvalidInput) as refused:
        load_checkpoint(directory)
    assert refused.value.message == (
        f"checkpoint {directory}: checkpoint.json says 512 timesteps, its model.zip was "
        "trained for 0"
    )


def test_checkpoint_plays_as_a_policy(
    tmp_path: Path, settings: Settings, cpa_scenario: Scenario
) -> None:
    """Loaded from its files, the best checkpoint plays its evaluation episodes to the
    score ratio training recorded for it (the model and normalisation statistics saved are
    those it was evaluated with), and plays any episode deterministically."""
    result = train(TINY, output_dir=tmp_path / "run", settings=settings, track=False)
    checkpoint = load_checkpoint(result.best_checkpoint)
    policy = PpoPolicy.from_checkpoint(checkpoint, name="tiny")
    replayed = evaluate_policy(policy, evaluation_pairs(TINY.evaluation))
    assert replayed.mean_score_ratio == checkpoint.meta.score_ratio == result.best_score_ratio
    first = run_episode(cpa_scenario, 2, policy)
    again = run_episode(cpa_scenario, 2, policy)
    assert first.metrics == again.metrics  # deterministic actions
    assert np.isfinite(first.alpha).all() and first.metrics.cost > 0


def test_an_agent_trained_on_calibrated_bids_plays_them(tmp_path: Path, settings: Settings) -> None:
    """With ``env.keyword_calibration`` the run evaluates its checkpoints bidding calibrated
    per keyword, and ``ppo:PATH`` of one plays that way: its recorded score ratio is what the
    calibrated policy replays, not what the same model scores on multiplier bids."""
    config = TINY.with_overrides(env={"keyword_calibration": 16.0})
    assert config.fingerprint() != TINY.fingerprint()
    result = train(config, output_dir=tmp_path / "run", settings=settings, track=False)
    policy = make_policy(f"ppo:{result.best_checkpoint}")
    assert isinstance(policy, CalibratedPolicy) and isinstance(policy.base, PpoPolicy)
    assert policy.prior_conversions == 16.0 and policy.name == f"ppo:{result.best_checkpoint}"
    pairs = evaluation_pairs(config.evaluation)
    assert evaluate_policy(policy, pairs).mean_score_ratio == result.best_score_ratio
    assert evaluate_policy(policy.base, pairs).mean_score_ratio != result.best_score_ratio


def test_training_service_records_the_run(
    tmp_path: Path, settings: Settings, sqlite_session: Session
) -> None:
    account = training_account(session=sqlite_session, slug=None)
    record = train_agent(
        session=sqlite_session,
        account_id=account.id,
        config=TINY,
        output_dir=tmp_path / "run",
        settings=settings,
    )
    run = sqlite_session.get(TrainingRun, record.run.id)
    assert run is not None and run.status == TrainingStatus.SUCCEEDED
    assert run.mlflow_run_id == record.result.mlflow_run_id and run.seed == 5
    agent = sqlite_session.scalar(select(Agent).where(Agent.id == run.agent_id))
    assert agent is not None and agent.name == "tiny" and agent.algorithm == "ppo"
    config_row = sqlite_session.get(AgentConfig, run.agent_config_id)
    assert config_row is not None and config_row.config_hash == TINY.digest()
    assert config_row.config["reward"] == {"components": {"score": 1.0}, "scale": "budget"}
    checkpoints = sqlite_session.scalars(
        select(ModelCheckpoint).where(ModelCheckpoint.training_run_id == run.id)
    ).all()
    assert [c.version for c in checkpoints] == [1, 2]
    assert [c.timesteps for c in checkpoints] == [128, 256]
    assert sum(c.is_active for c in checkpoints) == 1
    active = next(c for c in checkpoints if c.is_active)
    best = load_checkpoint(record.result.best_checkpoint).meta
    assert active.sha256 == best.model_sha256
    # A checkpoint's config fingerprint is the start of its config row's hash.
    assert config_row.config_hash.startswith(best.config_fingerprint)

    again = train_agent(
        session=sqlite_session,
        account_id=account.id,
        config=TINY,
        output_dir=tmp_path / "run2",
        settings=settings,
    )
    assert again.run.agent_config_id == run.agent_config_id  # same config, same version row
    versions = sqlite_session.scalars(
        select(ModelCheckpoint.version).where(ModelCheckpoint.agent_id == agent.id)
    ).all()
    assert sorted(versions) == [1, 2, 3, 4]


def test_failed_run_is_recorded(
    tmp_path: Path, settings: Settings, sqlite_session: Session
) -> None:
    first = train(TINY, output_dir=tmp_path / "a", settings=settings, track=False)
    # A resume with nothing left to train is bad input: refused before anything is recorded.
    with pytest.raises(InvalidInput, match="nothing to train"):
        train_recorded(
            sqlite_session, TINY, tmp_path / "b", settings, resume=first.final_checkpoint
        )
    assert sqlite_session.scalars(select(TrainingRun)).first() is None
    assert not (tmp_path / "b").exists()
    # A run that fails while training is recorded with its error.
    unstable = diverging(TINY)
    with pytest.raises(InvalidInput, match="training diverged"):
        train_recorded(sqlite_session, unstable, tmp_path / "c", settings)
    run = sqlite_session.scalars(select(TrainingRun).order_by(TrainingRun.id.desc())).first()
    assert run is not None and run.status == TrainingStatus.FAILED
    assert run.error is not None and "training diverged" in run.error


def test_same_config_same_agent(tmp_path: Path, settings: Settings) -> None:
    first = train(TINY, output_dir=tmp_path / "a", settings=settings, track=False)
    second = train(TINY, output_dir=tmp_path / "b", settings=settings, track=False)
    a = load_checkpoint(first.final_checkpoint).model.policy.state_dict()
    b = load_checkpoint(second.final_checkpoint).model.policy.state_dict()
    assert a.keys() == b.keys()
    assert all(bool((a[k] == b[k]).all()) for k in a)
    assert first.history == second.history


@pytest.mark.parametrize(
    "change",
    [{"env": {"scenario": "no-such-scenario"}}, {"evaluation": {"scenario_files": ("gone.yaml",)}}],
    ids=["env", "evaluation"],
)
def test_a_missing_scenario_file_is_named_before_the_workers_start(
    change: dict[str, object], tmp_path: Path, settings: Settings
) -> None:
    """With worker processes the env would fail inside one, as a worker's traceback."""
    config = TINY.with_overrides(vec_env="subproc", **change)
    with pytest.raises(ScenarioError, match=r"scenario file not found: (no-such-scenario|gone)"):
        train(config, output_dir=tmp_path / "out", settings=settings, track=False)
    assert not (tmp_path / "out").exists()  # nothing started


def test_a_run_directory_is_never_trained_over(tmp_path: Path, settings: Settings) -> None:
    """Another run into a directory holding one would replace its checkpoints (their
    database rows then pointing at other files) and its config: refused before writing."""
    out = tmp_path / "run"
    train(TINY, output_dir=out, settings=settings, track=False)
    before = tree(out)
    for config in (TINY, TINY.with_overrides(seed=6, env={"action_log_range": 0.5})):
        with pytest.raises(InvalidInput, match="already holds a run: give another --output, or"):
            train(config, output_dir=out, settings=settings, track=False)
    assert tree(out) == before


def test_a_checkpoint_or_a_place_in_a_run_is_never_an_output(
    tmp_path: Path, settings: Settings
) -> None:
    """A new run into ``final/`` replaced its config.yaml, and resuming it then failed; one
    in the run's ``checkpoints/`` or in a checkpoint nests a run in a run."""
    out = tmp_path / "run"
    train(TINY, output_dir=out, settings=settings, track=False)
    before = tree(out)
    other = TINY.with_overrides(seed=3)
    refused = {
        out / "final": f"output {out / 'final'} is a checkpoint, not a run directory: give",
        out / "best" / "x": f"output {out / 'best' / 'x'} is inside checkpoint {out / 'best'}:",
        out / "checkpoints" / "x": f"is inside the checkpoints of run {out}: give another",
    }
    for output, message in refused.items():
        with pytest.raises(InvalidInput, match=re.escape(message)):
            train(other, output_dir=output, settings=settings, track=False)
        with pytest.raises(InvalidInput, match=re.escape(message)):  # as a resume's output
            train(LONGER, output_dir=output, resume=out / "final", track=False)
    assert tree(out) == before
    load_checkpoint(out / "final")


def test_a_run_stopped_before_its_first_checkpoint_may_be_retried(
    tmp_path: Path, settings: Settings
) -> None:
    """Only its config.yaml is there (Ctrl-C in the first minutes): nothing to lose."""
    out = tmp_path / "run"
    out.mkdir()
    TINY.with_overrides(seed=6).save(out)
    result = train(TINY, output_dir=out, settings=settings, track=False)
    assert result.final_checkpoint.is_dir()


def test_resume_into_its_own_checkpoint_is_refused_before_writing(
    tmp_path: Path, settings: Settings
) -> None:
    """The env check reads the checkpoint's own config, not the one being written over it."""
    first = train(TINY, output_dir=tmp_path / "run", settings=settings, track=False)
    final = first.final_checkpoint
    before = tree(final)
    longer = TINY.with_overrides(total_timesteps=384)
    with pytest.raises(InvalidInput, match="another env"):
        train(longer.with_overrides(env={"action_log_range": 0.5}), output_dir=final, resume=final)
    with pytest.raises(InvalidInput, match="final is a checkpoint, not a run directory"):
        train(longer, output_dir=final, resume=final, settings=settings, track=False)
    assert tree(final) == before
    load_checkpoint(final)


def test_resume_of_an_ensemble_is_refused_before_writing(
    tmp_path: Path, settings: Settings
) -> None:
    """An ensemble directory (``ppo:default``'s layout) holds one member's checkpoint beside
    its ensemble.json: a resume took that one member and dropped the rest without a word."""
    first = train(TINY, output_dir=tmp_path / "run", settings=settings, track=False)
    (first.final_checkpoint / "ensemble.json").write_text(json.dumps({"members": ["."]}))
    longer = TINY.with_overrides(total_timesteps=384)
    with pytest.raises(InvalidInput, match=r"is an ensemble \(ensemble.json\)"):
        train(longer, output_dir=tmp_path / "next", resume=first.final_checkpoint, track=False)
    assert not (tmp_path / "next").exists()


@pytest.mark.parametrize(
    ("evaluation", "message"),
    [
        ({"min_conversions": 1e9}, r"0 of 1 random scenarios in 1000 draws can buy evaluation"
         r"\.min_conversions \(1e\+09\) at evaluation\.max_daily_queries \(1500\)"),
        ({"max_daily_queries": 1.0}, r"or raise evaluation\.max_daily_queries$"),
    ],
)  # fmt: skip
def test_an_evaluation_no_draw_can_fill_is_refused_before_anything_starts(
    tmp_path: Path, evaluation: dict[str, float], message: str
) -> None:
    """Settings under which no random draw has enough conversions to judge (more than any
    budget buys, or traffic capped to nothing) drew scenarios for ever after the run was
    recorded; now they are refused by name before it starts."""
    config = TINY.with_overrides(evaluation=evaluation)
    with pytest.raises(InvalidInput, match=message):
        train(config, output_dir=tmp_path / "run", track=False)
    assert not (tmp_path / "run").exists()


def test_resume_with_other_ppo_settings_is_refused_by_name(
    tmp_path: Path, settings: Settings
) -> None:
    """PPO.load keeps the checkpoint's settings: the config's would be recorded, not used."""
    first = train(TINY, output_dir=tmp_path / "a", settings=settings, track=False)
    other = TINY.with_overrides(total_timesteps=384, ppo={"learning_rate": 1e-3, "n_epochs": 2})
    with pytest.raises(InvalidInput, match=r"other PPO settings \(ppo.learning_rate, ppo.n_epochs"):
        train(other, output_dir=tmp_path / "b", resume=first.final_checkpoint, settings=settings)
    assert not (tmp_path / "b").exists()


class _OtherFeaturesEnv(gym.Env[np.ndarray, np.ndarray]):
    """The env of an AdBot with two features fewer: its spaces only, nothing is played."""

    observation_space = gym.spaces.Box(-OBS_BOUND, OBS_BOUND, (N_FEATURES - 2,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)


def _checkpoint_of_other_features(directory: Path) -> Path:
    """A valid checkpoint of TINY (same config, sha256, statistics) whose untrained model
    takes observations of another shape: an agent trained by an AdBot with other features."""
    venv = VecNormalize(DummyVecEnv([_OtherFeaturesEnv]))
    save_checkpoint(
        directory, model=build_model(TINY, venv), vec_normalize=venv, config=TINY, score_ratio=None
    )
    return directory


def test_resume_of_a_model_of_other_features_records_and_writes_nothing(
    tmp_path: Path, settings: Settings, sqlite_session: Session
) -> None:
    """check_run refuses it, in one line naming the checkpoint and both shapes, before the
    run directory is written or the run recorded (it used to fail in train(), once both
    were done: a failed run in the database, a config.yaml and best/ on disk)."""
    old = _checkpoint_of_other_features(tmp_path / "old")
    files = tree(old)
    before = _state(sqlite_session)
    with pytest.raises(InvalidInput) as refused:
        train_recorded(sqlite_session, TINY, tmp_path / "resumed", settings, resume=old)
    assert _state(sqlite_session) == before
    assert sorted(tmp_path.iterdir()) == [old] and tree(old) == files
    assert refused.value.message == (
        f"checkpoint {old}: its model takes observations of shape ({N_FEATURES - 2},), "
        f"this AdBot's features are of shape ({N_FEATURES},); retrain it with this version"
    )


def test_a_resumed_run_continues_in_its_directory_and_keeps_its_best(
    tmp_path: Path, settings: Settings
) -> None:
    out = tmp_path / "run"
    train(TINY, output_dir=out, settings=settings, track=False)
    set_score(out / "best", 5.0)  # better than any evaluation to come
    earlier = tree(out / "checkpoints")
    longer = TINY.with_overrides(total_timesteps=384)
    with pytest.raises(InvalidInput, match=r"has checkpoints after .*step-000000128 .*256"):
        train(longer, output_dir=out, resume=out / "checkpoints" / "step-000000128")
    resumed = train(longer, output_dir=out, resume=out / "final", settings=settings, track=False)
    assert resumed.best_score_ratio == 5.0
    assert json.loads((out / "best" / "checkpoint.json").read_text())["score_ratio"] == 5.0
    assert load_checkpoint(out / "final").meta.timesteps == 384
    steps = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert steps == ["step-000000128", "step-000000256", "step-000000384"]
    assert {k: v for k, v in tree(out / "checkpoints").items() if k in earlier} == earlier

    # Into a new directory: the resumed checkpoint's own score is the one to beat.
    set_score(out / "final", 7.0)
    elsewhere = train(
        TINY.with_overrides(total_timesteps=512),
        output_dir=tmp_path / "next",
        resume=out / "final",
        settings=settings,
        track=False,
    )
    assert elsewhere.best_score_ratio == 7.0
    assert load_checkpoint(elsewhere.best_checkpoint).meta.timesteps == 384


def test_a_diverging_run_stops_with_one_line(tmp_path: Path, settings: Settings) -> None:
    config = diverging(TINY)
    with pytest.raises(InvalidInput, match=r"training diverged at step \d+: the network's"):
        train(config, output_dir=tmp_path / "run", settings=settings, track=False)


@pytest.mark.parametrize("where", ["file", "under-file", "proc"])
def test_an_output_that_cannot_be_a_directory_is_one_line(
    where: str, tmp_path: Path, settings: Settings
) -> None:
    afile = tmp_path / "afile"
    afile.write_text("")
    output = {"file": afile, "under-file": afile / "run", "proc": Path("/proc/adbot-run")}[where]
    with pytest.raises(InvalidInput, match=f"output {output}"):
        train(TINY, output_dir=output, settings=settings, track=False)
    assert afile.read_text() == "" and sorted(tmp_path.iterdir()) == [afile]


def test_a_bad_scenario_file_is_named_with_its_config_field(
    tmp_path: Path, settings: Settings
) -> None:
    scenario = tmp_path / "bad.yaml"
    scenario.write_text("name: x\n")
    config = TINY.with_overrides(env={"scenario": str(scenario)})
    with pytest.raises(ScenarioError, match=rf"^training config env.scenario \({scenario}\): "):
        train(config, output_dir=tmp_path / "out", settings=settings, track=False)
    config = TINY.with_overrides(
        evaluation={"scenario_files": ("retail-tight-budget", str(scenario))}
    )
    with pytest.raises(ScenarioError, match=r"^training config evaluation.scenario_files\[1\] "):
        train(config, output_dir=tmp_path / "out", settings=settings, track=False)


def test_nothing_to_train_writes_nothing(tmp_path: Path, settings: Settings) -> None:
    first = train(TINY, output_dir=tmp_path / "a", settings=settings, track=False)
    with pytest.raises(InvalidInput, match="nothing to train"):
        train(TINY, output_dir=tmp_path / "b", resume=first.final_checkpoint, settings=settings)
    assert not (tmp_path / "b").exists()


def _state(session: Session) -> tuple[int, AgentStatus | None, int]:
    runs = session.scalar(select(func.count()).select_from(TrainingRun)) or 0
    agent = session.scalar(select(Agent).where(Agent.name == "tiny"))
    active = session.scalar(select(func.count()).where(ModelCheckpoint.is_active.is_(True)))
    return runs, None if agent is None else agent.status, active or 0


@pytest.mark.parametrize("bad", ["output-is-a-file", "output-holds-a-run", "bad-scenario"])
def test_bad_input_records_nothing(
    bad: str, tmp_path: Path, settings: Settings, sqlite_session: Session
) -> None:
    train_recorded(sqlite_session, TINY, tmp_path / "first", settings)
    before = _state(sqlite_session)
    assert before[1:] == (AgentStatus.READY, 1)
    afile = tmp_path / "afile"
    afile.write_text("")
    config, output, error, message = {
        "output-is-a-file": (TINY, afile, InvalidInput, f"output {afile}"),
        "output-holds-a-run": (TINY, tmp_path / "first", InvalidInput, "already holds a run"),
        "bad-scenario": (
            TINY.with_overrides(env={"scenario": "no-such"}),
            tmp_path / "x",
            ScenarioError,
            "scenario file not found: no-such",
        ),
    }[bad]
    with pytest.raises(error, match=message):
        train_recorded(sqlite_session, config, output, settings)
    assert _state(sqlite_session) == before


def test_a_failed_run_leaves_an_agent_with_a_model_ready(
    tmp_path: Path, settings: Settings, sqlite_session: Session
) -> None:
    train_recorded(sqlite_session, TINY, tmp_path / "first", settings)
    runs, _, _ = _state(sqlite_session)
    unstable = diverging(TINY)
    with pytest.raises(InvalidInput, match="training diverged"):
        train_recorded(sqlite_session, unstable, tmp_path / "second", settings)
    assert _state(sqlite_session) == (runs + 1, AgentStatus.READY, 1)
    last = sqlite_session.scalars(select(TrainingRun).order_by(TrainingRun.id.desc())).first()
    assert last is not None and last.status == TrainingStatus.FAILED


def test_a_failed_first_run_leaves_a_draft(
    tmp_path: Path, settings: Settings, sqlite_session: Session
) -> None:
    unstable = diverging(TINY)
    with pytest.raises(InvalidInput, match="training diverged"):
        train_recorded(sqlite_session, unstable, tmp_path / "run", settings)
    assert _state(sqlite_session)[1:] == (AgentStatus.DRAFT, 0)


@pytest.mark.parametrize("pinned", [True, False])
def test_a_run_on_unpinned_cpu_math_says_what_it_reproduces_on(
    tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch, pinned: bool
) -> None:
    import adbot.rl.train as train_module

    math = {**cpu_math(), "pinned": str(pinned), "mkl_cbwr": "COMPATIBLE" if pinned else "unset"}
    monkeypatch.setattr(train_module, "cpu_math", lambda: math)
    out = io.StringIO()
    console = Console(file=out, width=300)
    train(TINY, output_dir=tmp_path / "run", settings=settings, track=False, console=console)
    note = "reproduces only on the same kind of CPU"
    assert (note in out.getvalue()) is not pinned
    if not pinned:
        assert "MKL_CBWR=unset" in out.getvalue()
        assert "set MKL_CBWR=COMPATIBLE ATEN_CPU_CAPABILITY=default" in out.getvalue()
