"""Where one API request's time goes, in process: the app driven through httpx's ASGI
transport (no sockets, no HTTP parsing), one request at a time.

``python benchmarks/api_profile.py [--rows 20000] [--requests 2000] [--profile]``
seeds a small database like ``benchmarks/api.py`` (a cached report costs the same over
20,000 rows as over 1,000,000), signs in, then times, per request (mean of ``--requests``):

- ``/healthz``: middleware, routing and an unauthenticated route;
- ``/api/v1/auth/me`` by bearer token and by API key: the above plus authentication;
- the campaign/day report, cached: the above plus the report cache and the response.

``--profile`` adds a cProfile of the cached reports (top functions by own time). The
differences between the lines are the cost of each layer.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))

from adbot.api.app import create_app
from adbot.config import load_settings
from api import EMAIL, PASSWORD, REPORT, bench_world

REDIS_DB = 10


async def mean_ms(
    client: httpx.AsyncClient, path: str, headers: dict[str, str], n: int
) -> tuple[float, float]:
    """Mean wall time and CPU time (this process, every thread) per request, in ms."""
    for _ in range(20):  # warm-up: pool, caches
        response = await client.get(path, headers=headers)
        if response.status_code != 200:
            raise SystemExit(f"{path}: {response.status_code} {response.text[:300]}")
    started = time.perf_counter()
    cpu = time.process_time()
    for _ in range(n):
        await client.get(path, headers=headers)
    cpu = time.process_time() - cpu
    return (time.perf_counter() - started) / n * 1000, cpu / n * 1000


async def measure(db_url: str, redis_url: str, first: str, last: str, args: argparse.Namespace):
    settings = load_settings(
        db={"url": db_url},
        redis={"url": redis_url},
        api={"rate_limit_per_minute": 100_000_000},
        log_level=args.log_level,
        auth={"password_time_cost": 1, "password_memory_kib": 64},
    )
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://bench") as client,
    ):
        form = {"username": EMAIL, "password": PASSWORD}
        token = (await client.post("/api/v1/auth/token", data=form)).json()["access_token"]
        bearer = {"Authorization": f"Bearer {token}"}
        made = await client.post(
            "/api/v1/api-keys", json={"name": "bench", "scopes": ["read"]}, headers=bearer
        )
        api_key = {"X-API-Key": made.json()["key"]}
        report = REPORT.format(start=first, end=last)
        n = args.requests
        lines = [
            ("/healthz", await mean_ms(client, "/healthz", {}, n)),
            ("/api/v1/auth/me, bearer", await mean_ms(client, "/api/v1/auth/me", bearer, n)),
            ("/api/v1/auth/me, API key", await mean_ms(client, "/api/v1/auth/me", api_key, n)),
            ("report (cached), bearer", await mean_ms(client, report, bearer, n)),
            ("report (cached), API key", await mean_ms(client, report, api_key, n)),
        ]
        for name, (wall, cpu) in lines:
            print(f"{name:<28} {wall:6.3f} ms/request, CPU {cpu:6.3f} ms")
        if args.profile:
            profiler = cProfile.Profile()
            profiler.enable()
            for _ in range(n):
                await client.get(report, headers=bearer)
            profiler.disable()
            stats = pstats.Stats(profiler)
            stats.sort_stats("tottime").print_stats(15)
            stats.sort_stats("cumulative").print_stats(
                "adbot|fastapi/routing|dependencies|redis/asyncio/client|jwt", 30
            )
            if args.callers:
                stats.print_callers(*args.callers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--requests", type=int, default=2_000)
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--callers", nargs="*", default=[])
    args = parser.parse_args()
    with bench_world(args.rows, redis_db=REDIS_DB) as (db_url, redis_url, first, last):
        asyncio.run(measure(db_url, redis_url, first, last, args))


if __name__ == "__main__":
    main()
