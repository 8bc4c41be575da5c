"""``adbot quickstart`` as a first-time user breaks it: one line on stderr naming the problem
and what to change, exit code 1 (130 for Ctrl-C), no traceback, no half-written report."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from adbot.cli.quickstart import CANCELLED
from adbot.market.scenario import BUNDLED_DIR
from cli_helpers import RunCli
from process_helpers import alive, spawned_children, wait_gone

ADBOT = str(Path(sys.executable).parent / "adbot")
ONE_SCENARIO = [BUNDLED_DIR / "tight-budget.yaml"]
QUICK = ["quickstart", "-p", "fixed", "-p", "oracle", "-n", "1", "--workers", "1"]


@pytest.fixture
def place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A scratch working directory whose data dir is ``./data`` (the default), with one
    bundled scenario instead of nine, so an in-process run takes a second or two. The
    command's SIGTERM handler is undone."""
    monkeypatch.chdir(tmp_path)
    for name in [k for k in os.environ if k.startswith("ADBOT_")]:
        monkeypatch.delenv(name)
    monkeypatch.setattr("adbot.services.quickstart.bundled_scenarios", lambda: ONE_SCENARIO)
    monkeypatch.setattr("adbot.cli.quickstart.bundled_scenarios", lambda: ONE_SCENARIO)
    sigterm = signal.getsignal(signal.SIGTERM)
    try:
        yield tmp_path
    finally:
        signal.signal(signal.SIGTERM, sigterm)


def _one_error_line(err: str) -> str:
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err.strip()


@pytest.mark.parametrize(
    ("data_dir", "out", "hint"),
    [
        ("afile", None, "--out or ADBOT_DATA_DIR"),
        ("afile/data", None, "--out or ADBOT_DATA_DIR"),
        (None, "afile", "--out"),
    ],
)
def test_a_report_folder_that_cannot_be_made_names_the_setting(
    data_dir: str | None,
    out: str | None,
    hint: str,
    place: Path,
    monkeypatch: pytest.MonkeyPatch,
    run_cli: RunCli,
) -> None:
    """Used to name the folder only; where it comes from (``--out`` or the data dir) is the
    thing to change."""
    (place / "afile").write_text("")
    if data_dir:
        monkeypatch.setenv("ADBOT_DATA_DIR", str(place / data_dir))
    result = run_cli([*QUICK, *(["--out", str(place / out)] if out else [])])
    assert result.code == 1 and result.out == ""
    error = _one_error_line(result.err)
    assert error.startswith("error: cannot write the report in ")
    assert error.endswith(f"(choose another folder with {hint})")


def test_an_empty_out_is_refused_and_writes_nothing(place: Path, run_cli: RunCli) -> None:
    """``--out ''`` was the working folder (Typer makes "" the path "."), the report written
    there without a word."""
    result = run_cli([*QUICK, "--out", ""])
    assert result.code == 1 and result.out == ""
    assert _one_error_line(result.err) == (
        "error: --out is empty: name a folder for the report, or leave it out"
    )
    assert list(place.iterdir()) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes in a read-only folder anyway")
def test_a_read_only_data_dir_names_the_setting(place: Path, run_cli: RunCli) -> None:
    (place / "data").mkdir(mode=0o500)
    result = run_cli(QUICK)
    assert result.code == 1
    error = _one_error_line(result.err)
    assert "Permission denied" in error and "ADBOT_DATA_DIR" in error


def test_a_folder_the_user_may_not_write_names_the_setting(
    place: Path, monkeypatch: pytest.MonkeyPatch, run_cli: RunCli
) -> None:
    """The test above as it runs everywhere: as root (CI) a read-only folder takes files
    anyway, so creating the page's file fails here as it does for a user without permission."""
    import adbot.files

    def denied(*args: Any, dir: str, **kwargs: Any) -> tuple[int, str]:
        raise PermissionError(errno.EACCES, "Permission denied", dir)

    monkeypatch.setattr(adbot.files.tempfile, "mkstemp", denied)
    result = run_cli(QUICK)
    assert result.code == 1
    error = _one_error_line(result.err)
    assert "Permission denied" in error and error.endswith("--out or ADBOT_DATA_DIR)")
    assert list((place / "data" / "reports").iterdir()) == []


def test_a_full_disk_leaves_nothing_and_names_the_setting(
    place: Path, monkeypatch: pytest.MonkeyPatch, run_cli: RunCli
) -> None:
    """The page written half, then ENOSPC (a tmpfs needs root to mount, so the write is
    patched): nothing is left in the folder, the half page included."""
    write_text = Path.write_text

    def half_then_full(self: Path, data: str, *args: Any, **kwargs: Any) -> int:
        write_text(self, data[: len(data) // 2], *args, **kwargs)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_text", half_then_full)
    result = run_cli(QUICK)
    assert result.code == 1
    error = _one_error_line(result.err)
    assert "No space left on device" in error and error.endswith("--out or ADBOT_DATA_DIR)")
    assert list((place / "data" / "reports").iterdir()) == []


def test_ctrl_c_while_the_page_is_written_is_one_line_and_leaves_nothing(
    place: Path, monkeypatch: pytest.MonkeyPatch, run_cli: RunCli
) -> None:
    """Typer ended the command with 130 and nothing on stderr."""
    write_text = Path.write_text

    def half_then_interrupted(self: Path, data: str, *args: Any, **kwargs: Any) -> int:
        write_text(self, data[: len(data) // 2], *args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(Path, "write_text", half_then_interrupted)
    result = run_cli(QUICK)
    assert result.code == 130
    assert result.err == f"{CANCELLED}\n" and result.out == ""
    assert list((place / "data" / "reports").iterdir()) == []


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://adbot@127.0.0.1:1/adbot",
        "sqlite:///never-migrated.db",
    ],
    ids=["unreachable", "not-migrated"],
)
def test_quickstart_needs_no_database(
    url: str, place: Path, monkeypatch: pytest.MonkeyPatch, run_cli: RunCli
) -> None:
    """It evaluates policies on scenario files; the database setting is not used."""
    monkeypatch.setenv("ADBOT_DB__URL", url)
    result = run_cli(QUICK)
    assert result.code == 0, result.err
    assert len(list((place / "data" / "reports").glob("quickstart-*.html"))) == 1
    assert not (place / "never-migrated.db").exists()


def test_an_invalid_database_url_is_one_line_naming_it(
    place: Path, monkeypatch: pytest.MonkeyPatch, run_cli: RunCli
) -> None:
    monkeypatch.setenv("ADBOT_DB__URL", "nonsense")
    result = run_cli(QUICK)
    assert result.code == 1
    assert result.err == "error: ADBOT_DB__URL: not a database URL\n"
    assert list(place.iterdir()) == []


# --- the real command in its own process: signals, two at once, a worker killed ----------

SLOW_RUN = ["-p", "fixed", "-p", "pid", "-p", "oracle", "-n", "2", "--workers", "2"]


@pytest.fixture
def started(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], list[int]]]:
    """``adbot quickstart`` in its own session (as a terminal's foreground job), once its two
    workers are evaluating; killed at the end if the test left it running."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADBOT_")}
    process = subprocess.Popen(
        [ADBOT, "quickstart", *SLOW_RUN],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 60
        while len(workers := spawned_children(process.pid)) < 2:
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the workers did not start in 60 s"
            time.sleep(0.1)
        time.sleep(2.0)  # past the workers' imports: evaluating
        yield process, workers
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        for pid in workers:  # first: orphans hold the output pipes open
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        process.communicate(timeout=30)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("signum", "group"),
    [(signal.SIGINT, True), (signal.SIGINT, False), (signal.SIGTERM, False)],
    ids=["terminal-ctrl-c", "sigint-to-adbot", "sigterm-to-adbot"],
)
def test_ctrl_c_mid_run_is_130_one_line_no_report_no_workers_left(
    signum: int, group: bool, started: tuple[subprocess.Popen[str], list[int]], tmp_path: Path
) -> None:
    """Before: a terminal's Ctrl-C (the whole process group) printed a traceback from each
    worker; to adbot alone it waited for every scenario to be evaluated; both ended with
    130 and no word. A SIGTERM (``kill``, ``timeout``) left the workers waiting for good
    and the page's ``.part`` behind."""
    process, workers = started
    if group:
        os.killpg(process.pid, signum)
    else:
        process.send_signal(signum)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 130
    assert err == f"{CANCELLED}\n" and out == ""
    wait_gone(workers, 10, "workers outlived the cancelled quickstart")
    assert list((tmp_path / "data" / "reports").iterdir()) == []


@pytest.mark.slow
def test_the_workers_of_a_killed_quickstart_stop_too(
    started: tuple[subprocess.Popen[str], list[int]], tmp_path: Path
) -> None:
    """``kill -9`` (the OOM killer): its workers waited for work for good. Only the
    ``.part`` it was to write is left, never a page under a report's name."""
    process, workers = started
    process.kill()
    process.wait(timeout=30)
    wait_gone(workers, 10, "workers outlived their killed parent")
    assert list((tmp_path / "data" / "reports").glob("*.html")) == []


@pytest.mark.slow
def test_a_killed_worker_is_one_line_and_no_report(
    started: tuple[subprocess.Popen[str], list[int]], tmp_path: Path
) -> None:
    """A worker killed from outside (the OOM killer): was BrokenProcessPool's traceback."""
    process, workers = started
    os.kill(workers[0], signal.SIGKILL)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 1 and out == ""
    error = _one_error_line(err)
    assert error.startswith("error: an evaluation process was stopped from outside")
    wait_gone(workers, 10, "the other worker outlived the failed quickstart")
    assert list((tmp_path / "data" / "reports").iterdir()) == []


@pytest.mark.slow
def test_two_quickstarts_at_once_in_one_folder_both_write_a_whole_report(
    tmp_path: Path,
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADBOT_")}
    argv = [ADBOT, "quickstart", "-p", "fixed", "-p", "oracle", "-n", "1", "--workers", "1"]
    runs = [
        subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=300)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0]
    told = {Path(out.split("report: ", 1)[1].split(" (", 1)[0]) for out in outputs}
    written = set((tmp_path / "data" / "reports").iterdir())
    assert len(told) == 2 and {p.resolve() for p in written} == told
    for report in written:
        assert report.read_text().rstrip().endswith("</html>")
    assert outputs[0].split("report: ")[0] == outputs[1].split("report: ")[0]  # same table
