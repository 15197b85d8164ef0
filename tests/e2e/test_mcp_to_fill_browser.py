"""Issue 6's end-to-end scenarios: an MCP client proposes, a person decides in a real browser, the worker fills.

1. approve: the paper fill appears on the request and in the audit log;
2. reject: nothing reaches the venue;
3. expire: the request runs out, the approve button is gone and nothing is executed;
4. change: an approved order with any field changed is refused by the gate; it needs a new approval.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from approvals.service import get_request
from approvals.users import issue_token
from engine.audit.log import entries, verify
from engine.execution.gate import GateRefusedError
from engine.execution.models import OrderIntent
from engine.execution.oms import list_orders
from engine.execution.worker import ExecutionWorker, build_order_manager
from engine.intents import intent_data
from tests.e2e.test_inbox_browser import CHROMIUM, CHROMIUM_ARGS, Stack, stack  # noqa: F401  (the fixture)
from tests.integration.inbox.helpers import PASSWORD

pytestmark = pytest.mark.browser


async def _propose(url: str, token: str, order: dict[str, Any], rationale: str) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        httpx.AsyncClient(headers=headers, timeout=60) as http,
        streamable_http_client(f"{url}/mcp", http_client=http) as (r, w, _),
        ClientSession(r, w) as s,
    ):
        await s.initialize()
        result = await s.call_tool("propose_order", {"order": order, "rationale": rationale})
    assert not result.isError, result.content
    assert result.structuredContent is not None
    return dict(result.structuredContent)


@pytest.fixture
def worker(stack: Stack) -> Iterator[None]:  # noqa: F811
    """The execution worker on the server's loop (and so on its in-process bus), as `iqts up` runs it."""
    stop: asyncio.Event | None = None
    running: asyncio.Task[None] | None = None

    async def start() -> None:
        nonlocal stop, running
        stop = asyncio.Event()
        worker = ExecutionWorker(stack.runtime, build_order_manager(stack.runtime), name="e2e-worker")
        running = asyncio.get_running_loop().create_task(worker.run(stop))

    stack.server.run(start())
    yield

    async def halt() -> None:
        assert stop is not None and running is not None
        stop.set()
        await asyncio.wait_for(running, timeout=30)

    stack.server.run(halt())


def test_mcp_proposal_to_paper_fill_reject_expire_and_change(stack: Stack, worker: None) -> None:  # noqa: F811
    from playwright.sync_api import expect, sync_playwright

    token = issue_token(stack.runtime.db, stack.trader, "e2e", actor="tests")
    url = stack.server.url
    buy = {"symbol": "BTC/USD", "side": "buy", "quantity": "0.02", "account": stack.account}
    approved = stack.server.run(_propose(url, token, buy, "Breakout above the 20-day high."))
    rejected = stack.server.run(_propose(url, token, {**buy, "quantity": "0.03"}, "Add to the position."))
    expiring = stack.server.run(_propose(url, token, {**buy, "quantity": "0.04"}, "Scale in."))
    assert approved["status"] == rejected["status"] == expiring["status"] == "pending"
    assert approved["inbox_url"] == f"{stack.runtime.settings.api_url}/inbox/{approved['approval_id']}"

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, chromium_sandbox=False)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(20_000)
        try:
            page.goto(url + "/login")
            page.fill("input[name=username]", stack.approver)
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            expect(page).to_have_url(url + "/inbox")

            # 1. approve: the worker fills on the paper venue and the page shows it
            page.goto(f"{url}/inbox/{approved['approval_id']}")
            expect(page.get_by_text("Breakout above the 20-day high.")).to_be_visible()
            page.click("#approve")
            expect(page.locator("#result .status")).to_have_text("filled")
            page.screenshot(path=str(stack.shots / "e2e-mcp-filled.png"), full_page=True)

            # 2. reject with a reason
            page.goto(f"{url}/inbox/{rejected['approval_id']}")
            page.fill("#reason", "One entry is enough today.")
            page.click("#reject")
            expect(page.locator("#status")).to_have_text("rejected")

            # 3. expire: the request runs out before anyone decides
            with stack.runtime.db.connection() as conn:
                conn.execute(
                    "UPDATE approval_requests SET expires_at = now() - interval '1 second' WHERE id = %s",
                    (expiring["approval_id"],),
                )
            page.goto(f"{url}/inbox/{expiring['approval_id']}")
            expect(page.locator("#approve")).to_have_count(0)
        finally:
            browser.close()

    request = get_request(stack.runtime.db, approved["approval_id"])
    assert request.status == "executed" and request.result is not None
    assert request.result["status"] == "filled" and request.result["filled_quantity"] == "0.02"
    actions = [e.action for e in entries(stack.runtime.db, subject=f"order:{request.result['order_id']}")]
    assert "order.fill" in actions and "order.created" in actions
    approval_actions = {e.action for e in entries(stack.runtime.db, subject=f"approval:{request.id}")}
    assert {"approval.requested", "risk.verdict", "approval.approved"} <= approval_actions
    assert get_request(stack.runtime.db, rejected["approval_id"]).status == "rejected"
    assert get_request(stack.runtime.db, expiring["approval_id"]).status in ("pending", "expired")
    orders = {o.approval_id for o in list_orders(stack.runtime.db, limit=1000)}
    assert rejected["approval_id"] not in orders and expiring["approval_id"] not in orders

    # 4. change: the approved order with a different quantity is refused; it needs a new approval
    changed = OrderIntent.model_validate({**intent_data(request.intent), "quantity": "0.021"})

    async def resubmit() -> None:
        await build_order_manager(stack.runtime).submit_approved(changed, request.id)

    with pytest.raises(GateRefusedError, match="differs from what was approved"):
        stack.server.run(resubmit())
    assert verify(stack.runtime.db).ok
