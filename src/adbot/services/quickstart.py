"""AdBot's main job on the embedded defaults: policies against the oracle, as a table and a page.

``run_quickstart`` evaluates every policy (by default the shipped agent ``ppo:default`` and
the baselines) on the bundled scenarios with MARKET.md's ``evaluate`` contract, plays one
traced episode of each policy on a featured scenario for the charts, and writes an HTML
report. Scenarios are evaluated in parallel processes; each evaluation is the same function
``adbot evaluate`` runs, so the figures agree with it episode by episode.

The page is written beside its final name (``.html.part``) and moved there whole: a run
stopped half way (Ctrl-C, a full disk, ``kill -9``) never leaves a page to be mistaken for a
report. A Ctrl-C stops the worker processes at once; they never see it themselves (a
terminal's Ctrl-C goes to the whole process group, and each printed its traceback).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from adbot.bidding.evaluate import check_episodes, evaluate
from adbot.bidding.registry import load_policy_plugins, make_policy
from adbot.bidding.runner import EpisodeResult, run_episode
from adbot.errors import AdbotError, InvalidInput
from adbot.files import new_part_file
from adbot.market.scenario import Scenario, bundled_scenarios, load_scenario
from adbot.processes import on_parent_exit
from adbot.services.policy_report import write_policy_report

DEFAULT_POLICIES = ("ppo:default", "fixed", "pid", "onlinelp", "oracle")
DEFAULT_TRACE_SCENARIO = "tight-cpa"

Progress = Callable[[str], None]


class ReportNotWritten(InvalidInput):
    """The report folder cannot be made or written (not a folder, read-only, full); the
    message names the folder or file and the system's reason."""


@dataclass(frozen=True)
class QuickstartResult:
    """Evaluation reports (one per scenario, MARKET.md's JSON shape) and the report's path."""

    reports: list[dict[str, Any]]
    traces: list[EpisodeResult]
    trace_scenario: Scenario
    report_path: Path
    seconds: float
    policies: list[str] = field(default_factory=list)

    def ratio_table(self) -> dict[str, dict[str, float | None]]:
        """scenario -> policy -> mean score_ratio."""
        return {
            report["scenario"]: {row["policy"]: row["score_ratio"] for row in report["results"]}
            for report in self.reports
        }


def _init_worker() -> None:
    # A parent killed outright (SIGTERM, kill -9) cannot stop its pool: its workers, holding
    # the task queue's both ends, waited for work for good.
    on_parent_exit(lambda: os._exit(1))
    # One thread per process: the pool already uses every core.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    load_policy_plugins()
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # the baselines need no torch
        pass


def _evaluate_file(path: str, policies: list[str], episodes: int, seed: int) -> dict[str, Any]:
    return evaluate(load_scenario(path), policies, episodes=episodes, seed=seed)


def _check_policies(policies: Sequence[str]) -> list[str]:
    specs = list(dict.fromkeys(p.strip() for p in policies if p.strip()))
    if not specs:
        raise InvalidInput("give at least one policy")
    load_policy_plugins()
    for spec in specs:
        make_policy(spec)  # an unknown or missing agent fails before any work starts
    return specs


def _check_workers(workers: int | None) -> None:
    """``None``: one process per core. 0 would quietly mean that too, and a negative
    number one process, so both are refused."""
    if workers is not None and workers < 1:
        raise InvalidInput(f"workers must be >= 1, got {workers}")


def run_quickstart(
    *,
    out_dir: Path,
    policies: Sequence[str] = DEFAULT_POLICIES,
    scenarios: Sequence[str | Path] | None = None,
    episodes: int = 2,
    seed: int = 1000,
    trace_scenario: str | Path = DEFAULT_TRACE_SCENARIO,
    workers: int | None = None,
    progress: Progress | None = None,
) -> QuickstartResult:
    """Evaluate ``policies`` on ``scenarios`` (default: the bundled ones) and write the report.

    Out-of-range numbers (``episodes``, ``seed``, ``workers``) are ``InvalidInput`` naming
    the argument, before an agent is loaded, a scenario read or the report folder made."""
    started = time.perf_counter()
    check_episodes(episodes, seed)
    _check_workers(workers)
    specs = _check_policies(policies)
    paths = [str(p) for p in (scenarios if scenarios is not None else bundled_scenarios())]
    if not paths:
        raise InvalidInput("no scenarios to evaluate")
    loaded = [load_scenario(p) for p in paths]  # a bad file fails before any work starts
    featured = load_scenario(trace_scenario)
    stem = f"quickstart-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}"
    part = _start_report(out_dir, stem)  # an unwritable folder, too
    try:
        reports = _evaluate_all(paths, loaded, specs, episodes, seed, workers, progress)
        traces = [run_episode(featured, seed, make_policy(spec)) for spec in specs]
        if progress:
            progress(f"traces on {featured.name}")
        try:
            write_policy_report(
                part,
                reports=reports,
                traces=traces,
                trace_scenario=featured,
                episodes=episodes,
                seed=seed,
            )
        except InvalidInput as exc:  # its only one with data in hand: the file (a full disk)
            raise ReportNotWritten(exc.message) from None
        report = _publish(part, out_dir, stem)
    finally:
        part.unlink(missing_ok=True)
    return QuickstartResult(
        reports=reports,
        traces=traces,
        trace_scenario=featured,
        report_path=report,
        seconds=time.perf_counter() - started,
        policies=specs,
    )


def _start_report(out_dir: Path, stem: str) -> Path:
    """A new, empty ``<stem>-<random>.html.part`` in ``out_dir`` (made if missing): the file
    the page is written to before it takes its name."""
    if out_dir.exists() and not out_dir.is_dir():
        raise ReportNotWritten(f"cannot write the report in {out_dir}: not a directory")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        return new_part_file(out_dir, f"{stem}-", ".html.part")
    except OSError as exc:
        raise _not_written(out_dir, exc) from None


def _publish(part: Path, out_dir: Path, stem: str) -> Path:
    """Move the finished page to ``<stem>.html``, named by the second the run started: a run
    that took that name first (two runs started in the same second) leaves ``-2``, ``-3``,
    ... to the next instead of being written over."""
    try:
        for n in itertools.count(1):
            path = out_dir / (f"{stem}.html" if n == 1 else f"{stem}-{n}.html")
            try:
                path.open("x").close()
            except FileExistsError:
                continue
            try:
                os.replace(part, path)  # whole: a reader sees the empty name or the page
            except BaseException:
                path.unlink(missing_ok=True)
                raise
            return path
    except OSError as exc:
        raise _not_written(out_dir, exc) from None
    raise AssertionError("unreachable")


def _not_written(out_dir: Path, exc: OSError) -> ReportNotWritten:
    return ReportNotWritten(f"cannot write the report in {out_dir}: {exc.strerror or exc}")


def _evaluate_all(
    paths: list[str],
    loaded: list[Scenario],
    specs: list[str],
    episodes: int,
    seed: int,
    workers: int | None,
    progress: Progress | None,
) -> list[dict[str, Any]]:
    """Each scenario's evaluation report, in the order given, the scenarios in parallel."""
    workers = max(1, min(workers or os.cpu_count() or 1, len(paths)))
    reports: dict[str, dict[str, Any]] = {}
    context = get_context("spawn")  # torch and fork do not mix
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker) as pool:
        try:
            with _sigint_blocked():  # the workers start (on submit) with it blocked for good
                futures = {
                    pool.submit(_evaluate_file, path, specs, episodes, seed): scenario.name
                    for path, scenario in zip(paths, loaded, strict=True)
                }
            for future in as_completed(futures):
                reports[futures[future]] = future.result()
                if progress:
                    progress(futures[future])
        except BrokenProcessPool:
            _stop_workers(pool)
            raise AdbotError(
                "an evaluation process was stopped from outside (killed, or out of memory); "
                "no report was written; fewer workers need less memory"
            ) from None
        except BaseException:
            _stop_workers(pool)  # else leaving the block waits for every scenario to finish
            raise
    return [reports[s.name] for s in loaded]


@contextlib.contextmanager
def _sigint_blocked() -> Iterator[None]:
    """SIGINT blocked in this thread, so in the processes it starts meanwhile (a blocked
    signal stays blocked across fork and exec): the parent stops them on a Ctrl-C. A
    SIGINT that comes meanwhile is delivered here once unblocked, not lost."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """Drop the work not started and end the workers now, not once their scenario is done.
    (``ProcessPoolExecutor.terminate_workers`` does this from Python 3.14.)"""
    processes = list((pool._processes or {}).values())
    manager = getattr(pool, "_executor_manager_thread", None)  # shutdown(wait=False) drops it
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.terminate()
    for process in processes:
        process.join()
    if manager is not None:
        # Joined here, as shutdown(wait=True) would have: else it may still be closing its
        # wake-up pipe when concurrent.futures' exit hook writes to it ("Exception ignored
        # in threading._shutdown", a traceback on stderr after the one-line error).
        manager.join()
