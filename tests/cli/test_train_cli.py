"""``adbot train`` and ``adbot tune`` as commands: default run directories, Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import adbot.rl.tune
from adbot.cli.main import CANCELLED_STARTING, main
from adbot.cli.train import default_output
from adbot.config import load_settings
from adbot.errors import InvalidInput
from adbot.rl.config import TrainingConfig
from cli_helpers import DEFAULT_CONFIG, RunCli


def test_each_seed_of_an_agent_trains_into_its_own_directory(tmp_path: Path) -> None:
    """The README's recipe trains seeds 0, 1 and 2 of one config; with one directory for
    all, the second would be refused (a run is never trained over)."""
    config = TrainingConfig(name="default")
    assert default_output(tmp_path, config) == tmp_path / "agents" / "default"
    for seed in (1, 2):
        expected = tmp_path / "agents" / f"default-seed{seed}"
        assert default_output(tmp_path, config.with_overrides(seed=seed)) == expected


def test_ctrl_c_during_a_search_is_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(adbot.rl.tune, "tune", interrupted)
    monkeypatch.setenv("ADBOT_DATA_DIR", str(tmp_path))
    sigterm = signal.getsignal(signal.SIGTERM)  # the command turns SIGTERM into Ctrl-C
    try:
        with pytest.raises(SystemExit) as exit_info:
            main(["tune", "--config", str(DEFAULT_CONFIG), "--study", "s", "--trials", "1"])
    finally:
        signal.signal(signal.SIGTERM, sigterm)
    assert exit_info.value.code == 130
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[-1] == "search cancelled; study 's' keeps its finished trials"
    assert not any("Traceback" in line for line in lines) and len(lines) == 2


def test_a_run_refused_by_its_checks_prints_only_the_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, run_cli: RunCli
) -> None:
    """The "training NAME into DIR" line comes once the checks passed: a refused run's
    stderr is the one error line."""
    monkeypatch.setenv("ADBOT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("ADBOT_DB__URL", f"sqlite:///{tmp_path / 'adbot.db'}")
    output = tmp_path / "run"
    (output / "best").mkdir(parents=True)
    assert not run_cli(["db", "upgrade"]).code
    result = run_cli(["train", "--config", str(DEFAULT_CONFIG), "--output", str(output)])
    assert result.code != 0
    lines = result.err_lines
    assert len(lines) == 1 and lines[0].startswith("error:"), lines
    assert "already holds a run" in lines[0]
    assert sorted(path.name for path in output.iterdir()) == ["best"]


@pytest.mark.parametrize("command", ["train", "tune"])
def test_a_config_seed_numpy_refuses_is_one_line_naming_it(
    command: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, run_cli: RunCli
) -> None:
    """``seed: 4294967296`` in the file passed every check, the run was recorded, then NumPy's
    seeding failed in a traceback; now the config is refused before the database is
    touched, like ``--seed 4294967296``."""
    config = tmp_path / "big-seed.yaml"
    config.write_text("name: big-seed\nseed: 4294967296\n")
    data = tmp_path / "data"
    monkeypatch.setenv("ADBOT_DATA_DIR", str(data))
    monkeypatch.setenv("ADBOT_DB__URL", f"sqlite:///{data / 'never-migrated.db'}")
    result = run_cli([command, "--config", str(config)])
    assert result.code == 1
    assert result.err == (
        f"error: training config {config}: seed: Input should be less than or equal to 4294967295\n"
    )
    assert not data.exists()


@pytest.mark.parametrize("command", ["train", "tune"])
@pytest.mark.parametrize(
    ("text", "error"),
    [
        pytest.param(
            "evaluation: {random_scenarios: 0, scenario_files: []}\n",
            "evaluation: needs at least one scenario: random_scenarios >= 1 or scenario_files",
            id="no-evaluation-scenario",
        ),
        pytest.param(
            "evaluation: {every_timesteps: true}\n",
            "evaluation.every_timesteps: Input should be a valid integer",
            id="bool-for-a-number",
        ),
        pytest.param(
            'n_envs: "2"\n', "n_envs: Input should be a valid integer", id="string-for-a-number"
        ),
        # Each of these was recorded as a run, then failed in a traceback (SQLite's
        # OverflowError left an agent_configs row; the seed was named "episode seed").
        pytest.param(
            "total_timesteps: 100000000000000000000000\n",
            "total_timesteps: Input should be less than or equal to 9007199254740992",
            id="timesteps-past-int64",
        ),
        pytest.param(
            "evaluation: {seed: 99999999999999999999}\n",
            "evaluation.seed: Input should be less than or equal to 9223372036854775807",
            id="evaluation-seed-past-int64",
        ),
        pytest.param(
            "torch_threads: 100000000000\n",
            "torch_threads: Input should be less than or equal to 1024",
            id="torch-threads",
        ),
    ],
)
def test_a_config_refused_by_name_records_nothing(
    command: str,
    text: str,
    error: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    run_cli: RunCli,
) -> None:
    """With no evaluation scenario a run trained, scored every checkpoint 0.0, made one its
    agent's active model and ranked trials by it; ``every_timesteps: true`` evaluated every
    step, ``n_envs: "2"`` was taken for 2. Each is one line now, before the database."""
    config = tmp_path / "config.yaml"
    config.write_text(f"name: refused\n{text}")
    data = tmp_path / "data"
    monkeypatch.setenv("ADBOT_DATA_DIR", str(data))
    monkeypatch.setenv("ADBOT_DB__URL", f"sqlite:///{data / 'never-migrated.db'}")
    result = run_cli([command, "--config", str(config)])
    assert (result.code, result.err) == (1, f"error: training config {config}: {error}\n")
    assert not data.exists()


STUDY_NAME_ERROR = (
    "a study name is lower-case letters, digits, '-' and '_', starting with a letter or digit"
)


@pytest.mark.parametrize("name", ["../../evil", "a/b", "/abs", "Upper", "-dash", ""])
def test_a_study_name_that_is_not_a_name_is_refused_before_anything(
    name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, run_cli: RunCli
) -> None:
    """``--study ../../evil`` wrote its trials to ``<data_dir>/tune/../../evil``, ``a/b``
    into nested folders. A study name follows a config name's rule, checked before the
    database or any directory is touched."""
    data = tmp_path / "data"
    monkeypatch.setenv("ADBOT_DATA_DIR", str(data))
    monkeypatch.setenv("ADBOT_DB__URL", f"sqlite:///{data / 'never-migrated.db'}")
    argv = ["tune", "--config", str(DEFAULT_CONFIG), "--trials", "1", "--timesteps", "64"]
    result = run_cli([*argv, "--study", name])
    assert (result.code, result.err) == (1, f"error: --study {name!r}: {STUDY_NAME_ERROR}\n")
    assert list(tmp_path.iterdir()) == []


def test_tune_itself_refuses_a_study_name_that_is_not_a_name(tmp_path: Path) -> None:
    """The check is the search's own, not only the command's."""
    with pytest.raises(InvalidInput, match=re.escape(f"--study '../x': {STUDY_NAME_ERROR}")):
        adbot.rl.tune.tune(
            TrainingConfig(),
            storage_url=f"sqlite:///{tmp_path / 'adbot.db'}",
            study_name="../x",
            n_trials=1,
            timesteps=64,
            output_dir=tmp_path / "tune" / "../x",
            settings=load_settings(
                data_dir=tmp_path, mlflow={"tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}"}
            ),
        )
    assert list(tmp_path.iterdir()) == []


ADBOT = Path(sys.executable).with_name("adbot")  # the console script, as installed

# The console script run with a Ctrl-C, a real SIGINT, as the process first imports MODULE.
CTRL_C_AT_IMPORT = """
import os, runpy, signal, sys

class CtrlC:
    def find_spec(self, name, path=None, target=None):
        if name == {module!r}:
            sys.meta_path.remove(self)
            os.kill(os.getpid(), signal.SIGINT)
        return None

sys.meta_path.insert(0, CtrlC())
sys.argv = [{script!r}, *{argv!r}]
runpy.run_path({script!r}, run_name="__main__")
"""


@pytest.mark.parametrize(
    ("argv", "module", "line"),
    [
        (["train"], "typer", CANCELLED_STARTING),
        (["tune"], "typer", CANCELLED_STARTING),
        (
            ["train"],
            "adbot.services.training",
            "training cancelled before the run started; no run was recorded",
        ),
        (["tune"], "adbot.rl.tune", "search cancelled before it started; nothing was recorded"),
    ],
)
def test_ctrl_c_while_the_command_starts_is_one_line(
    argv: list[str], module: str, line: str, tmp_path: Path
) -> None:
    """In the two seconds of imports before ``main`` runs, a traceback and the signal's exit
    (-2); in the command's own imports (torch), Typer's exit 130 and not a word."""
    argv = [*argv, "--config", str(DEFAULT_CONFIG)]
    code = CTRL_C_AT_IMPORT.format(module=module, script=str(ADBOT), argv=argv)
    env = {"ADBOT_DATA_DIR": str(tmp_path), "ADBOT_DB__URL": f"sqlite:///{tmp_path / 'a.db'}"}
    done = subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True, text=True
    )
    assert (done.returncode, done.stderr.splitlines()) == (130, [line]), done.stderr
    assert list(tmp_path.iterdir()) == []
