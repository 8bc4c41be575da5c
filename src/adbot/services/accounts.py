"""Accounts (tenants). A request sees only its own account; new accounts come from the
operator's ``adbot users create-admin``, which also creates the first admin.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import available_timezones

from sqlalchemy import select
from sqlalchemy.orm import Session

from adbot.config import AuthSettings
from adbot.db.models import Account, AccountStatus, Role, User
from adbot.errors import Conflict, InvalidInput, NotFound
from adbot.security.passwords import check_password_length, hash_password
from adbot.services.common import Actor, Page, apply_changes, writing
from adbot.services.users import normalise_email

UPDATABLE = {"name", "slug", "time_zone"}


@dataclass(frozen=True)
class Bootstrap:
    account: Account
    admin: User
    account_created: bool


def slug_for(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.strip().lower()).strip("-")[:63].strip("-")
    if len(slug) < 2:
        raise InvalidInput(
            f"cannot make an account slug from '{name}': use at least two letters or digits"
        )
    return slug


def check_time_zone(name: str) -> None:
    if name not in available_timezones():
        raise InvalidInput(f"unknown time zone '{name}'", details={"field": "time_zone"})


def bootstrap_admin(
    *,
    session: Session,
    account_name: str,
    email: str,
    password: str,
    auth: AuthSettings,
    full_name: str = "",
) -> Bootstrap:
    """Create the account named ``account_name`` (or find it by its slug) and an admin in it."""
    slug = slug_for(account_name)
    email = normalise_email(email)
    check_password_length(password)
    with writing(session):
        account = session.scalar(select(Account).where(Account.slug == slug))
        created = account is None
        if account is not None and account.status == AccountStatus.CLOSED:
            # Its users cannot sign in: an admin made here would be told "sign in" and refused.
            raise Conflict(f"account '{slug}' is closed; its users cannot sign in")
        if account is None:
            account = Account(slug=slug, name=account_name.strip())
            session.add(account)
            session.flush()
        admin = User(
            account_id=account.id,
            email=email,
            full_name=full_name,
            password_hash=hash_password(password, auth=auth),
            role=Role.ADMIN,
        )
        session.add(admin)
    return Bootstrap(account=account, admin=admin, account_created=created)


def list_accounts(*, session: Session, actor: Actor, limit: int, offset: int) -> Page[Account]:
    """The caller's own account: a request acts inside exactly one."""
    account = get_account(session=session, actor=actor, account_id=actor.account_id)
    return Page(items=[account][offset : offset + limit], total=1, limit=limit, offset=offset)


def get_account(*, session: Session, actor: Actor, account_id: int) -> Account:
    account = session.get(Account, account_id) if account_id == actor.account_id else None
    if account is None:
        raise NotFound(f"account {account_id} not found")
    return account


def update_account(
    *, session: Session, actor: Actor, account_id: int, changes: Mapping[str, Any]
) -> Account:
    account = get_account(session=session, actor=actor, account_id=account_id)
    if changes.get("time_zone") is not None:
        check_time_zone(changes["time_zone"])
    with writing(session):
        apply_changes(account, changes, UPDATABLE)
    return account


def close_account(*, session: Session, actor: Actor, account_id: int) -> Account:
    """Archive: the account and its data stay, but nobody can sign in to it any more."""
    account = get_account(session=session, actor=actor, account_id=account_id)
    with writing(session):
        account.status = AccountStatus.CLOSED
    return account
