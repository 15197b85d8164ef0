"""`iqts audit`: verify the hash chain, show recent entries."""

from __future__ import annotations

from typing import Annotated

import typer

from engine.errors import IQTSError
from ui.cli.common import database
from ui.cli.console import emit_json, out

app = typer.Typer(help="The append-only, hash-chained audit log.", no_args_is_help=True)


class AuditBrokenError(IQTSError):
    exit_code = 3


@app.command("verify")
def verify_cmd(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Recompute the hash chain; exit 3 and name the first bad row if anything was edited or removed."""
    from engine.audit import verify

    with database() as db:
        result = verify(db)
    if as_json:
        emit_json(result)
    if not result.ok:
        raise AuditBrokenError(f"audit log verification FAILED at row {result.first_bad_seq}: {result.problem}")
    if not as_json:
        out.print(f"audit log OK: {result.rows} rows, chain intact")


@app.command("show")
def show_cmd(
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=10_000)] = 20,
    subject: Annotated[str | None, typer.Option()] = None,
    action: Annotated[str | None, typer.Option()] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Newest entries first."""
    from engine.audit import entries

    with database() as db:
        rows = entries(db, subject=subject, action=action, limit=limit)
    if as_json:
        emit_json(rows)
        return
    for e in rows:
        out.print(f"{e.seq:>6} {e.ts} {e.actor:<16} {e.action:<24} {e.subject}")
