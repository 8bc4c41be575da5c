"""``create_app()``: the FastAPI application, every route under ``/api/v1``."""

from __future__ import annotations

import gc
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from adbot import __version__
from adbot.api.deps import API_PREFIX, StrictQuery
from adbot.api.errors import install_error_handlers
from adbot.api.middleware import install_operations
from adbot.api.routers import (
    accounts,
    ad_groups,
    ads,
    api_keys,
    auth,
    bid_history,
    bids,
    campaigns,
    conversions,
    keywords,
    metrics,
    platforms,
    reports,
    users,
)
from adbot.api.schemas.common import ERROR_RESPONSES
from adbot.config import Settings, get_settings
from adbot.db.engine import create_db_engine
from adbot.db.session import make_sessionmaker

ROUTERS = (auth, api_keys, accounts, users, platforms, campaigns, ad_groups, ads, keywords, bids)
PERFORMANCE_ROUTERS = (metrics, conversions, reports, bid_history)


class Database:
    """The app's engine and session factory, made on first use and disposed at shutdown."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        self.echo = echo
        self._engine: Engine | None = None
        self._factory: sessionmaker[Session] | None = None
        # Requests run in a thread pool; the first two must not each build an engine.
        self._lock = threading.Lock()

    @property
    def sessionmaker(self) -> sessionmaker[Session]:
        with self._lock:
            if self._factory is None:
                self._engine = create_db_engine(self.url, echo=self.echo)
                self._factory = make_sessionmaker(self._engine)
            return self._factory

    def dispose(self) -> None:
        with self._lock:
            if self._engine is not None:
                self._engine.dispose()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    database = Database(settings.db.url, echo=settings.db.echo)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # What exists at startup (modules, the app, its routes and models: ~240,000
        # objects) lives as long as the process; frozen, it is out of the cycle collector's
        # sight, whose full collections otherwise stop every request for ~150 ms. Not in
        # tests, where apps come and go within one process.
        freeze = settings.environment != "test"
        if freeze:
            gc.collect()
            gc.freeze()
        try:
            yield
        finally:
            database.dispose()
            if freeze:
                gc.unfreeze()

    app = FastAPI(
        title="AdBot API",
        version=__version__,
        description=(
            "Bid and budget optimiser for search ads. Money is integer micros "
            "(millionths of the account currency). Authenticate with a bearer token from "
            f"`POST {API_PREFIX}/auth/token` or an `X-API-Key` header."
        ),
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.database = database
    install_error_handlers(app)
    if settings.api.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.api.cors_origins,
            allow_methods=["*"],
            allow_headers=["Authorization", "Content-Type", "X-API-Key"],
        )
    # The busiest routes (reports, ingestion) first: FastAPI tries routers in order, and
    # every router passed over costs each request a scan of its routes.
    for module in (*PERFORMANCE_ROUTERS, *ROUTERS):
        app.include_router(
            module.router,
            prefix=API_PREFIX,
            responses=ERROR_RESPONSES,
            dependencies=[StrictQuery],
        )
    install_operations(app)
    return app
