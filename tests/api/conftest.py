"""API test fixtures: the real app on the test database, real argon2 and real JWTs.

Every request of a test runs inside the test's rolled-back transaction: the app's
``get_session`` dependency is overridden to hand out the harness's ``db_session``.
Argon2 keeps hashing for real, with the cheapest parameters (settings
``auth.password_*``), so a suite that signs in hundreds of times stays fast.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from api_helpers import (
    PASSWORD,
    Tenant,
    TenantFactory,
    World,
    api_settings,
    build_world,
    next_number,
    sign_in,
)
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from adbot.api.app import create_app
from adbot.api.deps import get_session
from adbot.config import Settings
from adbot.services.accounts import bootstrap_admin


@pytest.fixture
def settings() -> Settings:
    return api_settings()


@pytest.fixture
def app(settings: Settings, db_session: Session) -> FastAPI:
    app = create_app(settings)
    app.dependency_overrides[get_session] = lambda: db_session
    return app


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def make_tenant(client: TestClient, db_session: Session, settings: Settings) -> TenantFactory:
    def make() -> Tenant:
        number = next_number()
        email = f"admin{number}@tenant{number}.example.com"
        made = bootstrap_admin(
            session=db_session,
            account_name=f"Tenant {number}",
            email=email,
            password=PASSWORD,
            auth=settings.auth,
        )
        return Tenant(
            client=client,
            account_id=made.account.id,
            admin_id=made.admin.id,
            admin_email=email,
            headers=sign_in(client, email),
        )

    return make


@pytest.fixture
def tenant(make_tenant: TenantFactory) -> Tenant:
    return make_tenant()


@pytest.fixture
def world(tenant: Tenant) -> World:
    return build_world(tenant)
