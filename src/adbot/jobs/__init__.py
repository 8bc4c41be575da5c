"""Background jobs: Celery on Redis in production, inline in the calling process by default."""
