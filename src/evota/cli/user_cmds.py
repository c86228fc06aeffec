"""`evota user …`: operator accounts and API tokens, managed on the server's machine.

Whoever can run this against the home's database is trusted already (they could edit it), so
these commands need no token; they are how the first admin is made. The audit log records
them as `local:<OS user>`.
"""

from __future__ import annotations

import getpass
from typing import Annotated

import typer
from rich.table import Table

from evota.cli.common import (
    DEFAULT_HOME,
    HomeOpt,
    JsonOpt,
    console,
    database,
    done,
    print_json,
    reports_errors,
)
from evota.clock import SystemClock

user_app = typer.Typer(help="Operator accounts (roles) and their API tokens.", no_args_is_help=True)

RoleOpt = Annotated[
    str, typer.Option(help="viewer, operator, release-manager, approver or admin.", show_default=False)
]


def _actor() -> str:
    return f"local:{getpass.getuser()}"


@user_app.command("add")
@reports_errors
def add(
    name: Annotated[str, typer.Argument(help="User name (also what the audit log shows).")],
    role: RoleOpt,
    home: HomeOpt = DEFAULT_HOME,
) -> None:
    """Create a user and print their first API token (shown once; only a hash is kept)."""
    from evota.server.services.users import add_user

    with database(home) as db:
        token = add_user(db, name, role, actor=_actor(), now=SystemClock().now())
    done("added", f"user {name} ({role}); API token (shown once):")
    typer.echo(token)


@user_app.command("token")
@reports_errors
def token(
    name: Annotated[str, typer.Argument(help="User name.")],
    label: Annotated[str, typer.Option(help="What the token is for, e.g. ci or laptop.")],
    home: HomeOpt = DEFAULT_HOME,
) -> None:
    """Issue another API token for a user (one per script or machine, revocable by label)."""
    from evota.server.services.users import issue_token

    with database(home) as db:
        value = issue_token(db, name, label=label, actor=_actor(), now=SystemClock().now())
    done("issued", f"token {label} for {name} (shown once):")
    typer.echo(value)


@user_app.command("revoke")
@reports_errors
def revoke(
    name: Annotated[str, typer.Argument(help="User name.")],
    label: Annotated[str | None, typer.Option(help="Only the tokens with this label.")] = None,
    home: HomeOpt = DEFAULT_HOME,
) -> None:
    """Revoke a user's API tokens (all of them, or those with --label)."""
    from evota.server.services.users import revoke_tokens

    with database(home) as db:
        count = revoke_tokens(db, name, label=label, actor=_actor(), now=SystemClock().now())
    done("revoked", f"{count} token(s) of {name}")


@user_app.command("list")
@reports_errors
def list_users(home: HomeOpt = DEFAULT_HOME, as_json: JsonOpt = False) -> None:
    """Show users, their roles and how many live tokens each has."""
    from evota.server.services.users import list_users as fetch

    with database(home) as db:
        found = fetch(db)
    if as_json:
        print_json([u.to_json() for u in found])
        return
    table = Table("user", "role", "live tokens", "created (UTC)")
    for u in found:
        table.add_row(
            u.name, u.role + (" (disabled)" if u.disabled else ""), str(u.tokens), f"{u.created_at:%Y-%m-%d}"
        )
    console.print(table)
