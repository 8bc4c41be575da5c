"""Authenticated principals cached in the process, so a request with a known credential
needs no database round trip: who a user id is (account, role, active, password
fingerprint) and what an API key prefix is (hash, scopes, revocation, expiry, owner).

Every check still runs on each request against the cached facts (signature, password
fingerprint, key secret, expiry, disabled user, closed account); only the reading of the
rows is saved. How long a change may go unseen:

- in the process that commits it: not at all. A committed change to a user's role,
  active flag or password, an API key's revocation, expiry, scopes or owner, or an
  account's status (or a deletion of any of these rows) empties every cache of the
  process before the commit returns. SQLAlchemy session events see every change made
  through the ORM (changed objects, and ``update()``/``delete()`` statements on these
  tables); raw SQL text is not seen;
- in other processes: up to ``GENERATION_CHECK_SECONDS`` (1 s). The committing process
  also increments ``adbot:auth-generation`` in Redis, and every process reads that
  counter at most once a second (one GET, off the request's critical path otherwise) and
  empties its cache when it moved;
- without Redis (not configured, or down): up to ``auth.principal_cache_seconds``
  (default 30 s), after which every entry is read again from the database.

``auth.principal_cache_seconds = 0`` turns the cache off.

The same cache remembers the claims of access tokens it has verified, by token text (a
signed token cannot change; its expiry is still checked on every use), so the rate
limiter and authentication do not verify one request's signature twice.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis
import redis.asyncio as aredis
from sqlalchemy import event, inspect
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction

from adbot.config import AuthSettings
from adbot.db.models import Account, AccountStatus, ApiKey, Role, User
from adbot.errors import AuthenticationFailed
from adbot.security.tokens import TokenClaims, decode_token
from adbot.services.common import Scope
from adbot.services.ratelimit import RedisHealth

GENERATION_CHECK_SECONDS = 1.0
MAX_REMEMBERED_TOKENS = 10_000
GENERATION_KEY = "adbot:auth-generation"
# Columns whose change can make a cached principal wrong; a login (last_login_at) or a key
# use (last_used_at) changes none of them.
WATCHED: dict[type, frozenset[str]] = {
    User: frozenset({"account_id", "role", "is_active", "password_hash", "token_generation"}),
    ApiKey: frozenset(
        {"account_id", "user_id", "prefix", "secret_hash", "scopes", "revoked_at", "expires_at"}
    ),
    Account: frozenset({"status"}),
}
_PENDING = "adbot.principals_changed"
CREDENTIALS_UNCHANGED = "credentials_unchanged"


@dataclass(frozen=True)
class UserPrincipal:
    user_id: int
    account_id: int
    role: Role
    is_active: bool
    account_status: AccountStatus
    credential_fingerprint: str  # what the user's tokens must carry (security.tokens)


@dataclass(frozen=True)
class KeyPrincipal:
    """An API key row with its owner (None for a service key) and its account's status."""

    api_key_id: int
    prefix: str
    secret_hash: str
    account_id: int
    account_status: AccountStatus
    scopes: frozenset[Scope]
    revoked_at: datetime | None
    expires_at: datetime | None
    last_used_at: datetime | None
    owner: UserPrincipal | None


class RemoteGeneration:
    """The cluster-wide counter of credential changes, in Redis; failures count as "no
    answer" (``RedisHealth``), never as errors of the request.
    """

    def __init__(
        self,
        health: RedisHealth,
        client: redis.Redis | None,
        async_client: Callable[[], aredis.Redis | None],
    ) -> None:
        self.health = health
        self.client = client
        self.async_client = async_client

    def bump(self) -> None:
        if self.client is None or not self.health.usable():
            return
        try:
            self.client.incr(GENERATION_KEY)
        except (redis.RedisError, OSError) as exc:
            self.health.failed(exc)
        else:
            self.health.succeeded()

    async def read(self) -> int | None:
        client = self.async_client()
        if client is None or not self.health.usable():
            return None
        try:
            value = await client.get(GENERATION_KEY)
        except (redis.RedisError, OSError) as exc:
            self.health.failed(exc)
            return None
        self.health.succeeded()
        return int(value or 0)


class PrincipalCache:
    """Users by id and API keys by prefix, each kept for ``ttl`` seconds (0: never).

    ``version`` moves on every clear: a reader notes it before going to the database and
    hands it back to ``put_*``, which drops a result read before a change was committed.
    """

    def __init__(
        self,
        ttl: float,
        *,
        remote: RemoteGeneration | None = None,
        check_every: float = GENERATION_CHECK_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.remote = remote
        self.check_every = check_every
        self._clock = clock
        self._lock = threading.Lock()
        self._users: dict[int, tuple[float, UserPrincipal]] = {}
        self._keys: dict[str, tuple[float, KeyPrincipal]] = {}
        self._touch_claims: dict[int, float] = {}
        self._claims: dict[str, TokenClaims] = {}
        self.version = 0
        self._seen_generation: int | None = None
        self._next_check = 0.0
        _CACHES.add(self)

    @property
    def enabled(self) -> bool:
        return self.ttl > 0

    def user(self, user_id: int) -> UserPrincipal | None:
        entry = self._users.get(user_id)
        if entry is None or entry[0] <= self._clock():
            return None
        return entry[1]

    def key(self, prefix: str) -> KeyPrincipal | None:
        entry = self._keys.get(prefix)
        if entry is None or entry[0] <= self._clock():
            return None
        return entry[1]

    def put_user(self, principal: UserPrincipal, *, version: int) -> None:
        with self._lock:
            if self.enabled and version == self.version:
                self._users[principal.user_id] = (self._clock() + self.ttl, principal)

    def put_key(self, principal: KeyPrincipal, *, version: int) -> None:
        with self._lock:
            if self.enabled and version == self.version:
                self._keys[principal.prefix] = (self._clock() + self.ttl, principal)

    def claim_touch(self, api_key_id: int, *, every: float) -> bool:
        """True for the first caller in ``every`` seconds: that one records the key's use."""
        now = self._clock()
        with self._lock:
            if self._touch_claims.get(api_key_id, 0.0) > now:
                return False
            self._touch_claims[api_key_id] = now + every
            return True

    def access_claims(self, token: str, auth: AuthSettings) -> TokenClaims:
        """``decode_token(token, kind="access")``, verified once per token text and then
        remembered (a token's signature and claims cannot change; its expiry is checked
        on every use). The rate limiter and authentication both read the same token.
        """
        claims = self._claims.get(token) if self.enabled else None
        if claims is None:
            claims = decode_token(token, kind="access", auth=auth)
            if self.enabled:
                if len(self._claims) >= MAX_REMEMBERED_TOKENS:
                    self._claims.clear()
                self._claims[token] = claims
        elif claims.expires_at <= datetime.now(UTC):
            raise AuthenticationFailed("token has expired")
        return claims

    def clear(self) -> None:
        with self._lock:
            self.version += 1
            self._users.clear()
            self._keys.clear()

    async def follow_remote(self) -> None:
        """Empty the cache if another process changed credentials (checked once a second)."""
        if self.remote is None or not self.enabled:
            return
        now = self._clock()
        if now < self._next_check:
            return
        self._next_check = now + self.check_every  # before the await: one reader at a time
        generation = await self.remote.read()
        if generation is None:
            return  # Redis away: entries still expire after ttl
        if generation != self._seen_generation:
            self._seen_generation = generation
            self.clear()


# Every cache of the process (one per app), emptied when a change commits here.
_CACHES: weakref.WeakSet[PrincipalCache] = weakref.WeakSet()


def credentials_changed() -> None:
    """Empty every cache of this process and tell the other processes (through Redis)."""
    remotes: dict[str, RemoteGeneration] = {}
    for cache in list(_CACHES):
        cache.clear()
        if cache.remote is not None:
            remotes.setdefault(cache.remote.health.url or "", cache.remote)
    for remote in remotes.values():
        remote.bump()


def _changes_credentials(instance: Any, deleted: bool) -> bool:
    watched = WATCHED.get(type(instance))
    if watched is None:
        return False
    if deleted:
        return True
    state = inspect(instance)
    return any(state.attrs[name].history.has_changes() for name in watched)


@event.listens_for(Session, "after_flush")
def _note_changes(session: Session, _context: Any) -> None:
    if session.info.get(_PENDING):
        return
    changed = any(_changes_credentials(obj, False) for obj in session.dirty) or any(
        _changes_credentials(obj, True) for obj in session.deleted
    )
    if changed:
        session.info[_PENDING] = True


@event.listens_for(Session, "do_orm_execute")
def _note_bulk_changes(state: ORMExecuteState) -> None:
    """ORM ``update()``/``delete()`` statements on the watched tables count as changes,
    unless marked ``execution_options(credentials_unchanged=True)`` (recording a use).
    """
    if not (state.is_update or state.is_delete) or state.session.info.get(_PENDING):
        return
    if state.execution_options.get(CREDENTIALS_UNCHANGED):
        return
    if any(mapper.class_ in WATCHED for mapper in state.all_mappers):
        state.session.info[_PENDING] = True


@event.listens_for(Session, "after_commit")
def _publish_changes(session: Session) -> None:
    if session.info.pop(_PENDING, False):
        credentials_changed()


@event.listens_for(Session, "after_soft_rollback")
def _drop_changes(session: Session, previous: SessionTransaction) -> None:
    if previous.parent is None:  # the whole transaction is gone, and its changes with it
        session.info.pop(_PENDING, None)
