"""``adbot db``: migrate the database schema and check it against the models."""

from __future__ import annotations

import typer
from alembic.script import ScriptDirectory
from rich.table import Table

from adbot.cli._console import err, out, print_table
from adbot.config import get_settings, mask_url
from adbot.db import migrate

app = typer.Typer(
    help="Database schema: upgrade, downgrade, current revision, drift check.",
    no_args_is_help=True,
)


# A relative revision such as "-1" is an argument, not an option.
_REVISION_ARGS = {"ignore_unknown_options": True}


def _where() -> str:
    return mask_url(get_settings().db.url)


@app.command("upgrade", context_settings=_REVISION_ARGS)
def upgrade(
    revision: str = typer.Argument("head", help="Target revision (default: head)."),
) -> None:
    """Migrate the database up to REVISION."""
    before = migrate.current_revisions()
    migrate.upgrade(revision=revision)
    after = migrate.current_revisions()
    _report(before, after)


@app.command("downgrade", context_settings=_REVISION_ARGS)
def downgrade(
    revision: str = typer.Argument(..., help="Target revision: an id, -1, or base (drops all)."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Migrate the database down to REVISION (data in dropped tables is lost)."""
    migrate.require_database()  # before asking to confirm (migrate.downgrade checks too)
    if not yes:
        typer.confirm(f"Downgrade {_where()} to {revision}? Data may be lost", abort=True)
    before = migrate.current_revisions()
    migrate.downgrade(revision)
    after = migrate.current_revisions()
    _report(before, after)


@app.command("current")
def current() -> None:
    """Show the database's revision and whether it is the latest."""
    migrate.require_database()
    revisions = migrate.current_revisions()
    heads = migrate.head_revisions()
    state = "up to date" if set(revisions) == set(heads) else f"head is {', '.join(heads)}"
    out.print(f"{migrate.describe_revisions(revisions)} ({state})", highlight=False, soft_wrap=True)


@app.command("check")
def check() -> None:
    """Compare the models with the migrated database; exit 1 on any drift."""
    drift = migrate.check()
    if not drift:
        out.print(
            f"no drift: the models match the database at {_where()}",
            highlight=False,
            soft_wrap=True,
        )
        return
    for item in drift:
        out.print(f"drift: {item}", highlight=False, soft_wrap=True)
    err.print(
        f"{len(drift)} difference(s) between the models and the migrations: add a migration "
        "(see docs/MIGRATIONS.md)",
        highlight=False,
        soft_wrap=True,
    )
    raise typer.Exit(1)


@app.command("history")
def history() -> None:
    """List the known revisions, newest first."""
    script = ScriptDirectory.from_config(migrate.alembic_config())
    table = Table("revision", "down revision", "description")
    for rev in script.walk_revisions():
        down = rev.down_revision
        down_text = down if isinstance(down, str) else ", ".join(down or ()) or "base"
        table.add_row(rev.revision, down_text, rev.doc)
    print_table(table)


def _report(before: tuple[str, ...], after: tuple[str, ...]) -> None:
    err.print(
        f"{_where()}: {migrate.describe_revisions(before)} -> {migrate.describe_revisions(after)}",
        highlight=False,
        soft_wrap=True,
    )
