"""Password hashing with argon2id (argon2-cffi), cost taken from ``settings.auth``."""

from __future__ import annotations

from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from adbot.config import AuthSettings
from adbot.errors import InvalidInput

MIN_PASSWORD_LENGTH = 12
# argon2 accepts any length; a cap keeps one request from buying seconds of CPU.
MAX_PASSWORD_LENGTH = 256


def check_password_length(password: str) -> None:
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise InvalidInput(
            f"a password has {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters",
            details={"field": "password"},
        )


@lru_cache(maxsize=4)
def _hasher(time_cost: int, memory_kib: int, parallelism: int) -> PasswordHasher:
    return PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism)


def hasher_for(auth: AuthSettings) -> PasswordHasher:
    return _hasher(auth.password_time_cost, auth.password_memory_kib, auth.password_parallelism)


def hash_password(password: str, *, auth: AuthSettings) -> str:
    return hasher_for(auth).hash(password)


def verify_password(password: str, password_hash: str | None, *, auth: AuthSettings) -> bool:
    """True when ``password`` matches. A missing hash still costs one verification, so the
    answer for an unknown user takes as long as for a wrong password.
    """
    matches: bool
    try:
        matches = hasher_for(auth).verify(password_hash or _dummy_hash(auth), password)
    except (VerificationError, InvalidHashError):
        matches = False
    return matches and password_hash is not None


def _dummy_hash(auth: AuthSettings) -> str:
    return _dummy(auth.password_time_cost, auth.password_memory_kib, auth.password_parallelism)


@lru_cache(maxsize=4)
def _dummy(time_cost: int, memory_kib: int, parallelism: int) -> str:
    return _hasher(time_cost, memory_kib, parallelism).hash("timing-equaliser")
