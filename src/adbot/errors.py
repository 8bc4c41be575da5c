"""One error hierarchy for AdBot.

Services raise these; the API maps them to HTTP once (``api/errors.py``), the CLI prints
their message on one line and exits non-zero. ``code`` is a stable machine-readable id.
"""

from __future__ import annotations

from typing import Any


class AdbotError(Exception):
    """Base of every error AdBot raises on purpose."""

    code = "error"
    http_status = 500

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def __str__(self) -> str:
        return self.message


class ConfigError(AdbotError):
    """Settings that cannot be used (bad value, missing variable)."""

    code = "config_error"
    http_status = 500


class InvalidInput(AdbotError):
    """The caller sent something that breaks a rule; nothing was written."""

    code = "invalid_input"
    http_status = 422


class ScenarioError(InvalidInput):
    """A scenario file that does not follow MARKET.md."""

    code = "invalid_scenario"


class NotFound(AdbotError):
    """The row does not exist, or belongs to another account (never say which)."""

    code = "not_found"
    http_status = 404


class Conflict(AdbotError):
    """A unique natural key is already taken, or a state transition is not allowed."""

    code = "conflict"
    http_status = 409


class AuthenticationFailed(AdbotError):
    code = "unauthenticated"
    http_status = 401


class PermissionDenied(AdbotError):
    code = "forbidden"
    http_status = 403


class RateLimited(AdbotError):
    code = "rate_limited"
    http_status = 429

    def __init__(self, message: str, *, retry_after: int, details: Any = None) -> None:
        super().__init__(message, details=details)
        self.retry_after = retry_after


class PlatformError(AdbotError):
    """An ad platform refused or failed a call."""

    code = "platform_error"
    http_status = 502


class DatabaseUnavailable(AdbotError):
    """The configured database does not answer."""

    code = "database_unavailable"
    http_status = 503
