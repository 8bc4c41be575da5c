"""``adbot train`` and ``adbot tune``: train a PPO bidding agent, search its hyperparameters."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from adbot.cli._console import err, out, print_table
from adbot.cli._options import check_range
from adbot.cli._signals import interrupt_on_sigterm
from adbot.config import get_settings
from adbot.db.migrate import require_current_schema
from adbot.db.session import get_sessionmaker
from adbot.rl.config import (
    DEFAULT_CONFIG,
    SEED_MAX,
    TIMESTEPS_MAX,
    TRAINED_AGENTS,
    TrainingConfig,
    load_training_config,
)

CONFIG_OPTION = typer.Option(
    DEFAULT_CONFIG,
    "--config",
    "-c",
    help="Training config (YAML); by default the one ppo:default was trained from.",
    show_default="configs/agents/default.yaml",
)


def default_output(data_dir: Path, config: TrainingConfig) -> Path:
    """``<data_dir>/agents/<name>``, with ``-seed<N>`` for a seed other than 0: the members
    of an ensemble (``--seed 1``, ``--seed 2``) each get their own run directory."""
    suffix = f"-seed{config.seed}" if config.seed else ""
    return data_dir / TRAINED_AGENTS / f"{config.name}{suffix}"


def _training_config(path: Path, total_timesteps: int | None, seed: int | None) -> TrainingConfig:
    check_range("--timesteps", total_timesteps, 1, TIMESTEPS_MAX)
    check_range("--seed", seed, 0, SEED_MAX)
    training_config = load_training_config(path)
    if total_timesteps is not None:
        training_config = training_config.with_overrides(total_timesteps=total_timesteps)
    if seed is not None:
        training_config = training_config.with_overrides(seed=seed)
    return training_config


def train_command(
    config: Path = CONFIG_OPTION,
    resume: Path | None = typer.Option(
        None, "--resume", help="Checkpoint directory to continue from."
    ),
    output: Path | None = typer.Option(
        None,
        "--output",
        "-o",
        help="Run directory, new unless --resume continues a run in it "
        "(default: <data_dir>/agents/<name>, <name>-seed<N> for a seed other than 0).",
    ),
    account: str | None = typer.Option(
        None, "--account", help="Account slug that owns the agent (default: the only one)."
    ),
    total_timesteps: int | None = typer.Option(
        None, "--timesteps", help="Override the config's total_timesteps (1 to 2**53)."
    ),
    seed: int | None = typer.Option(
        None,
        "--seed",
        help=f"Override the config's seed (an ensemble's other members; 0 to {SEED_MAX}).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Train a PPO agent on the simulated market; every run is recorded in the database."""
    try:  # a stop before the run is recorded, from the first line: the import takes seconds
        from adbot.rl.train import latest_checkpoint, resume_hint
        from adbot.services.training import RunCancelled, train_agent, training_account

        training_config = _training_config(config, total_timesteps, seed)
        settings = get_settings()
        require_current_schema()
        output_dir = output or default_output(settings.data_dir, training_config)
        interrupt_on_sigterm()
        with get_sessionmaker()() as session:
            owner = training_account(session=session, slug=account)
            try:
                record = train_agent(
                    session=session,
                    account_id=owner.id,
                    config=training_config,
                    output_dir=output_dir,
                    resume=resume,
                    settings=settings,
                    console=err,
                )
            except RunCancelled:
                message = "training cancelled; the run is recorded as cancelled"
                # What it continues from, as a failure's message says: the last checkpoint
                # written, else (a resumed run stopped before its first) the resumed one.
                latest = latest_checkpoint(output_dir) or resume
                if latest is not None:
                    message += f"; {resume_hint(latest)}"
                err.print(message, highlight=False, soft_wrap=True)
                raise typer.Exit(130) from None
    except KeyboardInterrupt:  # during the imports, the checks or the run's recording
        err.print("training cancelled before the run started; no run was recorded", highlight=False)
        raise typer.Exit(130) from None
    result = record.result
    summary = {
        "agent": record.agent.name,
        "training_run_id": record.run.id,
        "mlflow_run_id": result.mlflow_run_id,
        "timesteps": result.timesteps,
        "best_score_ratio": result.best_score_ratio,
        "best_checkpoint": str(result.best_checkpoint),
        "final_checkpoint": str(result.final_checkpoint),
        "wall_seconds": round(result.wall_seconds, 1),
    }
    if as_json:
        out.print_json(json.dumps(summary))
        return
    table = Table(title="training run")
    table.add_column("field")
    table.add_column("value")
    for key, value in summary.items():
        table.add_row(key, str(value))
    print_table(table)
    out.print(f"evaluate it: adbot evaluate SCENARIO --policy ppo:{result.best_checkpoint}")


def tune_command(
    config: Path = CONFIG_OPTION,
    trials: int = typer.Option(20, "--trials", help="Trials to run now (>= 1)."),
    timesteps: int = typer.Option(
        100_000, "--timesteps", help="Training timesteps per trial (1 to 2**53)."
    ),
    study: str | None = typer.Option(
        None, "--study", help="Study name (default: tune-<config name>); reused if it exists."
    ),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Trial directory (default: <data_dir>/tune/<study>)."
    ),
) -> None:
    """Search PPO hyperparameters with Optuna (study stored in the configured database)."""
    try:  # a stop before the search starts, from the first line: the import takes seconds
        from adbot.rl.tune import check_study_name, tune

        check_range("--trials", trials, 1)
        check_range("--timesteps", timesteps, 1, TIMESTEPS_MAX)
        if study is not None:
            check_study_name(study)
        base = load_training_config(config)
        settings = get_settings()
        name = study or f"tune-{base.name}"
        err.print(f"study '{name}': {trials} trials of {timesteps} timesteps", highlight=False)
        interrupt_on_sigterm()
    except KeyboardInterrupt:
        err.print("search cancelled before it started; nothing was recorded", highlight=False)
        raise typer.Exit(130) from None
    try:
        result = tune(
            base,
            storage_url=settings.db.url,
            study_name=name,
            n_trials=trials,
            timesteps=timesteps,
            output_dir=output or settings.data_dir / "tune" / name,
            settings=settings,
        )
    except KeyboardInterrupt:
        err.print(f"search cancelled; study '{name}' keeps its finished trials", highlight=False)
        raise typer.Exit(130) from None
    table = Table(
        title=f"study {result.study_name}: best of {result.trials} trials is trial "
        f"{result.best_trial}"
    )
    table.add_column("parameter")
    table.add_column("best trial's value")
    for key, value in result.best_params.items():
        table.add_row(key, str(value))
    print_table(table)
    out.print(
        f"trial {result.best_trial}: mean score_ratio {result.best_value:.4f} over the "
        f"evaluations of its run's second half; its best checkpoint: {result.best_checkpoint} "
        f"(evaluate it as ppo:{result.best_checkpoint})",
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    app.command("train")(train_command)
    app.command("tune")(tune_command)
