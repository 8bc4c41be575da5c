"""``adbot config``: inspect the effective settings."""

from __future__ import annotations

import json

import typer
from pydantic import BaseModel, SecretStr
from rich.table import Table

from adbot.cli._console import out, print_table
from adbot.config import describe_config_file, get_settings, mask_url, settings_origins

app = typer.Typer(help="Inspect the effective settings.", no_args_is_help=True)

_URL_KEYS = {"db.url", "redis.url", "jobs.broker_url", "mlflow.tracking_uri"}


def _display(key: str, value: object) -> str:
    if isinstance(value, SecretStr):
        return "**********"
    if key in _URL_KEYS and isinstance(value, str):
        return mask_url(value)
    return "" if value is None else str(value)


@app.command("show")
def show(
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Effective settings, secrets masked, and where each value came from."""
    settings = get_settings()
    origins = settings_origins(settings)
    rows = []
    for group_name, group in settings:
        if isinstance(group, BaseModel):
            for field_name, value in group:
                key = f"{group_name}.{field_name}"
                rows.append((key, _display(key, value), origins.get(key, "default")))
        else:
            rows.append(
                (group_name, _display(group_name, group), origins.get(group_name, "default"))
            )
    if as_json:
        out.print_json(json.dumps([{"setting": k, "value": v, "source": s} for k, v, s in rows]))
        return
    table = Table(title=f"AdBot settings (config file: {describe_config_file()})")
    table.add_column("setting")
    table.add_column("value")
    table.add_column("source")
    for key, value, source in rows:
        table.add_row(key, value, source)
    print_table(table)
