"""The `iqts` command."""

from __future__ import annotations

import asyncio
import os
import sys

import typer

from engine import __version__
from engine.errors import IQTSError
from engine.settings import get_settings
from engine.telemetry import redact_text
from ui.cli import audit, bench, data, db, evals, kb, research, risk, users
from ui.cli.console import err, out
from ui.process.plan import help_text

app = typer.Typer(
    help="IQTS: crypto quant research and trading copilot with a human approving every order.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(db.app, name="db")
app.add_typer(data.app, name="data")
app.add_typer(bench.app, name="bench")
app.add_typer(audit.app, name="audit")
app.add_typer(users.app, name="users")
app.add_typer(risk.app, name="risk")
app.add_typer(kb.app, name="kb")
app.add_typer(research.backtest_app, name="backtest")
app.add_typer(research.optimize_app, name="optimize")
app.add_typer(evals.app, name="eval")


@app.command(help=help_text("up", "Start everything in one process on embedded defaults (no configuration needed)."))
def up() -> None:
    from ui.cli.up import serve

    asyncio.run(serve(get_settings(), "up"))


@app.command(help=help_text("api", "Run the API process of the production split (beside `iqts worker`)."))
def api() -> None:
    from ui.cli.up import serve

    asyncio.run(serve(get_settings(), "api"))


@app.command()
def mcp() -> None:
    """Serve the IQTS tools over MCP stdio (for IDE assistants and Claude Desktop): the local user, role trader."""
    from ui.cli.services import run_mcp_stdio

    asyncio.run(run_mcp_stdio(get_settings()))


@app.command(
    help=help_text(
        "chat",
        "Run the chat (Chainlit) on IQTS_CHAT_PORT (8001): sign in as an IQTS user; the copilot uses the API's /mcp "
        "(start the API with `iqts api`, or use `iqts up`, which runs the chat too).",
    )
)
def chat() -> None:
    from ui.chat.config import api_url, chat_url
    from ui.chat.serve import run

    settings = get_settings()
    chat_settings = settings.chat
    out.print(
        f"[bold green]IQTS chat[/] on {chat_url(settings, chat_settings)} (model IQTS_LLM={settings.llm}; "
        f"tools over MCP at {api_url(settings, chat_settings)}/mcp; app root {settings.state_dir / 'chat'})"
    )
    out.print("Press Ctrl-C to stop.")
    run(settings, chat_settings)


@app.command(
    help=help_text("worker", "Run the worker process of the production split (beside `iqts api`; set IQTS_REDIS_URL).")
)
def worker() -> None:
    from ui.cli.services import run_worker

    asyncio.run(run_worker(get_settings()))


@app.command()
def version() -> None:
    """Print the IQTS version."""
    out.print(__version__)


def main() -> None:
    """Entry point: run the CLI, turning IQTS errors into one clear line and an exit code."""
    try:
        app()
    except IQTSError as error:
        err.print(f"[bold red]error:[/] {redact_text(str(error))}", highlight=False)
        sys.exit(error.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as error:  # a bug, not bad input: one line for the user, the traceback on request
        if os.environ.get("IQTS_DEBUG"):
            raise
        err.print(
            f"[bold red]internal error:[/] {type(error).__name__}: {redact_text(str(error))[:300]} "
            "(set IQTS_DEBUG=1 for the traceback)",
            highlight=False,
        )
        sys.exit(70)


if __name__ == "__main__":
    main()
