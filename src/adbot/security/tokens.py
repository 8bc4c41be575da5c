"""JWT access and refresh tokens (PyJWT), signed with ``settings.auth.secret_key``.

A token carries the user id, its kind and a fingerprint of the user's credentials (their
password hash and token generation), so changing the password or signing out everywhere (which
moves the generation on) invalidates every token issued before, with no token table. A
refresh token also names its sign-in session and its place in it (``sid``, ``seq``): each
refresh token is good for one refresh (``adbot.services.auth.refresh``).
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

import jwt

from adbot.config import AuthSettings
from adbot.errors import AuthenticationFailed

TokenKind = Literal["access", "refresh"]
_ISSUER = "adbot"


@dataclass(frozen=True)
class TokenClaims:
    user_id: int
    kind: TokenKind
    credential_fingerprint: str
    expires_at: datetime
    session_id: str | None = None  # a refresh token's sign-in session; None before rotation
    sequence: int = 0  # the refresh token's place in its session


@dataclass(frozen=True)
class RefreshPlace:
    """Where a refresh token stands: its sign-in session and its place in it."""

    session_id: str
    sequence: int


def credential_fingerprint(password_hash: str | None, token_generation: int) -> str:
    """What a token must match of its user: their password hash and token generation.
    Generation 0 gives the fingerprint of the password hash alone, as tokens issued before
    generations existed carry."""
    text = password_hash or ""
    if token_generation:
        text += f"\x00{token_generation}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def issue_token(
    *,
    user_id: int,
    fingerprint: str,
    kind: TokenKind,
    auth: AuthSettings,
    now: datetime | None = None,
    place: RefreshPlace | None = None,
) -> tuple[str, datetime]:
    """A signed token and its expiry time; ``fingerprint`` is the user's
    :func:`credential_fingerprint`, ``place`` a refresh token's session and sequence."""
    issued = now or datetime.now(UTC)
    lifetime = (
        timedelta(minutes=auth.token_minutes)
        if kind == "access"
        else timedelta(days=auth.refresh_days)
    )
    expires = issued + lifetime
    claims = {
        "iss": _ISSUER,
        "sub": str(user_id),
        "typ": kind,
        "pwf": fingerprint,
        "iat": issued,
        "exp": expires,
        "jti": uuid.uuid4().hex,
    }
    if place is not None:
        claims["sid"], claims["seq"] = place.session_id, place.sequence
    token = jwt.encode(claims, auth.secret_key.get_secret_value(), algorithm=auth.algorithm)
    return token, expires


_MAX_USER_ID = 2**63 - 1  # the largest integer the databases store
_SESSION_ID = re.compile(r"[0-9a-f]{32}")  # uuid4().hex, as sessions and jti are made
_MAX_SEQUENCE = 2**53  # exact in every JSON reader


def decode_token(token: str, *, kind: TokenKind, auth: AuthSettings) -> TokenClaims:
    """Verified claims; a bad signature, expiry or the wrong kind is ``AuthenticationFailed``."""
    try:
        claims = jwt.decode(
            token,
            auth.secret_key.get_secret_value(),
            algorithms=[auth.algorithm],
            issuer=_ISSUER,
            options={"require": ["exp", "iat", "sub", "typ", "pwf"]},
        )
    except jwt.ExpiredSignatureError:
        raise AuthenticationFailed("token has expired") from None
    except jwt.PyJWTError:
        raise AuthenticationFailed("invalid token") from None
    if claims.get("typ") != kind:
        raise AuthenticationFailed(
            "expected an access token" if kind == "access" else "expected a refresh token"
        )
    # Claims a signed token may still hold out of range (only the key's holder can sign one,
    # but a 500 is no answer): a user id past what the database holds (SQLite raised
    # OverflowError) or an expiry past the calendar (1e30 seconds).
    try:
        user_id = int(claims["sub"])
        expires_at = datetime.fromtimestamp(int(claims["exp"]), UTC)
        session_id = claims.get("sid")
        sequence = claims.get("seq", 0)
    except (TypeError, ValueError, OverflowError, OSError):
        raise AuthenticationFailed("invalid token") from None
    if not 0 < user_id <= _MAX_USER_ID:
        raise AuthenticationFailed("invalid token")
    if session_id is not None and not (
        isinstance(session_id, str)
        and _SESSION_ID.fullmatch(session_id)
        and type(sequence) is int
        and 0 <= sequence <= _MAX_SEQUENCE
    ):
        raise AuthenticationFailed("invalid token")
    return TokenClaims(
        user_id=user_id,
        kind=kind,
        credential_fingerprint=str(claims["pwf"]),
        expires_at=expires_at,
        session_id=session_id,
        sequence=sequence,
    )
