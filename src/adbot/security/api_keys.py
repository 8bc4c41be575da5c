"""API keys ``adbot_<prefix>_<secret>``: shown once, stored as a SHA-256 hash.

Why SHA-256 and not argon2: the secret is 40 random alphanumerics (about 238 bits), so no
dictionary or brute-force attack on the hash is feasible, and a fast hash keeps the check
off the request's critical path. Slow hashes exist for low-entropy human passwords.
The public prefix finds the row; the comparison is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
from dataclasses import dataclass

KEY_PREFIX = "adbot"
PREFIX_LENGTH = 12
SECRET_LENGTH = 40
_PREFIX_ALPHABET = string.ascii_lowercase + string.digits
_SECRET_ALPHABET = string.ascii_letters + string.digits
_KEY_RE = re.compile(
    rf"^{KEY_PREFIX}_([a-z0-9]{{{PREFIX_LENGTH}}})_([A-Za-z0-9]{{{SECRET_LENGTH}}})$"
)


@dataclass(frozen=True)
class NewKey:
    prefix: str
    secret_hash: str
    plaintext: str


def generate_key() -> NewKey:
    prefix = "".join(secrets.choice(_PREFIX_ALPHABET) for _ in range(PREFIX_LENGTH))
    secret = "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(SECRET_LENGTH))
    return NewKey(
        prefix=prefix,
        secret_hash=hash_secret(prefix, secret),
        plaintext=f"{KEY_PREFIX}_{prefix}_{secret}",
    )


def parse_key(plaintext: str) -> tuple[str, str] | None:
    """``(prefix, secret)``, or None when the text is not shaped like an AdBot key."""
    match = _KEY_RE.match(plaintext)
    return (match.group(1), match.group(2)) if match else None


def hash_secret(prefix: str, secret: str) -> str:
    # The prefix is hashed too, so a stored hash cannot be moved to another row.
    return hashlib.sha256(f"{prefix}:{secret}".encode()).hexdigest()


def secret_matches(prefix: str, secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(prefix, secret), stored_hash)
