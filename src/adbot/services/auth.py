"""Authentication: password login, token refresh, and turning a token or API key into an
``Actor``. Disabled users, inactive accounts, revoked or expired keys are refused here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from adbot.config import AuthSettings
from adbot.db.models import Account, AccountStatus, ApiKey, User
from adbot.errors import AuthenticationFailed, InvalidInput
from adbot.security.api_keys import parse_key, secret_matches
from adbot.security.passwords import check_password_length, hash_password, verify_password
from adbot.security.tokens import decode_token, issue_token, password_fingerprint
from adbot.services.common import ROLE_SCOPES, Actor, Scope, writing

# last_used_at is for people deciding which keys are stale; minute precision is plenty and
# spares a write on every request.
LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    access_expires_at: datetime
    refresh_token: str
    refresh_expires_at: datetime


def login(*, session: Session, email: str, password: str, auth: AuthSettings) -> TokenPair:
    """Tokens for a user whose password matches; the same answer for unknown email and
    wrong password, so the endpoint does not reveal which emails exist.
    """
    row = session.execute(
        select(User, Account.status)
        .join(Account, Account.id == User.account_id)
        .where(User.email == email.strip().lower())
    ).first()
    user, account_status = (row[0], row[1]) if row else (None, None)
    if not verify_password(password, user.password_hash if user else None, auth=auth):
        raise AuthenticationFailed("incorrect email or password")
    assert user is not None
    _check_active(user, account_status)
    with writing(session):
        user.last_login_at = datetime.now(UTC)
    return _issue_pair(user, auth)


def refresh(*, session: Session, refresh_token: str, auth: AuthSettings) -> TokenPair:
    claims = decode_token(refresh_token, kind="refresh", auth=auth)
    user = _user_for_claims(session, claims.user_id, claims.password_fingerprint)
    return _issue_pair(user, auth)


def actor_from_token(*, session: Session, token: str, auth: AuthSettings) -> Actor:
    claims = decode_token(token, kind="access", auth=auth)
    user = _user_for_claims(session, claims.user_id, claims.password_fingerprint)
    return Actor(
        account_id=user.account_id,
        user_id=user.id,
        role=user.role,
        scopes=ROLE_SCOPES[user.role],
    )


def actor_from_api_key(*, session: Session, key: str) -> Actor:
    parsed = parse_key(key.strip())
    if parsed is None:
        raise AuthenticationFailed("invalid API key")
    prefix, secret = parsed
    api_key = session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
    if api_key is None or not secret_matches(prefix, secret, api_key.secret_hash):
        raise AuthenticationFailed("invalid API key")
    now = datetime.now(UTC)
    if api_key.revoked_at is not None:
        raise AuthenticationFailed("API key has been revoked")
    if api_key.expires_at is not None and api_key.expires_at <= now:
        raise AuthenticationFailed("API key has expired")
    scopes = frozenset(Scope(scope) for scope in api_key.scopes)
    role = None
    if api_key.user_id is not None:
        user = _load_active_user(session, api_key.user_id)
        role = user.role
        scopes &= ROLE_SCOPES[user.role]
    else:
        _check_account_active(session, api_key.account_id)
    _touch(session, api_key, now)
    return Actor(
        account_id=api_key.account_id,
        user_id=api_key.user_id,
        role=role,
        scopes=scopes,
        api_key_id=api_key.id,
    )


def change_password(
    *,
    session: Session,
    actor: Actor,
    current_password: str,
    new_password: str,
    auth: AuthSettings,
) -> TokenPair:
    """Set a new password; tokens issued before stop working, fresh ones are returned."""
    if actor.user_id is None:
        raise InvalidInput("a service API key has no password")
    user = _load_active_user(session, actor.user_id)
    if not verify_password(current_password, user.password_hash, auth=auth):
        raise AuthenticationFailed("current password is incorrect")
    check_password_length(new_password)
    with writing(session):
        user.password_hash = hash_password(new_password, auth=auth)
    return _issue_pair(user, auth)


def _issue_pair(user: User, auth: AuthSettings) -> TokenPair:
    access, access_expires = issue_token(
        user_id=user.id, password_hash=user.password_hash, kind="access", auth=auth
    )
    refresh_token, refresh_expires = issue_token(
        user_id=user.id, password_hash=user.password_hash, kind="refresh", auth=auth
    )
    return TokenPair(access, access_expires, refresh_token, refresh_expires)


def _user_for_claims(session: Session, user_id: int, fingerprint: str) -> User:
    user = _load_active_user(session, user_id)
    if password_fingerprint(user.password_hash) != fingerprint:
        raise AuthenticationFailed("token was issued before a password change")
    return user


def _load_active_user(session: Session, user_id: int) -> User:
    row = session.execute(
        select(User, Account.status)
        .join(Account, Account.id == User.account_id)
        .where(User.id == user_id)
    ).first()
    if row is None:
        raise AuthenticationFailed("invalid token")
    user, status = row[0], row[1]
    _check_active(user, status)
    return user


def _check_active(user: User, account_status: AccountStatus | None) -> None:
    if not user.is_active:
        raise AuthenticationFailed("user is disabled")
    if account_status != AccountStatus.ACTIVE:
        raise AuthenticationFailed(f"account is {account_status}")


def _check_account_active(session: Session, account_id: int) -> None:
    status = session.scalar(select(Account.status).where(Account.id == account_id))
    if status != AccountStatus.ACTIVE:
        raise AuthenticationFailed(f"account is {status}")


def _touch(session: Session, api_key: ApiKey, now: datetime) -> None:
    if api_key.last_used_at is not None and now - api_key.last_used_at < LAST_USED_RESOLUTION:
        return
    with writing(session):
        session.execute(update(ApiKey).where(ApiKey.id == api_key.id).values(last_used_at=now))
