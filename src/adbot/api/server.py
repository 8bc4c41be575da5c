"""Running the API under uvicorn, with several worker processes sharing out connections evenly.

uvicorn's own multi-worker mode has every worker accept on one shared listening socket.
Each worker's event loop accepts everything queued when it wakes up, so clients that
connect together (a batch job, a load balancer's pool) tend to land on one worker while
the others idle: with keep-alive connections the imbalance lasts. Here each worker binds
its own socket to the same address with ``SO_REUSEPORT`` instead, and the kernel spreads
new connections over the workers by hashing each connection's addresses.

The parent only starts and watches the workers: a signal to it (Ctrl-C, ``SIGTERM`` from
an orchestrator) is passed on, and when a worker dies on its own the others are stopped and
the parent exits non-zero, so a supervisor (Docker's restart policy, systemd) restarts the
whole service instead of it running on quietly with fewer workers. A worker whose parent is
killed outright stops by itself.
"""

from __future__ import annotations

import multiprocessing
import signal
import socket
import time
from typing import Any

from adbot.errors import AdbotError
from adbot.processes import on_parent_exit

APP = "adbot.api.app:create_app"
BACKLOG = 2048  # uvicorn's default


class ServerStopped(AdbotError):
    """A worker process ended on its own."""

    code = "server_stopped"


def run(*, host: str, port: int, workers: int, log_level: str, reload: bool = False) -> None:
    """Serve the API on ``host:port`` with ``workers`` processes (one in-process server
    when ``workers`` is 1, when reloading, or where ``SO_REUSEPORT`` does not exist)."""
    import uvicorn

    options = _options(log_level)
    if workers <= 1 or reload or not hasattr(socket, "SO_REUSEPORT"):
        uvicorn.run(
            APP, host=host, port=port, workers=None if reload else workers, reload=reload, **options
        )
        return
    # A port already in use fails here, in one line. This probe does not share the port, so
    # it also fails when another `adbot serve --workers N` holds it (whose workers would
    # otherwise share connections with this one's without a word).
    _listener(host, port, share=False).close()
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(target=_worker, args=(host, port, options), name=f"adbot-api-{n}")
        for n in range(workers)
    ]
    for process in processes:
        process.start()
    stopping = False

    def stop(_signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True
        for process in processes:
            process.terminate()  # uvicorn shuts a worker down gracefully on SIGTERM

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stopping and all(process.is_alive() for process in processes):
            time.sleep(0.2)
        dead = [] if stopping else [p for p in processes if not p.is_alive()]
        for process in processes:
            process.terminate()
        for process in processes:
            process.join()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if dead:
        codes = ", ".join(f"{p.name} exit code {p.exitcode}" for p in dead)
        raise ServerStopped(f"a worker stopped on its own ({codes}); all workers were stopped")


def _options(log_level: str) -> dict[str, Any]:
    # uvicorn's logging left as ``adbot.observability`` sets it up (JSON on stderr): its own
    # config wrote plain text, its access log to stdout with every query string in full.
    return {
        "factory": True,
        "log_level": log_level,
        "proxy_headers": True,
        "access_log": False,
        "log_config": None,
    }


def _listener(host: str, port: int, *, share: bool = True) -> socket.socket:
    """A listening socket on ``host:port`` that the other workers may bind too
    (``SO_REUSEPORT``), or, with ``share=False``, only bound, and only if nobody holds it."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if share:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise AdbotError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    if share:
        sock.listen(BACKLOG)
    return sock


def _worker(host: str, port: int, options: dict[str, Any]) -> None:
    import uvicorn

    sock = _listener(host, port)
    server = uvicorn.Server(uvicorn.Config(APP, host=host, port=port, **options))
    _stop_with_parent(server)
    server.run(sockets=[sock])


def _stop_with_parent(server: Any) -> None:
    """Shut the worker down gracefully once its parent is gone. A parent killed outright
    (SIGKILL: the OOM killer, ``kill -9``) cannot stop its workers; left running, they would
    keep serving on the port, and the restarted service could not bind it."""
    on_parent_exit(lambda: setattr(server, "should_exit", True))
