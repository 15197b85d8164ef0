"""`iqts risk`: status, the kill switch (engage, release with an approval), breakers and policy versions."""

from __future__ import annotations

import asyncio
import getpass
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.table import Table

from engine.errors import ConfigError
from engine.settings import get_settings
from ui.cli.common import database
from ui.cli.console import emit_json, out

if TYPE_CHECKING:
    from engine.bus import Bus

T = TypeVar("T")

app = typer.Typer(help="Risk: status, kill switch, circuit breakers, policy versions.", no_args_is_help=True)
policy_app = typer.Typer(help="Risk policy versions: show, list, set (save + activate).", no_args_is_help=True)
app.add_typer(policy_app, name="policy")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]
ByOpt = Annotated[str | None, typer.Option("--by", help="who acts (default: cli:<login name>)")]


def _actor(by: str | None) -> str:
    if by and by.strip():
        return by.strip()
    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):
        return "cli"


def _on_bus(act: Callable[[Bus], Awaitable[T]]) -> T:
    """Run one async service call with a bus made from the settings (closed after)."""
    from engine.bus import make_bus

    async def run() -> T:
        bus: Bus = make_bus(get_settings())
        try:
            return await act(bus)
        finally:
            await bus.close()

    return asyncio.run(run())


@app.command("status")
def status_cmd(as_json: JsonOpt = False) -> None:
    """The kill switch, tripped circuit breakers and the active policy version."""
    from engine.risk.monitor import risk_status

    with database() as db:
        status = risk_status(db)
    if as_json:
        emit_json(status)
        return
    switch = status.kill_switch
    if switch.engaged:
        at = switch.at.isoformat(timespec="seconds") if switch.at else "?"
        out.print(f"kill switch: [bold red]ENGAGED[/] by {switch.by} at {at}: {switch.reason}")
    else:
        out.print("kill switch: [green]released[/]")
    out.print(f"risk policy: version {status.policy_version}")
    if not status.breakers:
        out.print("circuit breakers: none tripped")
        return
    table = Table("account", "breaker", "tripped at", "reason")
    for trip in status.breakers:
        table.add_row(trip.account or "(all)", trip.breaker, trip.tripped_at.isoformat(timespec="seconds"), trip.reason)
    out.print(table)


@app.command("kill")
@app.command("engage")
def engage_cmd(
    reason: Annotated[str, typer.Option("--reason", help="why trading stops (recorded and shown)")],
    by: ByOpt = None,
) -> None:
    """Engage the kill switch now: blocks every new order, tells workers to cancel open ones. No approval needed."""
    from engine.risk.killswitch import engage

    with database() as db:
        state = _on_bus(lambda bus: engage(db, bus, _actor(by), reason))
    at = state.at.isoformat(timespec="seconds") if state.at else "?"
    out.print(f"kill switch ENGAGED by {state.by} at {at}: {state.reason}")


@app.command("release")
def release_cmd(
    approval: Annotated[
        str | None,
        typer.Option("--approval", help="apply this approved kill_switch_release request (default: ask for one)"),
    ] = None,
    why: Annotated[str, typer.Option("--why", help="for the approver: why trading may resume")] = "",
    by: ByOpt = None,
) -> None:
    """Ask for the kill switch's release (an approver approves it in the inbox, and then it takes effect), or,
    with --approval, apply an approved release request."""
    from approvals.service import ReleaseKillSwitch, Requester, request_decision
    from engine.risk.killswitch import release

    settings = get_settings()
    with database() as db:
        if approval is not None:
            state = _on_bus(lambda bus: release(db, bus, _actor(by), approval))
            out.print(f"kill switch released by {state.by} with approval {state.approval_id}")
            return
        asker = Requester(user=_actor(by), kind="cli")
        request = _on_bus(lambda bus: request_decision(db, bus, settings, ReleaseKillSwitch(), asker, why))
    out.print(f"release requested: {request.id} ({request.status}); an approver decides it in the inbox:")
    out.print(f"  {settings.api_url.rstrip('/')}/inbox/{request.id}", highlight=False)


@app.command("reset-breaker")
def reset_breaker_cmd(
    account: Annotated[str, typer.Argument(help="the account the breaker tripped for")],
    breaker: Annotated[str, typer.Argument(help="max_daily_loss | max_drawdown | max_var")],
    by: ByOpt = None,
) -> None:
    """Reset a tripped circuit breaker (audited; the monitor trips it again if the limit is still exceeded)."""
    from engine.risk.monitor import reset_breaker

    with database() as db:
        trip = reset_breaker(db, account, breaker, _actor(by))
    out.print(f"breaker {trip.breaker} reset for {trip.account}")


@policy_app.command("show")
def policy_show_cmd(
    version: Annotated[str | None, typer.Option("--version", help="a stored version (default: the active one)")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Print a stored policy exactly as it was saved (the active one by default)."""
    from engine.risk.store import stored_policy

    with database() as db:
        stored = stored_policy(db, version)
    if as_json:
        from engine.risk.policy import RiskPolicy

        policy = RiskPolicy.from_yaml(stored.body, source=f"stored risk policy {stored.version}")
        emit_json(
            {
                "version": stored.version,
                "active": stored.active,
                "sha256": stored.sha256,
                "created_at": stored.created_at.isoformat(),
                "policy": policy.model_dump(mode="json", exclude_none=True),
            }
        )
        return
    out.out(stored.body, highlight=False, end="" if stored.body.endswith("\n") else "\n")


@policy_app.command("list")
def policy_list_cmd(as_json: JsonOpt = False) -> None:
    """Every stored policy version, oldest first."""
    from engine.risk.store import list_policies

    with database() as db:
        versions = list_policies(db)
    if as_json:
        emit_json(
            [
                {"version": v.version, "active": v.active, "sha256": v.sha256, "created_at": v.created_at.isoformat()}
                for v in versions
            ]
        )
        return
    table = Table("version", "active", "saved at", "sha256")
    for v in versions:
        table.add_row(v.version, "yes" if v.active else "", v.created_at.isoformat(timespec="seconds"), v.sha256[:12])
    out.print(table)


@policy_app.command("set")
def policy_set_cmd(
    file: Annotated[Path, typer.Argument(help="a YAML risk policy with a new version")],
    by: ByOpt = None,
) -> None:
    """Save a policy version and make it the active one (audited)."""
    from engine.risk.store import save_and_activate

    try:
        text = file.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"cannot read risk policy {file}: {error.strerror or error}") from None
    with database() as db:
        policy = save_and_activate(db, text, _actor(by), source=str(file))
    out.print(f"risk policy version {policy.version} saved and active")
