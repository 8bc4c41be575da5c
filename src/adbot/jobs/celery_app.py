"""The Celery application.

With ``ADBOT_JOBS__BROKER_URL`` unset (the embedded default) tasks run eagerly in the
calling process, so the CLI and tests need no broker; with it set, workers on any machine
that reaches the broker pick them up.
"""

from __future__ import annotations

from celery import Celery

from adbot.config import Settings, get_settings


def create_celery(settings: Settings | None = None) -> Celery:
    settings = settings or get_settings()
    broker = settings.jobs.broker_url
    celery = Celery("adbot", broker=broker or "memory://", backend=None)
    celery.conf.update(
        task_always_eager=broker is None,
        task_eager_propagates=True,
        task_acks_late=True,
        worker_prefetch_multiplier=1,
        task_serializer="json",
        accept_content=["json"],
        timezone="UTC",
        enable_utc=True,
    )
    return celery


celery_app = create_celery()
