"""Entry point of the ``adbot`` command. Commands call services; no business rules here."""

from __future__ import annotations

import sys
from typing import NoReturn

import typer
from rich.text import Text

from adbot import __version__
from adbot.cli import config as config_cli
from adbot.cli import db as db_cli
from adbot.cli import ingest as ingest_cli
from adbot.cli import market as market_cli
from adbot.cli import quickstart as quickstart_cli
from adbot.cli import serve as serve_cli
from adbot.cli import train as train_cli
from adbot.cli import users as users_cli
from adbot.cli._console import err
from adbot.errors import AdbotError

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


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; an ``AdbotError`` becomes one line on stderr and exit code 1."""
    try:
        app(args=argv, prog_name="adbot")
    except AdbotError as exc:
        _fail(exc.message)
    except MemoryError:
        _fail(
            "out of memory: the run needs more memory than this machine has (a smaller "
            "scenario, fewer episodes or fewer workers need less)"
        )


def _fail(message: str) -> NoReturn:
    err.print(Text.assemble(("error:", "bold red"), " ", message), highlight=False, soft_wrap=True)
    sys.exit(1)


if __name__ == "__main__":
    main()
