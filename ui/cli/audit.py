"""`iqts audit`: verify the hash chain, show recent entries."""

from __future__ import annotations

from typing import Annotated

import typer

from engine.errors import IQTSError
from engine.settings import get_settings
from ui.cli.common import database
from ui.cli.console import emit_json, out

app = typer.Typer(help="The append-only, hash-chained audit log.", no_args_is_help=True)


class AuditBrokenError(IQTSError):
    exit_code = 3


@app.command("verify")
def verify_cmd(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Recompute the hash chain and hold it against the anchor; exit 3 naming the first bad row and the kind."""
    from engine.audit import verify_anchored

    settings = get_settings()
    with database(settings) as db:
        result = verify_anchored(db, settings)
    if as_json:
        emit_json(result)
    if not result.ok:
        raise AuditBrokenError(
            f"audit log verification FAILED ({result.kind}) at row {result.first_bad_seq}: {result.problem}"
        )
    if not as_json:
        anchored = f", anchored up to row {result.anchored_seq}" if result.anchored_seq else ", no checkpoint yet"
        out.print(f"audit log OK: {result.rows} rows, chain intact{anchored}")


@app.command("checkpoint")
def checkpoint_cmd() -> None:
    """Sign the chain's head into the anchor file outside the database (the services also do it periodically)."""
    from engine.audit import checkpoint

    settings = get_settings()
    with database(settings) as db:
        point = checkpoint(db, settings)
    out.print(f"checkpointed row {point.seq}" if point else "nothing new to checkpoint")


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
