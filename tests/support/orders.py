"""The order path as the execution tests drive it: a paper venue at a fixed real-looking price, a worker on it,
an order proposed and approved through the real approvals service, and waiting for its fill."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Final

from approvals import service as approvals
from approvals.service import Requester
from approvals.users import Role, User
from engine.execution.models import OrderIntent, OrderStatus
from engine.execution.oms import OrderRecord, get_order
from engine.execution.paper import ManualPriceFeed, PaperBroker, PaperBrokerConfig, PriceBar
from engine.execution.router import Router
from engine.execution.worker import ExecutionWorker, build_order_manager
from engine.runtime import Runtime
from tests.support.polling import eventually

APPROVER: Final = User(id=-1, username="ann-approver", role=Role.APPROVER)
PRICE: Final = Decimal(8700)  # near the last stored BTC/USD close, which the risk checks read


def paper_venue(cls: type[PaperBroker] = PaperBroker, cash: Decimal = Decimal(100_000)) -> PaperBroker:
    """A paper account "paper" whose BTC/USD trades at ``PRICE`` now."""
    feed = ManualPriceFeed()
    feed.push("BTC/USD", PriceBar(int(time.time() * 1000), PRICE, PRICE, PRICE, PRICE, Decimal(1000)))
    return cls(PaperBrokerConfig(name="paper", initial_balances={"USD": cash}), feed)


def paper_worker(runtime: Runtime, name: str, broker: PaperBroker | None = None) -> ExecutionWorker:
    venue = broker if broker is not None else paper_venue()
    return ExecutionWorker(runtime, build_order_manager(runtime, Router({"paper": venue})), name=name)


async def approve_market_buy(runtime: Runtime, requester: Requester, quantity: str = "0.01") -> str:
    """Propose a BTC/USD market buy on the paper account and approve it; return the approval id."""
    intent = OrderIntent(account="paper", symbol="BTC/USD", side="buy", type="market", quantity=Decimal(quantity))
    request = await approvals.propose_order(
        runtime.db, runtime.bus, runtime.settings, intent, requester, requester.session or ""
    )
    assert request.status == "pending", request.decision_reason
    decided = await approvals.decide(
        runtime.db, runtime.bus, runtime.settings, request.id, APPROVER, approve=True, auth="password"
    )
    assert decided.status == "approved"
    return request.id


def order_of(runtime: Runtime, approval_id: str) -> OrderRecord | None:
    with runtime.db.connection() as conn:
        return get_order(conn, approval_id=approval_id)


async def until_order_is(runtime: Runtime, approval_id: str, status: OrderStatus, timeout: float = 30) -> OrderRecord:
    """The order of ``approval_id`` once it has reached ``status``."""

    def reached() -> OrderRecord | None:
        record = order_of(runtime, approval_id)
        return record if record is not None and record.status is status else None

    return await eventually(f"the order of {approval_id} to be {status.value}", reached, timeout=timeout)
