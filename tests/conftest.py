"""Test harness: real PostgreSQL and Redis, never mocks.

PostgreSQL: ``ADBOT_TEST_DATABASE_URL`` (default
``postgresql+psycopg://postgres@127.0.0.1:5432/postgres``) is an admin connection. Each
test session (each xdist worker) creates its own database ``adbot_test_<worker>_<random>``,
migrates it with ``alembic upgrade head`` and drops it at the end; each test runs in a
transaction that is rolled back. Redis: ``ADBOT_TEST_REDIS_URL`` (default
``redis://127.0.0.1:6379/``), one database number per worker (13, 14, 15, 12, ...),
flushed before and after each test.

When nothing answers at a default URL (or ``ADBOT_TEST_THROWAWAY=1``), the harness starts a
throwaway PostgreSQL cluster (initdb + pg_ctl) or redis-server from the local binaries on
a free port, per worker, and stops it at the end. Without the binaries the run stops with
a message saying how to get them: database tests are never skipped.

Fixtures: ``pg_admin_url``, ``pg_url``, ``pg_engine``, ``db_session``, ``pg_database``
(an extra empty database), ``own_engine`` and ``own_sqlite_engine`` (migrated, for a test
that commits),
``sqlite_url``, ``sqlite_engine``, ``sqlite_session``,
``redis_url``, ``redis_client``.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
from hypothesis import settings as hypothesis_settings
from hypothesis.internal.detection import is_hypothesis_test
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from adbot.config import get_settings, mask_url
from adbot.db import migrate
from adbot.db.engine import create_db_engine, scratch_database
from cli_helpers import CliResult, RunCli
from examples_helpers import examples_override

ADMIN_URL_VAR = "ADBOT_TEST_DATABASE_URL"
REDIS_URL_VAR = "ADBOT_TEST_REDIS_URL"
THROWAWAY_VAR = "ADBOT_TEST_THROWAWAY"
DEFAULT_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/"
# Database numbers for test workers; 0 (the usual application database) is never used.
REDIS_TEST_DBS = (13, 14, 15, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1)

GET_POSTGRES = (
    "install the PostgreSQL server binaries (Debian/Ubuntu: `apt-get install postgresql`, "
    "macOS: `brew install postgresql@16`), or start a server and set "
    f"{ADMIN_URL_VAR}=postgresql+psycopg://user:password@host:port/postgres "
    "(e.g. `docker compose up -d postgres`, port 7500)"
)
GET_REDIS = (
    "install redis-server (Debian/Ubuntu: `apt-get install redis-server`, macOS: "
    f"`brew install redis`), or start one and set {REDIS_URL_VAR}=redis://host:port/ "
    "(e.g. `docker compose up -d redis`, port 7501)"
)


def worker_id() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


def worker_index() -> int:
    worker = worker_id()
    return int(worker.removeprefix("gw")) if worker.startswith("gw") else 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def stop_run(message: str) -> NoReturn:
    """Stop: the whole run (``pytest.exit``) or, in an xdist worker, where an exit would be
    reported as a bare worker crash, every test that needs the missing server fails with the
    message (a failing session fixture is not retried)."""
    if worker_id() == "main":
        pytest.exit(message, returncode=3)
    pytest.fail(message, pytrace=False)


def _wants_throwaway() -> bool:
    return os.environ.get(THROWAWAY_VAR, "") not in ("", "0")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """With ``ADBOT_TEST_EXAMPLES`` set, every ``@given`` test tries that many examples
    (its decorator's ``max_examples`` would beat a hypothesis profile)."""
    count = examples_override()
    if count is None:
        return
    for item in items:
        test = getattr(item, "obj", None)
        test = getattr(test, "__func__", test)  # a method's function
        # Read by hypothesis when the test runs (internal, hence only on request). The
        # schemathesis tests have none: they read ADBOT_TEST_EXAMPLES themselves.
        given_settings = getattr(test, "_hypothesis_internal_use_settings", None)
        if is_hypothesis_test(test) and given_settings is not None:
            test._hypothesis_internal_use_settings = hypothesis_settings(
                given_settings, max_examples=count
            )


# --- PostgreSQL ---------------------------------------------------------------------------


def postgres_problem(url: str) -> str | None:
    """None if a server answers at ``url``, else why not."""
    engine = create_engine(url, connect_args={"connect_timeout": 3}, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return None
    except Exception as exc:  # any failure means "cannot use it"; the message says why
        return str(getattr(exc, "orig", exc)).strip().splitlines()[0]
    finally:
        engine.dispose()


def _postgres_bin_dir() -> Path | None:
    def version(path: str) -> float:
        try:
            return float(Path(path).parts[-3])
        except ValueError:
            return 0.0

    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=version, reverse=True)
    if found:
        return Path(found[0]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb and shutil.which("pg_ctl") else None


def _unprivileged_prefix(directory: Path) -> list[str]:
    """PostgreSQL refuses to run as root: run it as the ``postgres`` user (or nobody)."""
    if os.geteuid() != 0:
        return []
    for user in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            entry = pwd.getpwnam(user)
            for path in (directory, *directory.rglob("*")):
                os.chown(path, entry.pw_uid, entry.pw_gid)
            runner = shutil.which("runuser")
            if runner:
                return [runner, "-u", user, "--"]
            return [
                "setpriv",
                f"--reuid={entry.pw_uid}",
                f"--regid={entry.pw_gid}",
                "--clear-groups",
            ]
    stop_run("running as root and no unprivileged user to run PostgreSQL as")


@contextlib.contextmanager
def throwaway_postgres() -> Iterator[str]:
    """A new PostgreSQL cluster in a temporary folder on a free port, trust auth."""
    bin_dir = _postgres_bin_dir()
    if bin_dir is None:
        stop_run(f"No PostgreSQL for the tests: {GET_POSTGRES}.")
    directory = Path(tempfile.mkdtemp(prefix=f"adbot-pg-{worker_id()}-"))
    data = directory / "data"
    port = free_port()
    prefix = _unprivileged_prefix(directory)
    pg_ctl = [*prefix, str(bin_dir / "pg_ctl"), "-D", str(data)]
    options = f"-F -p {port} -k {directory} -c listen_addresses=127.0.0.1"
    try:
        _run(
            [
                *prefix,
                str(bin_dir / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
            ]
        )
        _run([*pg_ctl, "-l", str(directory / "server.log"), "-o", options, "-w", "start"])
        try:
            yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
        finally:
            _run([*pg_ctl, "-m", "immediate", "-w", "stop"])
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _run(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        output = (result.stderr or result.stdout).strip()
        stop_run(f"`{' '.join(command)}` failed: {output}")


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    """An admin URL of a PostgreSQL server for this worker (the given one or a throwaway)."""
    explicit = os.environ.get(ADMIN_URL_VAR)
    if not _wants_throwaway():
        url = explicit or DEFAULT_ADMIN_URL
        problem = postgres_problem(url)
        if problem is None:
            yield url
            return
        if explicit:
            stop_run(
                f"{ADMIN_URL_VAR}={mask_url(url)} does not answer ({problem}): start that "
                "server, or unset the variable to let the tests start a throwaway one."
            )
    with throwaway_postgres() as url:
        yield url


def new_database(admin_url: str, label: str = "") -> contextlib.AbstractContextManager[str]:
    """A new, empty database on the admin URL's server; dropped on exit."""
    prefix = "_".join(part for part in ("adbot_test", worker_id(), label) if part)
    return scratch_database(admin_url, prefix)


@pytest.fixture(scope="session")
def pg_url(pg_admin_url: str) -> Iterator[str]:
    """URL of this worker's test database, migrated to head with Alembic."""
    with new_database(pg_admin_url) as url:
        migrate.upgrade(url, "head")
        yield url


@pytest.fixture(scope="session")
def pg_engine(pg_url: str) -> Iterator[Engine]:
    engine = create_db_engine(pg_url)
    yield engine
    engine.dispose()


@pytest.fixture
def pg_database(pg_admin_url: str) -> Iterator[str]:
    """An extra empty (unmigrated) database for one test, e.g. to run migrations on."""
    with new_database(pg_admin_url, "extra") as url:
        yield url


@pytest.fixture
def own_engine(pg_database: str) -> Iterator[Engine]:
    """A migrated database of its own, for a test whose data must be committed for real."""
    migrate.upgrade(pg_database, "head")
    engine = create_db_engine(pg_database)
    yield engine
    engine.dispose()


@pytest.fixture
def own_sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    """A SQLite file of its own migrated to head, for a test whose data must be committed
    for real (two sessions racing, say)."""
    url = f"sqlite:///{tmp_path / 'own.db'}"
    migrate.upgrade(url, "head")
    engine = create_db_engine(url)
    yield engine
    engine.dispose()


def _rolled_back_session(engine: Engine) -> Iterator[Session]:
    """A session inside an outer transaction that is rolled back after the test; the code
    under test may commit (savepoints) as often as it likes."""
    with engine.connect() as connection:
        transaction = connection.begin()
        session = Session(
            bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
        )
        try:
            yield session
        finally:
            session.close()
            transaction.rollback()


@pytest.fixture
def db_session(pg_engine: Engine) -> Iterator[Session]:
    yield from _rolled_back_session(pg_engine)


# --- SQLite (the embedded default) --------------------------------------------------------


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """URL of a temporary SQLite file migrated to head with Alembic."""
    url = f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'adbot.db'}"
    migrate.upgrade(url, "head")
    return url


@pytest.fixture(scope="session")
def sqlite_engine(sqlite_url: str) -> Iterator[Engine]:
    engine = create_db_engine(sqlite_url)
    yield engine
    engine.dispose()


@pytest.fixture
def sqlite_session(sqlite_engine: Engine) -> Iterator[Session]:
    yield from _rolled_back_session(sqlite_engine)


# --- Redis --------------------------------------------------------------------------------


def redis_problem(url: str) -> str | None:
    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
        return None
    except redis.RedisError as exc:
        return str(exc)
    finally:
        client.close()


@contextlib.contextmanager
def throwaway_redis() -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        stop_run(f"No Redis for the tests: {GET_REDIS}.")
    directory = Path(tempfile.mkdtemp(prefix=f"adbot-redis-{worker_id()}-"))
    port = free_port()
    command = [
        binary,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(directory),
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/"
    try:
        _wait_for(lambda: redis_problem(url) is None, f"redis-server on port {port}")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(directory, ignore_errors=True)


def _wait_for(ready: Callable[[], bool], what: str, attempts: int = 100) -> None:
    for _ in range(attempts):
        if ready():
            return
        time.sleep(0.1)
    stop_run(f"{what} did not start")


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """URL of this worker's own Redis database number."""
    if worker_index() >= len(REDIS_TEST_DBS):
        stop_run(f"at most {len(REDIS_TEST_DBS)} xdist workers can share Redis")
    number = REDIS_TEST_DBS[worker_index()]
    explicit = os.environ.get(REDIS_URL_VAR)
    if not _wants_throwaway():
        url = explicit or DEFAULT_REDIS_URL
        problem = redis_problem(url)
        if problem is None:
            own = _with_db(url, number)
            yield own
            # What tests left there (a report cache's generation bumped by a commit of a
            # test that never asked for Redis): the server is not the run's own.
            with redis.Redis.from_url(own) as client:
                client.flushdb()
            return
        if explicit:
            stop_run(
                f"{REDIS_URL_VAR}={mask_url(url)} does not answer ({problem}): start that "
                "server, or unset the variable to let the tests start a throwaway one."
            )
    with throwaway_redis() as url:
        yield _with_db(url, number)


def _with_db(url: str, number: int) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{number}"))


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    """A client (``decode_responses=True``) on an empty database of its own."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.flushdb()
    try:
        yield client
    finally:
        client.flushdb()
        client.close()


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]) -> RunCli:
    """``run_cli(argv)``: ``adbot ARGV`` with settings read afresh from the environment (set
    it with ``monkeypatch`` first); its exit code, stdout and stderr."""

    from adbot.cli.main import main  # the CLI's imports, for the tests that use it only

    def run(argv: list[str]) -> CliResult:
        capsys.readouterr()
        get_settings.cache_clear()
        try:
            with pytest.raises(SystemExit) as exit_info:
                main(argv)
        finally:
            get_settings.cache_clear()
        captured = capsys.readouterr()
        return CliResult(exit_info.value.code, captured.out, captured.err)

    return run
