"""Portfolio, risk and order tools. ``propose_order`` never executes: it files a request for a human."""

from __future__ import annotations

import asyncio
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from mcp.server.fastmcp import Context, FastMCP
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field, ValidationError

from approvals import service as approvals
from approvals.service import ApprovalRequest, CancelOrder, Evidence, ReleaseKillSwitch, Requester
from approvals.users import Role, User
from engine.data.provider import market_symbol
from engine.errors import ValidationFailedError
from engine.execution.models import OrderIntent, OrderSide, OrderType, TimeInForce
from engine.intents import intent_data
from engine.portfolio.service import portfolio_snapshot
from engine.risk.killswitch import engage
from engine.risk.models import Verdict
from engine.risk.monitor import RiskStatus, risk_status
from engine.runtime import Runtime
from engine.store.database import Database
from engine.untrusted import wrap_untrusted
from tools.context import tool_call

READ_ONLY = ToolAnnotations(readOnlyHint=True, destructiveHint=False, idempotentHint=True, openWorldHint=False)
PROPOSES = ToolAnnotations(readOnlyHint=False, destructiveHint=False, idempotentHint=False, openWorldHint=False)


class OrderRequest(BaseModel):
    """An order to propose or check. Omit what the user did not say (no invented prices)."""

    symbol: str = Field(description="market, e.g. BTC/USD (an asset alone, e.g. BTC, is read as its priced market)")
    side: OrderSide
    quantity: Decimal = Field(gt=0, description="in base currency units, e.g. 0.01 BTC")
    type: OrderType = OrderType.MARKET
    price: Decimal | None = Field(None, gt=0, description="limit price (limit and stop_limit only)")
    stop_price: Decimal | None = Field(None, gt=0, description="trigger (stop and stop_limit only)")
    account: str = "paper"
    time_in_force: TimeInForce = TimeInForce.GTC
    strategy: str | None = None

    def read_symbol(self, db: Database) -> tuple[OrderRequest, str | None]:
        """This order with its symbol read as a market ("BTC" -> BTC/USD), and how it was read."""
        symbol, note = market_symbol(db, self.symbol)
        return (self if note is None else self.model_copy(update={"symbol": symbol})), note

    def intent(self, mode: str) -> OrderIntent:
        try:
            return OrderIntent.model_validate({**self.model_dump(), "mode": mode})
        except ValidationError as error:
            raise ValidationFailedError(_order_error(error)) from None
        except ValueError as error:
            raise ValidationFailedError(str(error).splitlines()[-1] if str(error) else "invalid order") from None


def _order_error(error: ValidationError) -> str:
    """The first problem of an order, naming its field (pydantic's last line is only a link to its docs)."""
    first = error.errors()[0]
    field = ".".join(str(p) for p in first["loc"]) or "order"
    if first["type"] == "string_pattern_mismatch" and field == "symbol":
        return (
            f"order.symbol: {first.get('input')!r} is not a market; write BASE/QUOTE as the exchange lists it, "
            "e.g. BTC/USD or ETH/USDT"
        )
    message = str(first["msg"]).removeprefix("Value error, ")
    return f"order.{field}: {message}" if field != "order" else message


class PositionOut(BaseModel):
    symbol: str
    quantity: Decimal
    avg_cost: Decimal
    last_price: Decimal | None = Field(description="null when no price is known (see unvalued_reason)")
    unrealised_pnl: Decimal | None
    unvalued_reason: str | None = None


class AccountOut(BaseModel):
    account: str
    valuation_currency: str
    equity: Decimal
    cash: dict[str, Decimal]
    positions: list[PositionOut]
    realised_pnl: Decimal
    unrealised_pnl: Decimal
    fees: Decimal
    daily_pnl: Decimal
    drawdown: Decimal
    unvalued: dict[str, str] = Field(default_factory=dict, description="what could not be valued, and why")


class PortfolioOut(BaseModel):
    as_of: datetime
    accounts: list[AccountOut]


class CheckOut(BaseModel):
    allowed: bool
    summary: str
    verdict: Verdict
    read_as: str | None = Field(None, description="how the order's symbol as written was read, when it was")


class ApprovalOut(BaseModel):
    approval_id: str
    kind: str
    status: str
    summary: str = Field(description="the request in one line, as the inbox and the notifier show it")
    intent: dict[str, Any] = Field(description="what is decided on, with its kind")
    intent_hash: str
    requested_by: str
    via: str = Field(description="the channel the request came through: mcp, chat, cli or api")
    rationale: str = Field(description="the requester's words, marked as untrusted data")
    risk_allowed: bool | None
    risk_summary: str | None
    created_at: datetime
    expires_at: datetime
    decided_by: str | None
    decision_reason: str | None
    result: dict[str, Any] | None
    inbox_url: str
    note: str
    read_as: str | None = Field(None, description="how the order's symbol as written was read, when it was")


class ApprovalList(BaseModel):
    approvals: list[ApprovalOut]


class KillSwitchOut(BaseModel):
    engaged: bool
    by: str | None
    reason: str | None
    note: str


def _approval_out(request: ApprovalRequest, runtime: Runtime) -> ApprovalOut:
    verdict = request.risk_verdict or {}
    allowed = verdict.get("allowed") if verdict else None
    failed = [r.get("reason") for r in verdict.get("results", []) if not r.get("passed")] if verdict else []
    summary = None if not verdict else ("all risk rules pass" if allowed else "; ".join(str(f) for f in failed))
    if summary is not None and verdict.get("notes"):  # e.g. the price is a replayed sample price: say so
        summary += "".join(f"; note: {n}" for n in verdict["notes"])
    notes = {
        "pending": "Waiting for a human approver in the inbox. Nothing has been executed.",
        "approved": "Approved by a human; the execution worker submits it after a second risk check.",
        "rejected": "Rejected; nothing was executed.",
        "expired": "Expired before it was executed (result says why if it was approved); nothing was executed.",
        "executed": "Executed; see result.",
        "failed": "Not executed; see result.",
    }
    return ApprovalOut(
        approval_id=request.id,
        kind=request.kind,
        status=request.status,
        summary=request.describe(),
        intent={"kind": request.kind, **intent_data(request.intent)},
        intent_hash=request.intent_hash,
        requested_by=request.requested_by,
        via=request.requester_kind,
        rationale=wrap_untrusted(request.rationale, source="requester") if request.rationale else "",
        risk_allowed=allowed,
        risk_summary=summary,
        created_at=request.created_at,
        expires_at=request.expires_at,
        decided_by=request.decided_by,
        decision_reason=request.decision_reason,
        result=request.result,
        inbox_url=f"{runtime.settings.api_url}/inbox/{request.id}",
        note=notes[request.status],
    )


def _requester(user: User, session: str | None) -> Requester:
    """Every tool call arrives over MCP (stdio or HTTP): the channel is ``mcp`` whichever transport carried it."""
    return Requester(user=user.username, kind="mcp", session=session)


def register(server: FastMCP[Any]) -> None:
    @server.tool(annotations=READ_ONLY)
    async def get_portfolio(ctx: Context[Any, Any, Any]) -> PortfolioOut:
        """Accounts with cash, positions (average cost, unrealised PnL), equity, realised PnL, fees, drawdown."""

        async def run(runtime: Runtime, _: User) -> PortfolioOut:
            snapshot, _market = await asyncio.to_thread(portfolio_snapshot, runtime.db, runtime.settings)
            return PortfolioOut(
                as_of=snapshot.ts,
                accounts=[
                    AccountOut(
                        account=a.account,
                        valuation_currency=a.valuation_currency,
                        equity=a.equity,
                        cash=a.cash,
                        positions=[
                            PositionOut(
                                symbol=p.symbol,
                                quantity=p.quantity,
                                avg_cost=p.avg_cost,
                                last_price=p.last_price,
                                unrealised_pnl=p.unrealised_pnl,
                                unvalued_reason=p.unvalued_reason,
                            )
                            for p in a.positions.values()
                            if p.quantity != 0
                        ],
                        realised_pnl=a.realised_pnl,
                        unrealised_pnl=a.unrealised_pnl,
                        fees=a.fees,
                        daily_pnl=a.daily_pnl,
                        drawdown=a.drawdown,
                        unvalued=a.unvalued,
                    )
                    for a in snapshot.accounts.values()
                ],
            )

        return await tool_call("get_portfolio", ctx, {}, run)

    @server.tool(annotations=READ_ONLY)
    async def get_risk_status(ctx: Context[Any, Any, Any]) -> RiskStatus:
        """Kill switch, tripped circuit breakers, active policy version, and per-account risk measures."""

        async def run(runtime: Runtime, _: User) -> RiskStatus:
            def work() -> RiskStatus:
                snapshot, _market = portfolio_snapshot(runtime.db, runtime.settings)
                return risk_status(runtime.db, snapshot)

            return await asyncio.to_thread(work)

        return await tool_call("get_risk_status", ctx, {}, run)

    @server.tool(annotations=READ_ONLY)
    async def check_order(ctx: Context[Any, Any, Any], order: OrderRequest) -> CheckOut:
        """Run the pre-trade risk check on an order without proposing it: each rule with its reason."""

        async def run(runtime: Runtime, _: User) -> CheckOut:
            read, read_as = await asyncio.to_thread(order.read_symbol, runtime.db)
            intent = read.intent(runtime.settings.mode)
            verdict = await asyncio.to_thread(approvals.check_order, runtime.db, runtime.settings, intent)
            return CheckOut(allowed=verdict.allowed, summary=verdict.summary(), verdict=verdict, read_as=read_as)

        return await tool_call("check_order", ctx, {"order": order}, run)

    @server.tool(annotations=PROPOSES)
    async def propose_order(
        ctx: Context[Any, Any, Any],
        order: OrderRequest,
        rationale: Annotated[str, Field(max_length=4000, description="why, in the user's terms")] = "",
        evidence: Annotated[list[Evidence] | None, Field(description="backtest/study ids, notes")] = None,
    ) -> ApprovalOut:
        """Propose an order for human approval. It is NEVER executed here: returns the approval id, its status,
        the risk verdict and the inbox URL where a person approves or rejects it."""

        async def run(runtime: Runtime, user: User) -> ApprovalOut:
            read, read_as = await asyncio.to_thread(order.read_symbol, runtime.db)
            intent = read.intent(runtime.settings.mode)
            request = await approvals.request_decision(
                runtime.db,
                runtime.bus,
                runtime.settings,
                intent,
                _requester(user, ctx.client_id),
                rationale,
                evidence or [],
            )
            return _approval_out(request, runtime).model_copy(update={"read_as": read_as})

        args = {"order": order, "rationale": rationale, "evidence": evidence}
        return await tool_call("propose_order", ctx, args, run, role=Role.TRADER)

    @server.tool(annotations=PROPOSES)
    async def propose_cancel(
        ctx: Context[Any, Any, Any],
        order_id: Annotated[int, Field(ge=1, description="the IQTS order id (see get_approval's result)")],
        rationale: Annotated[str, Field(max_length=4000)] = "",
    ) -> ApprovalOut:
        """Propose cancelling an open order; a human approves it in the inbox."""

        async def run(runtime: Runtime, user: User) -> ApprovalOut:
            ask = CancelOrder(order_id=order_id)
            request = await approvals.request_decision(
                runtime.db, runtime.bus, runtime.settings, ask, _requester(user, ctx.client_id), rationale
            )
            return _approval_out(request, runtime)

        return await tool_call("propose_cancel", ctx, {"order_id": order_id}, run, role=Role.TRADER)

    @server.tool(annotations=READ_ONLY)
    async def get_approval(
        ctx: Context[Any, Any, Any], approval_id: Annotated[str, Field(min_length=1, max_length=64)]
    ) -> ApprovalOut:
        """The current state of an approval request, and its result once executed."""

        async def run(runtime: Runtime, _: User) -> ApprovalOut:
            request = await asyncio.to_thread(approvals.get_request, runtime.db, approval_id)
            return _approval_out(request, runtime)

        return await tool_call("get_approval", ctx, {"approval_id": approval_id}, run)

    @server.tool(annotations=READ_ONLY)
    async def list_approvals(
        ctx: Context[Any, Any, Any],
        status: Literal["pending", "approved", "rejected", "expired", "executed", "failed"] | None = None,
        limit: Annotated[int, Field(ge=1, le=200)] = 20,
    ) -> ApprovalList:
        """Approval requests, newest first, optionally by status."""

        async def run(runtime: Runtime, _: User) -> ApprovalList:
            rows = await asyncio.to_thread(approvals.list_requests, runtime.db, status=status, limit=limit)
            return ApprovalList(approvals=[_approval_out(r, runtime) for r in rows])

        return await tool_call("list_approvals", ctx, {"status": status, "limit": limit}, run)

    @server.tool(annotations=ToolAnnotations(readOnlyHint=False, destructiveHint=True, idempotentHint=True))
    async def engage_kill_switch(
        ctx: Context[Any, Any, Any],
        reason: Annotated[str, Field(min_length=3, max_length=500, description="why trading must stop")],
    ) -> KillSwitchOut:
        """Stop all trading now: blocks new orders and cancels open ones. Releasing it needs a human approval."""

        async def run(runtime: Runtime, user: User) -> KillSwitchOut:
            state = await engage(runtime.db, runtime.bus, user.username, reason)
            return KillSwitchOut(
                engaged=state.engaged,
                by=state.by,
                reason=state.reason,
                note="Engaged. To release it, request_kill_switch_release; a human approves it in the inbox.",
            )

        return await tool_call("engage_kill_switch", ctx, {"reason": reason}, run, role=Role.TRADER)

    @server.tool(annotations=PROPOSES)
    async def request_kill_switch_release(
        ctx: Context[Any, Any, Any],
        rationale: Annotated[str, Field(max_length=4000, description="why trading may resume")] = "",
    ) -> ApprovalOut:
        """Ask for the kill switch to be released. It is NOT released here: a human approver decides in the inbox
        (returns the request and its inbox URL); once approved, the release takes effect. Asking again while a
        request is pending returns that request."""

        async def run(runtime: Runtime, user: User) -> ApprovalOut:
            asker = _requester(user, ctx.client_id)
            request = await approvals.request_decision(
                runtime.db, runtime.bus, runtime.settings, ReleaseKillSwitch(), asker, rationale
            )
            return _approval_out(request, runtime)

        args = {"rationale": rationale}
        return await tool_call("request_kill_switch_release", ctx, args, run, role=Role.TRADER)
