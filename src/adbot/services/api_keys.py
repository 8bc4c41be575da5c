"""API keys of an account: created with scopes and an optional expiry, listed, revoked."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from adbot.db.models import ApiKey
from adbot.errors import InvalidInput, NotFound, PermissionDenied
from adbot.security.api_keys import generate_key
from adbot.services.common import Actor, Page, Scope, contains, ordering, paginate, writing

SORTS = {"id": ApiKey.id, "name": ApiKey.name, "created_at": ApiKey.created_at}


def create_api_key(
    *,
    session: Session,
    actor: Actor,
    name: str,
    scopes: Sequence[Scope],
    expires_at: datetime | None = None,
) -> tuple[ApiKey, str]:
    """The new key row and its plaintext, which is never stored and cannot be shown again.

    The key belongs to the acting user, so it stops working when that user is disabled,
    and can never do more than the user's role allows.
    """
    wanted = frozenset(Scope(scope) for scope in scopes)
    if not wanted:
        raise InvalidInput("an API key needs at least one scope", details={"field": "scopes"})
    beyond = wanted - actor.scopes
    if beyond:
        raise PermissionDenied(
            f"cannot grant scopes you do not have: {', '.join(sorted(beyond))}",
            details={"field": "scopes"},
        )
    if expires_at is not None and expires_at <= datetime.now(UTC):
        raise InvalidInput("expires_at must be in the future", details={"field": "expires_at"})
    new_key = generate_key()
    api_key = ApiKey(
        account_id=actor.account_id,
        user_id=actor.user_id,
        name=name,
        prefix=new_key.prefix,
        secret_hash=new_key.secret_hash,
        scopes=sorted(wanted),
        expires_at=expires_at,
    )
    with writing(session):
        session.add(api_key)
    return api_key, new_key.plaintext


def list_api_keys(
    *,
    session: Session,
    actor: Actor,
    limit: int,
    offset: int,
    sort: str = "id",
    revoked: bool | None = None,
    q: str | None = None,
) -> Page[ApiKey]:
    stmt = select(ApiKey).where(ApiKey.account_id == actor.account_id)
    if revoked is not None:
        stmt = stmt.where(
            ApiKey.revoked_at.is_not(None) if revoked else ApiKey.revoked_at.is_(None)
        )
    if q:
        stmt = stmt.where(contains(ApiKey.name, q))
    return paginate(
        session, stmt, limit=limit, offset=offset, order_by=ordering(sort, SORTS, ApiKey.id)
    )


def get_api_key(*, session: Session, actor: Actor, key_id: int) -> ApiKey:
    api_key = session.scalar(
        select(ApiKey).where(ApiKey.id == key_id, ApiKey.account_id == actor.account_id)
    )
    if api_key is None:
        raise NotFound(f"API key {key_id} not found")
    return api_key


def revoke_api_key(*, session: Session, actor: Actor, key_id: int) -> ApiKey:
    """Revoke now; revoking a revoked key keeps the first revocation time."""
    api_key = get_api_key(session=session, actor=actor, key_id=key_id)
    with writing(session):
        if api_key.revoked_at is None:
            api_key.revoked_at = datetime.now(UTC)
    return api_key
