"""Authentication: password login, token refresh, and turning a token or API key into an
``Actor``. Disabled users, inactive accounts, revoked or expired keys are refused here.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from adbot.config import AuthSettings
from adbot.db.models import Account, AccountStatus, ApiKey, User
from adbot.errors import AuthenticationFailed, InvalidInput
from adbot.security.api_keys import parse_key, secret_matches
from adbot.security.passwords import check_password_length, hash_password, verify_password
from adbot.security.tokens import (
    RefreshPlace,
    TokenClaims,
    credential_fingerprint,
    decode_token,
    issue_token,
)
from adbot.services.common import ROLE_SCOPES, Actor, Scope, writing
from adbot.services.principals import (
    CREDENTIALS_UNCHANGED,
    KeyPrincipal,
    PrincipalCache,
    UserPrincipal,
)

# last_used_at is for people deciding which keys are stale; minute precision is plenty and
# spares a write on every request.
LAST_USED_RESOLUTION = timedelta(minutes=1)
REVOKED_TOKEN = "token was revoked: a password change or a sign-out everywhere since it was issued"
REUSED_REFRESH = (
    "refresh token was already used: its session is signed out (a copy of it may have leaked); "
    "sign in again"
)
SIGNED_OUT_BY_REUSE = (
    "refresh token's session was signed out: one of its earlier refresh tokens was used again "
    "(a copy may have leaked); sign in again"
)
ENDED_SESSION = (
    "refresh token's session has ended (signed out, expired, or replaced by newer sign-ins); "
    "sign in again"
)
# Live sign-in sessions kept per user (refresh_sessions): a new sign-in past it ends the one
# whose refresh token expires first. A script that signs in at every run instead of refreshing
# would otherwise grow the row without bound.
MAX_SESSIONS = 100
ENDED = -1  # the sequence of a session ended by a reused token: no token of it matches
UNROTATED_REFRESH = (
    "refresh token is from before refresh tokens rotated (migration 0004): sign in again"
)


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
    _check_active(user.is_active, account_status)
    with writing(session):
        user = _load_active_user(session, user.id, lock=True)  # its sessions, one at a time
        user.last_login_at = datetime.now(UTC)
        return _start_session(user, auth)


def refresh(*, session: Session, refresh_token: str, auth: AuthSettings) -> TokenPair:
    """The next pair of the refresh token's sign-in session. Each refresh token is good for
    one refresh: the session keeps the sequence of its one valid token, and an earlier one
    used again (a copy that leaked, or the user's own after a thief refreshed first) ends the
    session, so whoever holds its newest token must sign in again too. An ended session stays
    recorded (sequence ``ENDED``) until its last token would have expired. A refresh token
    issued before sessions existed (no ``sid``) is refused: nothing records its use, so it
    could not be held to one."""
    claims = decode_token(refresh_token, kind="refresh", auth=auth)
    if claims.session_id is None:
        raise AuthenticationFailed(UNROTATED_REFRESH)
    session_id, sequence = claims.session_id, claims.sequence
    with writing(session):
        # Locked: two refreshes of one token at once take turns, and the second sees the first.
        user = _user_for_claims(session, claims.user_id, claims.credential_fingerprint, lock=True)
        sessions = _live_sessions(user.refresh_sessions)
        current = sessions.get(session_id)
        if current is not None and current[0] == sequence:
            place = RefreshPlace(session_id, sequence + 1)
            pair = _issue_pair(user, auth, place)
            user.refresh_sessions = _with_session(sessions, place, pair.refresh_expires_at)
            return pair
        if current is None:
            raise AuthenticationFailed(ENDED_SESSION)
        if current[0] == ENDED:
            raise AuthenticationFailed(SIGNED_OUT_BY_REUSE)
        last_expiry = max(current[1], _millis(claims.expires_at))
        user.refresh_sessions = {**sessions, session_id: [ENDED, last_expiry]}
    raise AuthenticationFailed(REUSED_REFRESH)  # after the unit: the session's end is kept


def actor_from_token(
    *, session: Session, token: str, auth: AuthSettings, principals: PrincipalCache | None = None
) -> Actor:
    """The user of an access token, read from the database (and then kept in ``principals``)."""
    if principals is None:
        claims = decode_token(token, kind="access", auth=auth)
    else:
        claims = principals.access_claims(token, auth)
    version = principals.version if principals is not None else 0
    principal = _user_principal(session, claims.user_id)
    if principals is not None:
        principals.put_user(principal, version=version)
    return _actor_for_user(principal, claims)


def cached_actor_from_token(
    *, token: str, auth: AuthSettings, principals: PrincipalCache
) -> Actor | None:
    """The user of an access token from the cache, without the database; None when the
    user is not cached (then ``actor_from_token``). Refusals are the same as there.
    """
    claims = principals.access_claims(token, auth)
    principal = principals.user(claims.user_id)
    return None if principal is None else _actor_for_user(principal, claims)


def actor_from_api_key(
    *, session: Session, key: str, principals: PrincipalCache | None = None
) -> Actor:
    """The caller of an API key, read from the database (and then kept in ``principals``);
    records the key's use (``last_used_at``) at most once a minute.
    """
    prefix, secret = _parse_api_key(key)
    version = principals.version if principals is not None else 0
    principal = _key_principal(session, prefix)
    if principal is None or not secret_matches(prefix, secret, principal.secret_hash):
        raise AuthenticationFailed("invalid API key")
    now = datetime.now(UTC)
    actor = _actor_for_key(principal, now)
    if _use_due(principal, now):
        with writing(session):
            session.execute(
                update(ApiKey)
                .where(ApiKey.id == principal.api_key_id)
                .values(last_used_at=now)
                .execution_options(**{CREDENTIALS_UNCHANGED: True})
            )
        principal = replace(principal, last_used_at=now)
    if principals is not None:
        principals.put_key(principal, version=version)
    return actor


def cached_actor_from_api_key(*, key: str, principals: PrincipalCache) -> Actor | None:
    """The caller of an API key from the cache; None when the key is not cached or its use
    is due to be recorded (then ``actor_from_api_key``).
    """
    prefix, secret = _parse_api_key(key)
    principal = principals.key(prefix)
    if principal is None:
        return None
    if not secret_matches(prefix, secret, principal.secret_hash):
        raise AuthenticationFailed("invalid API key")
    now = datetime.now(UTC)
    actor = _actor_for_key(principal, now)
    if _use_due(principal, now) and principals.claim_touch(
        principal.api_key_id, every=LAST_USED_RESOLUTION.total_seconds()
    ):
        return None
    return actor


def _use_due(principal: KeyPrincipal, now: datetime) -> bool:
    last_used = principal.last_used_at
    return last_used is None or now - last_used >= LAST_USED_RESOLUTION


def _parse_api_key(key: str) -> tuple[str, str]:
    parsed = parse_key(key.strip())
    if parsed is None:
        raise AuthenticationFailed("invalid API key")
    return parsed


def _actor_for_user(principal: UserPrincipal, claims: TokenClaims) -> Actor:
    _check_active(principal.is_active, principal.account_status)
    if principal.credential_fingerprint != claims.credential_fingerprint:
        raise AuthenticationFailed(REVOKED_TOKEN)
    return Actor(
        account_id=principal.account_id,
        user_id=principal.user_id,
        role=principal.role,
        scopes=ROLE_SCOPES[principal.role],
    )


def _actor_for_key(principal: KeyPrincipal, now: datetime) -> Actor:
    if principal.revoked_at is not None:
        raise AuthenticationFailed("API key has been revoked")
    if principal.expires_at is not None and principal.expires_at <= now:
        raise AuthenticationFailed("API key has expired")
    scopes = principal.scopes
    role = None
    if principal.owner is not None:
        _check_active(principal.owner.is_active, principal.owner.account_status)
        role = principal.owner.role
        scopes &= ROLE_SCOPES[role]
    elif principal.account_status != AccountStatus.ACTIVE:
        raise AuthenticationFailed(f"account is {principal.account_status}")
    return Actor(
        account_id=principal.account_id,
        user_id=principal.owner.user_id if principal.owner is not None else None,
        role=role,
        scopes=scopes,
        api_key_id=principal.api_key_id,
    )


def _user_principal(session: Session, user_id: int) -> UserPrincipal:
    user, status = _user_row(session, user_id)
    return UserPrincipal(
        user_id=user.id,
        account_id=user.account_id,
        role=user.role,
        is_active=user.is_active,
        account_status=status,
        credential_fingerprint=_fingerprint(user),
    )


def _user_row(session: Session, user_id: int, *, lock: bool = False) -> tuple[User, AccountStatus]:
    """The user and its account's status; with ``lock``, the user's row read afresh and
    locked until the unit ends (``FOR UPDATE`` on PostgreSQL; SQLite writes one
    transaction at a time anyway)."""
    query = (
        select(User, Account.status)
        .join(Account, Account.id == User.account_id)
        .where(User.id == user_id)
    )
    if lock:
        query = query.with_for_update(of=User).execution_options(populate_existing=True)
    row = session.execute(query).first()
    if row is None:
        raise AuthenticationFailed("invalid token")
    return row[0], row[1]


def _key_principal(session: Session, prefix: str) -> KeyPrincipal | None:
    row = session.execute(
        select(ApiKey, Account.status)
        .join(Account, Account.id == ApiKey.account_id)
        .where(ApiKey.prefix == prefix)
    ).first()
    if row is None:
        return None
    api_key, status = row[0], row[1]
    owner = _user_principal(session, api_key.user_id) if api_key.user_id is not None else None
    return KeyPrincipal(
        api_key_id=api_key.id,
        prefix=api_key.prefix,
        secret_hash=api_key.secret_hash,
        account_id=api_key.account_id,
        account_status=status,
        scopes=frozenset(Scope(scope) for scope in api_key.scopes),
        revoked_at=api_key.revoked_at,
        expires_at=api_key.expires_at,
        last_used_at=api_key.last_used_at,
        owner=owner,
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
        user = _load_active_user(session, user.id, lock=True)
        user.password_hash = hash_password(new_password, auth=auth)
        user.refresh_sessions = {}  # every session's tokens stopped with the old password
        return _start_session(user, auth)


def sign_out_everywhere(*, session: Session, actor: Actor) -> None:
    """End every session of the signed-in user: each access and refresh token issued to them
    so far stops working (their API keys are separate: revoke those one by one)."""
    if actor.api_key_id is not None:
        raise InvalidInput(
            "sign out with a token, not an API key: a key has no sessions (revoke the key itself)"
        )
    assert actor.user_id is not None  # a token is always a user's
    _load_active_user(session, actor.user_id)
    with writing(session):
        # Counted in SQL, so two sign-outs at once both count.
        session.execute(
            update(User)
            .where(User.id == actor.user_id)
            .values(token_generation=User.token_generation + 1, refresh_sessions={})
        )


def _issue_pair(user: User, auth: AuthSettings, place: RefreshPlace) -> TokenPair:
    fingerprint = _fingerprint(user)
    access, access_expires = issue_token(
        user_id=user.id, fingerprint=fingerprint, kind="access", auth=auth
    )
    refresh_token, refresh_expires = issue_token(
        user_id=user.id, fingerprint=fingerprint, kind="refresh", auth=auth, place=place
    )
    return TokenPair(access, access_expires, refresh_token, refresh_expires)


def _start_session(user: User, auth: AuthSettings) -> TokenPair:
    """A pair for a new sign-in session, recorded on ``user`` (inside the caller's unit)."""
    place = RefreshPlace(uuid.uuid4().hex, 0)
    pair = _issue_pair(user, auth, place)
    sessions = _live_sessions(user.refresh_sessions)
    user.refresh_sessions = _with_session(sessions, place, pair.refresh_expires_at)
    return pair


def _live_sessions(stored: dict[str, list[int]] | None) -> dict[str, list[int]]:
    """A copy of the stored sessions without those whose refresh token has expired."""
    now = _millis(datetime.now(UTC))
    return {sid: list(entry) for sid, entry in (stored or {}).items() if entry[1] > now}


def _with_session(
    sessions: dict[str, list[int]], place: RefreshPlace, expires: datetime
) -> dict[str, list[int]]:
    """``sessions`` with ``place`` as its session's valid token, at most ``MAX_SESSIONS``
    (those whose tokens expire first go)."""
    sessions = {**sessions, place.session_id: [place.sequence, _millis(expires)]}
    if len(sessions) > MAX_SESSIONS:
        # By expiry, then id: the stored order is lost (PostgreSQL's JSONB sorts the keys).
        kept = sorted(sessions.items(), key=lambda item: (item[1][1], item[0]))[-MAX_SESSIONS:]
        sessions = dict(kept)
    return sessions


def _millis(moment: datetime) -> int:
    """A moment as whole milliseconds of Unix time: sign-ins a second apart stay in order."""
    return int(moment.timestamp() * 1000)


def _fingerprint(user: User) -> str:
    return credential_fingerprint(user.password_hash, user.token_generation)


def _user_for_claims(
    session: Session, user_id: int, fingerprint: str, *, lock: bool = False
) -> User:
    user = _load_active_user(session, user_id, lock=lock)
    if _fingerprint(user) != fingerprint:
        raise AuthenticationFailed(REVOKED_TOKEN)
    return user


def _load_active_user(session: Session, user_id: int, *, lock: bool = False) -> User:
    user, status = _user_row(session, user_id, lock=lock)
    _check_active(user.is_active, status)
    return user


def _check_active(is_active: bool, account_status: AccountStatus | None) -> None:
    if not is_active:
        raise AuthenticationFailed("user is disabled")
    if account_status != AccountStatus.ACTIVE:
        raise AuthenticationFailed(f"account is {account_status}")
