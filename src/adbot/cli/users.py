"""``adbot users``: bootstrap an account and its first admin from the command line."""

from __future__ import annotations

import sys

import typer

from adbot.cli._console import err, out
from adbot.config import get_settings
from adbot.db.migrate import require_current_schema
from adbot.db.session import get_sessionmaker
from adbot.errors import InvalidInput
from adbot.services.accounts import bootstrap_admin

app = typer.Typer(help="People: bootstrap an account and its first admin.", no_args_is_help=True)


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise InvalidInput("no password on standard input")
        return password
    if not sys.stdin.isatty():
        raise InvalidInput("no terminal to ask for a password: pass --password-stdin")
    typed: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True, err=True)
    return typed


@app.command("create-admin")
def create_admin(
    account: str = typer.Option(
        ..., "--account", help="Account name; created if no account has its slug yet."
    ),
    email: str = typer.Option(..., "--email", help="The admin's sign-in email."),
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="Read the password from the first line of stdin."
    ),
    full_name: str = typer.Option("", "--full-name", help="The admin's name."),
) -> None:
    """Create an account (or use the one with this name's slug) and an admin user in it."""
    password = _read_password(password_stdin)
    require_current_schema()
    settings = get_settings()
    with get_sessionmaker()() as session:
        made = bootstrap_admin(
            session=session,
            account_name=account,
            email=email,
            password=password,
            auth=settings.auth,
            full_name=full_name,
        )
    where = "new" if made.account_created else "existing"
    out.print(
        f"admin {made.admin.email} (user {made.admin.id}) in {where} account "
        f"'{made.account.slug}' (id {made.account.id})",
        highlight=False,
        soft_wrap=True,
    )
    err.print(f"sign in: POST /api/v1/auth/token with username={made.admin.email}", highlight=False)
