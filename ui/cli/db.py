"""`iqts db`: schema migrations and the embedded server."""

from __future__ import annotations

import typer

from engine.settings import get_settings
from ui.cli.console import emit_json, out

app = typer.Typer(help="Database: migrations and the embedded PostgreSQL.", no_args_is_help=True)


@app.command("upgrade")
def upgrade_cmd() -> None:
    """Apply pending schema migrations."""
    from engine.store.database import connect
    from engine.store.migrate import upgrade

    db = connect(get_settings())
    try:
        applied = upgrade(db)
    finally:
        db.close()
    if applied:
        for m in applied:
            out.print(f"applied {m.version:04d}_{m.name}")
    else:
        out.print("schema is up to date")


@app.command("status")
def status_cmd(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Show each migration and whether it is applied."""
    from engine.store.database import connect
    from engine.store.migrate import status as migration_status

    db = connect(get_settings())
    try:
        rows = migration_status(db)
    finally:
        db.close()
    if as_json:
        emit_json(rows)
        return
    for row in rows:
        out.print(f"{row.version:04d}_{row.name}  {'applied' if row.applied else 'pending'}")


@app.command("start")
def start_cmd() -> None:
    """Start the embedded PostgreSQL and leave it running (stop it with `iqts db stop`)."""
    from engine.store.embedded import EmbeddedPostgres

    settings = get_settings()
    server = EmbeddedPostgres(settings.state_dir, start_timeout_s=settings.embedded_pg_start_timeout_s)
    server.start()
    server.ensure_database(settings.db_name)
    out.print(server.url(settings.db_name))


@app.command("stop")
def stop_cmd() -> None:
    """Stop the embedded PostgreSQL."""
    from engine.store.embedded import EmbeddedPostgres

    settings = get_settings()
    EmbeddedPostgres(settings.state_dir).stop()
    out.print("embedded PostgreSQL stopped")


@app.command("url")
def url_cmd() -> None:
    """Print the URL of the database IQTS uses (no password)."""
    from engine.store.embedded import EmbeddedPostgres

    settings = get_settings()
    if settings.database_url is not None:
        from engine.store.database import describe_target

        out.print(describe_target(settings.database_url.get_secret_value()))
        return
    out.print(EmbeddedPostgres(settings.state_dir).url(settings.db_name))
