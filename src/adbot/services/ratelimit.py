"""Request rate limits per caller, kept in Redis, with an in-process fallback.

Fixed windows of ``window`` seconds: one Redis key per (caller, window), incremented and
given its expiry by one Lua script, so every API process shares the count. When Redis
does not answer, each process keeps counting in its own memory (limits become per
process, which is degraded but safe), logs one warning for the outage, and tries Redis
again every few seconds. ``RedisHealth`` is the shared "is Redis usable" state that the
readiness probe and the report cache read too.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import redis
import redis.asyncio as aredis
import structlog

from adbot.errors import RateLimited

log = structlog.get_logger("adbot.ratelimit")

RedisState = Literal["ok", "degraded", "disabled"]
# Short timeouts: a limiter that waits for a dead Redis would be an outage of its own. A
# refused or unanswered connection fails fast; a reply gets longer, as a busy host (not a
# dead Redis) is the usual reason for a slow one.
CONNECT_TIMEOUT_SECONDS = 0.25
REPLY_TIMEOUT_SECONDS = 1.0
RETRY_SECONDS = 5.0
_KEY_PREFIX = "adbot:ratelimit"
# KEYS[1]: the caller's counter of this window; ARGV[1]: window length in milliseconds.
_INCREMENT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return {count, redis.call('PTTL', KEYS[1])}
"""


class RedisHealth:
    """Whether Redis is configured and answering, shared by every Redis user of a process.

    After a failure Redis is skipped for ``retry_seconds``; the first failure of an outage
    logs one warning, the first success after it one info line.
    """

    def __init__(
        self,
        url: str | None,
        *,
        retry_seconds: float = RETRY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self.retry_seconds = retry_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._down = False
        self._skip_until = 0.0

    @property
    def configured(self) -> bool:
        return self.url is not None

    def usable(self) -> bool:
        return self.configured and self._clock() >= self._skip_until

    def state(self) -> RedisState:
        if not self.configured:
            return "disabled"
        return "degraded" if self._down else "ok"

    def failed(self, exc: BaseException) -> None:
        with self._lock:
            self._skip_until = self._clock() + self.retry_seconds
            if self._down:
                return
            self._down = True
        log.warning(
            "redis unavailable: rate limits fall back to this process, report cache off",
            error=type(exc).__name__,
            detail=str(exc).splitlines()[0] if str(exc) else "",
            retry_seconds=self.retry_seconds,
        )

    def succeeded(self) -> None:
        if not self._down:
            return
        with self._lock:
            if not self._down:
                return
            self._down = False
        log.info("redis reachable again: rate limits and report cache use it")


def sync_client(url: str) -> redis.Redis:
    return redis.Redis.from_url(
        url,
        socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
        socket_timeout=REPLY_TIMEOUT_SECONDS,
        decode_responses=False,
    )


def async_client(url: str) -> aredis.Redis:
    return aredis.Redis.from_url(
        url,
        socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
        socket_timeout=REPLY_TIMEOUT_SECONDS,
    )


@dataclass(frozen=True)
class Allowance:
    """The outcome of counting one request: the count so far in this window."""

    limit: int
    count: int
    reset_seconds: float

    @property
    def allowed(self) -> bool:
        return self.count <= self.limit

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.count)

    @property
    def retry_after(self) -> int:
        """Whole seconds until the window ends (at least 1), for ``Retry-After``."""
        return max(1, math.ceil(self.reset_seconds))

    def raise_if_exceeded(self) -> None:
        if not self.allowed:
            raise RateLimited(
                f"rate limit of {self.limit} requests per window exceeded; "
                f"retry in {self.retry_after} s",
                retry_after=self.retry_after,
                details={"limit": self.limit, "retry_after": self.retry_after},
            )


class LocalCounter:
    """Fixed-window counts in this process's memory (the fallback, and Redis-less mode)."""

    def __init__(self, window: float, clock: Callable[[], float] = time.time) -> None:
        self.window = window
        self._clock = clock
        self._lock = threading.Lock()
        self._current = -1
        self._counts: dict[str, int] = {}

    def hit(self, identity: str, limit: int) -> Allowance:
        now = self._clock()
        index = int(now // self.window)
        with self._lock:
            if index != self._current:  # a new window: every old count is stale
                self._current = index
                self._counts = {}
            count = self._counts.get(identity, 0) + 1
            self._counts[identity] = count
        return Allowance(limit, count, (index + 1) * self.window - now)


class RateLimiter:
    """Counts requests per caller identity in Redis, or locally while Redis is away."""

    def __init__(
        self,
        *,
        limit: int,
        window: float,
        health: RedisHealth,
        client: aredis.Redis | None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.limit = limit
        self.window = window
        self.health = health
        self.client = client
        self._clock = clock
        self.local = LocalCounter(window, clock)
        self._script = client.register_script(_INCREMENT) if client is not None else None

    async def hit(self, identity: str) -> Allowance:
        if self._script is not None and self.health.usable():
            try:
                allowance = await self._redis_hit(identity)
            except (redis.RedisError, OSError) as exc:
                self.health.failed(exc)
            else:
                self.health.succeeded()
                return allowance
        return self.local.hit(identity, self.limit)

    async def _redis_hit(self, identity: str) -> Allowance:
        assert self._script is not None
        window_ms = int(self.window * 1000)
        index = int(self._clock() * 1000 // window_ms)
        key = f"{_KEY_PREFIX}:{identity}:{index}"
        count, ttl_ms = await self._script(keys=[key], args=[window_ms])
        ttl = window_ms if int(ttl_ms) < 0 else int(ttl_ms)
        return Allowance(self.limit, int(count), ttl / 1000)

    async def close(self) -> None:
        if self.client is not None:
            await self.client.aclose()
