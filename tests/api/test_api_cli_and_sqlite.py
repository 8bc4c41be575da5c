"""``adbot users create-admin`` and ``adbot serve`` as real processes, and the API on the
embedded default (SQLite) in-process.
"""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from api_helpers import PASSWORD, Tenant, api_settings, build_world, sign_in
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from adbot.api.app import create_app
from adbot.api.deps import get_session
from adbot.cli.main import main
from adbot.config import get_settings
from adbot.db import migrate
from adbot.db.engine import create_db_engine
from adbot.db.models import Account, AccountStatus, BidChange, User
from adbot.services.accounts import bootstrap_admin

FAST_HASHING = {
    "ADBOT_AUTH__PASSWORD_TIME_COST": "1",
    "ADBOT_AUTH__PASSWORD_MEMORY_KIB": "64",
    "ADBOT_AUTH__PASSWORD_PARALLELISM": "1",
}


@pytest.fixture
def sqlite_file(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'adbot.db'}"
    migrate.upgrade(url, "head")
    return url


@pytest.fixture
def cli(
    sqlite_file: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Iterator[Callable[..., tuple[int, str, str]]]:
    """Run ``adbot ...`` in this process on a migrated SQLite file; (exit code, out, err)."""
    for name, value in {**FAST_HASHING, "ADBOT_DB__URL": sqlite_file}.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()

    def run(*args: str, stdin: str = "", url: str | None = None) -> tuple[int, str, str]:
        if url is not None:
            monkeypatch.setenv("ADBOT_DB__URL", url)
            get_settings.cache_clear()
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        try:
            main(list(args))
            code = 0
        except SystemExit as exit_:
            code = int(exit_.code or 0)
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    yield run
    get_settings.cache_clear()


def test_create_admin_bootstraps_an_account(cli: Callable[..., tuple[int, str, str]]) -> None:
    args = ["users", "create-admin", "--account", "Acme Shoes", "--email", "Ops@Acme.example"]
    code, out, _ = cli(*args, "--password-stdin", stdin=f"{PASSWORD}\n")
    assert code == 0
    assert "admin ops@acme.example" in out and "new account 'acme-shoes'" in out
    code, _, err = cli(*args, "--password-stdin", stdin=f"{PASSWORD}\n")
    assert code == 1 and err.strip() == "error: a user with this email already exists"
    code, out, _ = cli(
        "users", "create-admin", "--account", "acme shoes", "--email", "b@acme.example",
        "--password-stdin", stdin=f"{PASSWORD}\n",
    )  # fmt: skip
    assert code == 0 and "existing account 'acme-shoes'" in out
    code, _, err = cli(*args, "--password-stdin", stdin="short\n")
    assert code == 1 and "password" in err
    code, _, err = cli(*args)
    assert code == 1 and "--password-stdin" in err


def test_create_admin_refuses_a_closed_account(
    cli: Callable[..., tuple[int, str, str]], sqlite_file: str
) -> None:
    """It added an admin and said where to sign in, where every sign-in is refused."""
    args = ["users", "create-admin", "--account", "Beta Co", "--password-stdin"]
    code, _, _ = cli(*args, "--email", "a@beta.example", stdin=f"{PASSWORD}\n")
    assert code == 0
    engine = create_db_engine(sqlite_file)
    with Session(engine) as session, session.begin():
        session.execute(update(Account).values(status=AccountStatus.CLOSED))
    code, out, err = cli(*args, "--email", "b@beta.example", stdin=f"{PASSWORD}\n")
    assert code == 1 and out == ""
    assert err.strip() == "error: account 'beta-co' is closed; its users cannot sign in"
    with Session(engine) as session:
        assert session.scalar(select(func.count()).select_from(User)) == 1


def test_create_admin_refuses_an_unmigrated_database(
    cli: Callable[..., tuple[int, str, str]], tmp_path: Path
) -> None:
    code, _, err = cli(
        "users", "create-admin", "--account", "A", "--email", "a@b.example", "--password-stdin",
        stdin=f"{PASSWORD}\n", url=f"sqlite:///{tmp_path / 'empty.db'}",
    )  # fmt: skip
    assert code == 1 and "adbot db upgrade" in err and "Traceback" not in err


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def served(sqlite_file: str) -> Iterator[str]:
    engine = create_db_engine(sqlite_file)
    with Session(engine) as session:
        bootstrap_admin(
            session=session,
            account_name="Served",
            email="ops@served.example",
            password=PASSWORD,
            auth=api_settings().auth,
        )
    engine.dispose()
    port = _free_port()
    env = {**os.environ, **FAST_HASHING, "ADBOT_DB__URL": sqlite_file}
    process = subprocess.Popen(
        [sys.executable, "-m", "adbot.cli.main", "serve", "--host", "127.0.0.1", "--port",
         str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                if httpx.get(f"{base}/openapi.json", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            process.terminate()
            pytest.fail(f"adbot serve did not start: {process.communicate(timeout=10)[1]}")
        yield base
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_serve_answers_on_the_configured_port(served: str) -> None:
    with httpx.Client(base_url=served, timeout=10) as http:
        docs = http.get("/docs")
        assert docs.status_code == 200
        token = http.post(
            "/api/v1/auth/token", data={"username": "ops@served.example", "password": PASSWORD}
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        platform = http.post(
            "/api/v1/platforms", json={"kind": "sim", "name": "Sim"}, headers=headers
        ).json()
        campaign = http.post(
            "/api/v1/campaigns",
            json={"platform_id": platform["id"], "name": "C", "daily_budget_micros": 9_000_000},
            headers=headers,
        )
        assert campaign.status_code == 201
        assert http.get("/api/v1/campaigns", headers=headers).json()["total"] == 1
        missing = http.get("/api/v1/nowhere", headers=headers)
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


@pytest.fixture
def sqlite_tenant(sqlite_session: Session) -> Iterator[Tenant]:
    settings = api_settings()
    app = create_app(settings)
    app.dependency_overrides[get_session] = lambda: sqlite_session
    made = bootstrap_admin(
        session=sqlite_session,
        account_name="Embedded",
        email="ops@embedded.example",
        password=PASSWORD,
        auth=settings.auth,
    )
    with TestClient(app) as client:
        yield Tenant(
            client=client,
            account_id=made.account.id,
            admin_id=made.admin.id,
            admin_email=made.admin.email,
            headers=sign_in(client, made.admin.email),
        )


def test_the_api_on_sqlite(sqlite_tenant: Tenant, sqlite_session: Session) -> None:
    world = build_world(sqlite_tenant)
    tenant = world.tenant
    other = tenant.post(
        "keywords", {"ad_group_id": world.ad_group["id"], "text": "trail", "match_type": "broad"}
    )
    duplicate = tenant.client.post(
        "/api/v1/keywords",
        json={"ad_group_id": world.ad_group["id"], "text": "TRAIL", "match_type": "broad"},
        headers=tenant.headers,
    )
    assert duplicate.status_code == 409
    assert duplicate.json()["error"]["details"] == {"key": ["ad_group_id", "text", "match_type"]}
    changes = [
        {"keyword_id": world.keyword["id"], "bid_micros": 2_000_000},
        {"keyword_id": other["id"], "bid_micros": 700_000},
    ]
    result = tenant.client.post(
        "/api/v1/bids/bulk", json={"changes": changes}, headers=tenant.headers
    )
    assert result.status_code == 200 and result.json()["updated"] == 2
    assert tenant.get(f"keywords/{other['id']}")["bid_micros"] == 700_000
    history = sqlite_session.scalar(select(func.count()).select_from(BidChange))
    assert history == 2
    missing = [{"keyword_id": 999_999, "bid_micros": 1_000_000}, *changes]
    refused = tenant.client.post(
        "/api/v1/bids/bulk", json={"changes": missing}, headers=tenant.headers
    )
    assert refused.status_code == 404
    assert sqlite_session.scalar(select(func.count()).select_from(BidChange)) == 2
    page = tenant.get("keywords", sort="-bid_micros", q="TR")
    assert [k["text"] for k in page["items"]] == ["trail"]
