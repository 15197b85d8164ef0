"""`iqts users`: administration of people, roles and API tokens."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from engine.errors import ValidationFailedError
from ui.cli.common import database
from ui.cli.console import emit_json, err, out

app = typer.Typer(help="Users, roles (viewer, trader, approver, admin) and API tokens.", no_args_is_help=True)

PASSWORD_ENV = "IQTS_NEW_USER_PASSWORD"  # noqa: S105 (the name of a variable: non-interactive password source)


def _password() -> str:
    from_env = os.environ.get(PASSWORD_ENV)
    if from_env:
        return from_env
    if not err.is_terminal:
        raise ValidationFailedError(f"no terminal to ask for the password: set {PASSWORD_ENV}")
    first = typer.prompt("password", hide_input=True)
    if first != typer.prompt("repeat", hide_input=True):
        raise ValidationFailedError("the passwords differ")
    return str(first)


@app.command("add")
def add_cmd(
    username: Annotated[str, typer.Argument()],
    role: Annotated[str, typer.Option(help="viewer | trader | approver | admin")] = "trader",
) -> None:
    """Add a user (the password is asked for, or read from IQTS_NEW_USER_PASSWORD)."""
    from approvals.users import Role, create_user

    with database() as db:
        user = create_user(db, username, _password(), Role.parse(role), actor="cli")
    out.print(f"added {user.username} ({user.role.label})")


@app.command("list")
def list_cmd(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List users and their roles."""
    from approvals.users import list_users

    with database() as db:
        users = list_users(db)
    if as_json:
        emit_json([{"username": u.username, "role": u.role.label, "disabled": u.disabled} for u in users])
        return
    for u in users:
        out.print(f"{u.username:<24} {u.role.label}{'  (disabled)' if u.disabled else ''}")


@app.command("token")
def token_cmd(
    username: Annotated[str, typer.Argument()],
    name: Annotated[str, typer.Option(help="what the token is for, e.g. 'vscode'")] = "mcp",
) -> None:
    """Issue an API token (for MCP clients over HTTP); it is shown once."""
    from approvals.users import issue_token

    with database() as db:
        token = issue_token(db, username, name, actor="cli")
    out.print(token)


@app.command("revoke")
def revoke_cmd(username: Annotated[str, typer.Argument()]) -> None:
    """Revoke every API token of a user."""
    from approvals.users import revoke_tokens

    with database() as db:
        count = revoke_tokens(db, username, actor="cli")
    out.print(f"revoked {count} token(s)")
