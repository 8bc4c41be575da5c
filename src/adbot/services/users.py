"""People of an account. An account always keeps at least one active admin, and nobody
disables, removes or demotes themselves (ask another admin), so nobody locks the door.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from adbot.config import AuthSettings
from adbot.db.models import Role, User
from adbot.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from adbot.security.passwords import check_password_length, hash_password
from adbot.services.common import Actor, Page, apply_changes, contains, ordering, paginate, writing

SORTS = {
    "id": User.id,
    "email": User.email,
    "full_name": User.full_name,
    "created_at": User.created_at,
}
UPDATABLE = {"full_name", "role", "is_active"}
_EMAIL = re.compile(r"^[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+$")


def normalise_email(email: str) -> str:
    """The sign-in name as stored: trimmed, lower case, shaped like an address."""
    normalised = email.strip().lower()
    if len(normalised) > 320 or not _EMAIL.match(normalised):
        raise InvalidInput(f"'{email}' is not an email address", details={"field": "email"})
    return normalised


def create_user(
    *,
    session: Session,
    actor: Actor,
    email: str,
    password: str,
    role: Role,
    auth: AuthSettings,
    full_name: str = "",
) -> User:
    check_password_length(password)
    user = User(
        account_id=actor.account_id,
        email=normalise_email(email),
        full_name=full_name,
        password_hash=hash_password(password, auth=auth),
        role=role,
    )
    with writing(session):
        session.add(user)
    return user


def list_users(
    *,
    session: Session,
    actor: Actor,
    limit: int,
    offset: int,
    sort: str = "id",
    role: Role | None = None,
    is_active: bool | None = None,
    q: str | None = None,
) -> Page[User]:
    stmt = select(User).where(User.account_id == actor.account_id)
    if role is not None:
        stmt = stmt.where(User.role == role)
    if is_active is not None:
        stmt = stmt.where(User.is_active.is_(is_active))
    if q:
        stmt = stmt.where(or_(contains(User.email, q), contains(User.full_name, q)))
    return paginate(
        session, stmt, limit=limit, offset=offset, order_by=ordering(sort, SORTS, User.id)
    )


def get_user(*, session: Session, actor: Actor, user_id: int) -> User:
    user = session.scalar(
        select(User).where(User.id == user_id, User.account_id == actor.account_id)
    )
    if user is None:
        raise NotFound(f"user {user_id} not found")
    return user


def update_user(
    *,
    session: Session,
    actor: Actor,
    user_id: int,
    changes: Mapping[str, Any],
    auth: AuthSettings,
) -> User:
    user = get_user(session=session, actor=actor, user_id=user_id)
    fields = dict(changes)
    password = fields.pop("password", None)
    loses_admin = fields.get("role", user.role) != Role.ADMIN or not fields.get(
        "is_active", user.is_active
    )
    if loses_admin and user.id == actor.user_id:
        raise Conflict("you cannot disable or demote yourself; ask another admin")
    if password is not None and user.id == actor.user_id:
        raise PermissionDenied("change your own password with POST /api/v1/auth/password")
    with writing(session):
        apply_changes(user, fields, UPDATABLE)
        if password is not None:
            check_password_length(password)
            user.password_hash = hash_password(password, auth=auth)
        session.flush()
        _keep_an_admin(session, actor.account_id)
    return user


def deactivate_user(*, session: Session, actor: Actor, user_id: int) -> User:
    """Archive: the user cannot sign in and their API keys stop working; history keeps them."""
    user = get_user(session=session, actor=actor, user_id=user_id)
    if user.id == actor.user_id:
        raise Conflict("you cannot disable yourself; ask another admin")
    with writing(session):
        user.is_active = False
        session.flush()
        _keep_an_admin(session, actor.account_id)
    return user


def _keep_an_admin(session: Session, account_id: int) -> None:
    admins = session.scalar(
        select(func.count())
        .select_from(User)
        .where(User.account_id == account_id, User.role == Role.ADMIN, User.is_active.is_(True))
    )
    if not admins:
        raise Conflict("the account must keep at least one active admin")
