"""docker-compose.yml, .env.example and configs/default.yaml agree (Docker does not run here)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from adbot.config import PortSettings

ROOT = Path(__file__).resolve().parents[1]
PORT_VARIABLE = re.compile(r"^\$\{(ADBOT_PORTS__[A-Z]+):-(\d+)\}:(\d+)$")
EXPECTED_SERVICES = {
    "postgres": "postgres",
    "redis": "redis",
    "api": "api",
    "mlflow": "mlflow",
    "prometheus": "prometheus",
    "grafana": "grafana",
    "flower": "flower",
}


def _env_example() -> dict[str, str]:
    values = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key] = value
    return values


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_ports_agree_everywhere(compose: dict) -> None:
    env_ports = {
        key.removeprefix("ADBOT_PORTS__").lower(): int(value)
        for key, value in _env_example().items()
        if key.startswith("ADBOT_PORTS__")
    }
    yaml_ports = yaml.safe_load((ROOT / "configs/default.yaml").read_text())["ports"]
    code_ports = PortSettings().model_dump()
    assert env_ports == yaml_ports == code_ports
    assert sorted(env_ports.values()) == list(range(7500, 7508))

    published = {}
    for name, service in compose["services"].items():
        for mapping in service.get("ports", []):
            match = PORT_VARIABLE.match(mapping)
            assert match, f"{name}: port {mapping!r} must read an ADBOT_PORTS__ variable"
            variable, default, _container = match.groups()
            published[variable.removeprefix("ADBOT_PORTS__").lower()] = (name, int(default))
    for group, (service_name, default) in published.items():
        assert default == env_ports[group], f"{service_name}: default {default} != .env.example"
    assert {group: svc for group, (svc, _) in published.items()} == EXPECTED_SERVICES


def test_every_service_is_there_with_a_healthcheck(compose: dict) -> None:
    services = compose["services"]
    for name in [*EXPECTED_SERVICES, "worker", "beat"]:
        assert name in services, f"missing service {name}"
        if name != "migrate":
            assert "healthcheck" in services[name], f"{name} has no healthcheck"
            assert services[name]["healthcheck"]["test"], f"{name}: empty healthcheck"


def test_named_volumes_are_declared(compose: dict) -> None:
    declared = set(compose["volumes"])
    used = set()
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if not source.startswith((".", "/")):
                used.add(source)
    assert used and used <= declared
    assert {"postgres-data", "redis-data"} <= used


def test_app_services_use_postgres_and_redis_inside_compose(compose: dict) -> None:
    api_env = compose["services"]["api"]["environment"]
    assert api_env["ADBOT_DB__URL"].startswith("postgresql+psycopg://")
    assert api_env["ADBOT_REDIS__URL"].startswith("redis://redis:")
    assert (ROOT / "Dockerfile").read_text().count("torch==2.13.0") == 1
