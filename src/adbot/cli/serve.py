"""``adbot serve``: the REST API (and dashboard) with uvicorn, on ``settings.api`` by default."""

from __future__ import annotations

import typer

from adbot.api import server
from adbot.cli._console import err
from adbot.cli._options import check_range
from adbot.config import get_settings, mask_url
from adbot.db.migrate import require_current_schema
from adbot.observability import configure_logging


def serve(
    host: str | None = typer.Option(None, "--host", help="Interface (default: settings api.host)."),
    port: int | None = typer.Option(
        None, "--port", help="Port (1 to 65535; default: settings api port, 7502)."
    ),
    workers: int = typer.Option(1, "--workers", help="Worker processes (1 to 64)."),
    reload: bool = typer.Option(False, "--reload", help="Restart on code changes (development)."),
) -> None:
    """Serve the REST API under /api/v1, with /docs and /openapi.json."""
    check_range("--port", port, 1, 65535)
    check_range("--workers", workers, 1, 64)
    settings = get_settings()
    require_current_schema()
    bind_host = host or settings.api.host
    bind_port = port or settings.api_port
    err.print(
        f"AdBot API on http://{bind_host}:{bind_port} (docs at /docs), "
        f"database {mask_url(settings.db.url)}",
        highlight=False,
        soft_wrap=True,
    )
    configure_logging(settings.log_level)  # uvicorn's lines of this process as JSON too
    server.run(
        host=bind_host,
        port=bind_port,
        workers=workers,
        log_level=settings.log_level.lower(),
        reload=reload,
    )
