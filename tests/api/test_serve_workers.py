"""``adbot serve --workers N``: each worker on its own SO_REUSEPORT socket, connections shared
out by the kernel, signals passed on, a dead worker stops the service loudly."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from adbot.db import migrate
from process_helpers import spawned_children, wait_gone

ADBOT = str(Path(sys.executable).parent / "adbot")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(port: int, sock: socket.socket | None = None) -> bytes:
    own = sock is None
    sock = sock or socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
        return sock.recv(4096)
    finally:
        if own:
            sock.close()


def _held_connections(pids: list[int], port: int) -> dict[int, int]:
    """Established connections to ``port`` held by each pid."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as lines:
            for line in list(lines)[1:]:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "01":
                    inodes.add(fields[9])
    held = {}
    for pid in pids:
        count = 0
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                link = os.readlink(fd)
                count += link.startswith("socket:[") and link[8:-1] in inodes
        held[pid] = count
    return held


@pytest.fixture
def served(sqlite_url: str) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    migrate.upgrade(sqlite_url, "head")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADBOT_")}
    env |= {"ADBOT_DB__URL": sqlite_url, "ADBOT_LOG_LEVEL": "WARNING"}
    process = subprocess.Popen(
        [ADBOT, "serve", "--port", str(port), "--workers", "2"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while len(spawned_children(process.pid)) < 2 or not _answers(port):
            assert process.poll() is None, process.stdout.read() if process.stdout else b""
            assert time.monotonic() < deadline, "the server did not come up in 60 s"
            time.sleep(0.2)
        yield process, port
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)


def _answers(port: int) -> bool:
    try:
        return _get(port).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def test_connections_are_shared_by_the_workers_and_sigterm_stops_all(
    served: tuple[subprocess.Popen[bytes], int],
) -> None:
    process, port = served
    workers = spawned_children(process.pid)
    assert len(workers) == 2
    # Sixteen clients connecting at once: with one shared socket one worker tends to take
    # them all; with a socket each, the kernel hashes them over both (all on one: p ~ 3e-5).
    clients = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(16)]
    try:
        for client in clients:
            assert _get(port, client).startswith(b"HTTP/1.1 200")
        held = _held_connections(workers, port)
        assert sum(held.values()) == 16
        assert all(count > 0 for count in held.values()), held
    finally:
        for client in clients:
            client.close()
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers)


def test_a_worker_that_dies_stops_the_service_with_an_error(
    served: tuple[subprocess.Popen[bytes], int],
) -> None:
    process, port = served
    workers = spawned_children(process.pid)
    os.kill(workers[0], signal.SIGKILL)
    assert process.wait(timeout=30) == 1
    output = process.stdout.read().decode() if process.stdout else ""
    assert "a worker stopped on its own" in output
    assert "exit code -9" in output
    assert not _answers(port)


def test_a_port_another_server_holds_is_refused_in_one_line(
    served: tuple[subprocess.Popen[bytes], int], sqlite_url: str
) -> None:
    """A second multi-worker server on the same port must not silently share it."""
    _, port = served
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADBOT_")}
    env |= {"ADBOT_DB__URL": sqlite_url, "ADBOT_LOG_LEVEL": "WARNING"}
    second = subprocess.run(
        [ADBOT, "serve", "--port", str(port), "--workers", "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert second.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in second.stderr
    assert "Traceback" not in second.stderr
    assert _answers(port)  # the first server is untouched


def test_the_workers_stop_when_the_server_process_is_killed(
    served: tuple[subprocess.Popen[bytes], int],
) -> None:
    """SIGKILL (the OOM killer, ``kill -9``) gives the parent no chance to stop its workers;
    left running, they would keep the port, and a restarted service could not bind it."""
    process, port = served
    workers = spawned_children(process.pid)
    process.kill()
    process.wait(timeout=30)
    wait_gone(workers, 30, "the workers outlived their server")
    assert not _answers(port)


def test_every_log_line_is_json_on_stderr_without_query_strings(sqlite_url: str) -> None:
    """uvicorn's own logging wrote plain text, and its access log went to stdout with every
    query string in full (a token passed as ``?token=`` landed in the log)."""
    migrate.upgrade(sqlite_url, "head")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADBOT_")}
    env |= {"ADBOT_DB__URL": sqlite_url, "ADBOT_LOG_LEVEL": "INFO"}
    process = subprocess.Popen(
        [ADBOT, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while not _answers(port):
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"GET /healthz?token=secret123 HTTP/1.1\r\nHost: test\r\n\r\n")
            assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        time.sleep(0.5)  # the request's log line
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
    assert stdout == b""
    banner, *lines = stderr.decode().splitlines()
    assert banner.startswith("AdBot API on http://")  # the CLI's one line for a person
    records = [json.loads(line) for line in lines]  # every other line is JSON
    loggers = {record["logger"] for record in records}
    assert {"uvicorn.error", "adbot.api.access"} <= loggers
    assert any(record.get("path") == "/healthz" for record in records)
    assert "secret123" not in stderr.decode()
