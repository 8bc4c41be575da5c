"""Structured logs and Prometheus metrics, shared by the API and the CLI.

Logs: structlog, one JSON object per line on stderr, with ``timestamp`` (UTC ISO 8601),
``level``, ``logger``, ``event`` and whatever is bound to the context, such as the
``request_id`` of the request being served. Standard-library records of the ``adbot``
loggers are rendered the same way.

Metrics: the process's default Prometheus registry, exposed by the API at ``/metrics``.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog
from prometheus_client import Counter, Histogram

HTTP_REQUESTS = Counter(
    "adbot_http_requests",
    "HTTP requests answered, by method, route template and status code.",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "adbot_http_request_duration_seconds",
    "Time to answer an HTTP request, by method and route template.",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
ROWS_INGESTED = Counter(
    "adbot_ingest_rows_accepted",
    "Ingested rows that passed the checks and were upserted, by kind.",
    ["kind"],
)
ROWS_REJECTED = Counter(
    "adbot_ingest_rows_rejected",
    "Ingested rows refused by the per-row checks, by kind.",
    ["kind"],
)
RATE_LIMITED = Counter(
    "adbot_rate_limited_requests",
    "Requests refused with 429 by the rate limiter.",
)

_SHARED: list[Any] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
]


class _StderrHandler(logging.StreamHandler):
    """Writes to the *current* ``sys.stderr`` (which test runners swap per test)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def configure_logging(level: str = "INFO") -> None:
    """JSON lines on stderr for structlog, the ``adbot`` standard loggers and uvicorn's own
    (its start-up and shutdown lines; its access log is off, ``adbot.api.server``: the
    middleware logs every request as JSON, without the query string). Idempotent."""
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,  # below the level: drop before any work
            *_SHARED,
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    for name in ("adbot", "uvicorn"):
        logger = logging.getLogger(name)
        logger.setLevel(level)
        if not any(isinstance(handler, _StderrHandler) for handler in logger.handlers):
            logger.addHandler(_json_handler())


def _json_handler() -> logging.Handler:
    handler = _StderrHandler()
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                structlog.processors.JSONRenderer(),
            ],
            foreign_pre_chain=_SHARED,
        )
    )
    return handler
