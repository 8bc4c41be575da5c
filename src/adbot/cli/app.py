"""The ``adbot`` Typer app: one command group per module. Commands call services; no business
rules here. Run it through :func:`adbot.cli.main.main`."""

from __future__ import annotations

import typer

from adbot import __version__
from adbot.cli import config as config_cli
from adbot.cli import db as db_cli
from adbot.cli import ingest as ingest_cli
from adbot.cli import market as market_cli
from adbot.cli import quickstart as quickstart_cli
from adbot.cli import serve as serve_cli
from adbot.cli import train as train_cli
from adbot.cli import users as users_cli

app = typer.Typer(
    name="adbot",
    help="AdBot: bid and budget optimiser for search advertising.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(config_cli.app, name="config")
app.add_typer(db_cli.app, name="db")
app.command("ingest")(ingest_cli.ingest)
market_cli.register(app)
app.command("quickstart")(quickstart_cli.quickstart)
train_cli.register(app)
app.command("serve")(serve_cli.serve)
app.add_typer(users_cli.app, name="users")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"adbot {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version and exit."
    ),
) -> None:
    """AdBot: bid and budget optimiser for search advertising."""
