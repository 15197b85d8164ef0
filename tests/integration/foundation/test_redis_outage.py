"""Redis away (issue 11, item 4, the Redis part): no route answers 500, readiness says which dependency is away
and comes back to 200 by itself, and an approval made meanwhile answers success: the outbox holds its execution
request until the bus is back. Redis sits behind a cut TCP proxy, so no other test module notices."""

from __future__ import annotations

from decimal import Decimal
from urllib.parse import urlsplit

import httpx

from approvals import service as approvals
from approvals.service import Requester
from approvals.users import Role, create_user
from engine.bus import InProcessBus
from engine.bus.redis_streams import RedisStreamsBus
from engine.execution.models import OrderIntent
from engine.runtime import Runtime
from engine.settings import Settings
from engine.store import outbox
from engine.store.database import Database
from tests.integration.inbox.helpers import PASSWORD, ServerThread, session_csrf, sign_in
from tests.support.polling import eventually
from tests.support.tcp_proxy import TcpProxy
from ui.api.app import create_app


async def _until_ready(http: httpx.AsyncClient, timeout: float = 60) -> httpx.Response:
    async def ready() -> httpx.Response | None:
        answer = await http.get("/readyz")
        return answer if answer.status_code == 200 else None

    return await eventually("readiness to return", ready, timeout=timeout, interval=0.2)


async def test_redis_away_the_api_never_answers_500_and_recovers_by_itself(
    settings: Settings, db: Database, sample_loaded: None, redis_url: str, unique: str
) -> None:
    target = urlsplit(redis_url)
    proxy = TcpProxy(host=target.hostname or "127.0.0.1", port=target.port or 6379).restore()
    bus = RedisStreamsBus(f"redis://127.0.0.1:{proxy.port}/0", prefix=f"outage-{unique}:")
    approver = f"ann{unique}"
    create_user(db, approver, PASSWORD, Role.APPROVER)
    intent = OrderIntent(account="paper", symbol="BTC/USD", side="buy", type="market", quantity=Decimal("0.01"))
    proposer = Runtime(settings=settings, db=db, bus=InProcessBus())
    request = await approvals.propose_order(
        db, proposer.bus, settings, intent, Requester(user=f"tom{unique}", kind="mcp"), "outage"
    )
    app = create_app(Runtime(settings=settings, db=db, bus=bus), with_mcp=False)
    try:
        with ServerThread(app) as server:
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
                assert (await http.get("/readyz")).status_code == 200
                await sign_in(http, approver)
                csrf = await session_csrf(http)

                proxy.cut()
                ready = await http.get("/readyz")
                assert ready.status_code == 503 and ready.json()["checks"] == {"database": True, "bus": False}
                for path in ("/api/approvals", "/api/session", f"/api/approvals/{request.id}", "/inbox"):
                    answer = await http.get(path)
                    assert answer.status_code < 500, (path, answer.status_code, answer.text[:300])
                approve = await http.post(
                    f"/api/approvals/{request.id}/approve",
                    json={"seen_hash": request.intent_hash},
                    headers={"X-CSRF-Token": csrf},
                )
                assert approve.status_code == 200, approve.text  # the decision and its execution request committed
                assert approve.json()["status"] == "approved"
                with db.connection() as conn:
                    assert outbox.unsent_count(conn) >= 1

                proxy.restore()
                assert (await _until_ready(http)).status_code == 200  # no restart
    finally:
        proxy.close()
