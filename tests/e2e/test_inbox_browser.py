"""The inbox in a real browser: Debian's chromium driven by Playwright against a real uvicorn server.

An approver signs in; a request proposed meanwhile appears live in the inbox; its page shows the verdict and
the chart; it is approved and its paper fill appears on the page; a second request is rejected with a reason.
Screenshots go to ``<state dir>/screenshots/``.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest

from approvals.service import ApprovalRequest, Requester, propose_order
from approvals.users import Role, create_user
from engine.bus import InProcessBus
from engine.data.market import last_prices
from engine.data.sample import load_sample_series
from engine.data.store import BarStore, make_key
from engine.execution.models import OrderIntent, OrderSide, OrderType
from engine.execution.oms import OrderRecord
from engine.execution.worker import build_order_manager
from engine.runtime import Runtime
from engine.settings import AccountSettings, Settings
from engine.store.database import Database
from tests.integration.inbox.helpers import PASSWORD, ServerThread
from ui.api.app import create_app

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
CONTROL_KEYS = ("kill_switch", "breakers", "risk_policy_active")


@dataclass
class Stack:
    runtime: Runtime
    server: ServerThread
    approver: str
    trader: str
    last_price: Decimal
    shots: Path
    account: str

    def propose(self, intent: OrderIntent, rationale: str) -> ApprovalRequest:
        requester = Requester(user=self.trader, kind="mcp", session="claude-desktop")
        rt = self.runtime
        return self.server.run(propose_order(rt.db, rt.bus, rt.settings, intent, requester, rationale))

    def execute(self, request: ApprovalRequest) -> OrderRecord:
        """What the execution worker does with an approved order (on the server's loop, whose bus it uses)."""

        async def submit() -> OrderRecord:
            manager = build_order_manager(self.runtime)
            return await manager.submit_approved(OrderIntent.model_validate(request.intent), request.id)

        return self.server.run(submit())


@pytest.fixture
def stack(settings: Settings, db: Database, unique: str) -> Iterator[Stack]:
    if shutil.which(CHROMIUM) is None:
        pytest.skip(f"{CHROMIUM} is missing: run `scripts/bootstrap.sh browser`")
    store = BarStore(db)
    for series in load_sample_series():
        store.upsert_bars(make_key(series.exchange, series.symbol, series.timeframe), series.frame)
    with db.connection() as conn:
        saved = conn.execute(
            "SELECT key, value FROM system_state WHERE key = ANY(%s)", (list(CONTROL_KEYS),)
        ).fetchall()
        conn.execute("DELETE FROM system_state WHERE key = ANY(%s)", (list(CONTROL_KEYS),))
    approver = create_user(db, f"carol{unique}", PASSWORD, Role.APPROVER).username
    trader = create_user(db, f"bob{unique}", PASSWORD, Role.TRADER).username
    shots = settings.state_dir / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    # an account of its own: orders other tests placed this minute (rate limit, positions) do not count here
    account = f"e2e{unique}"
    own = settings.model_copy(
        update={"accounts": [AccountSettings(name=account, initial_cash={"USD": Decimal(100_000)})]}
    )
    runtime = Runtime(settings=own, db=db, bus=InProcessBus())
    try:
        with ServerThread(create_app(runtime)) as server:
            price = last_prices(store, ["BTC/USD"])["BTC/USD"].price
            yield Stack(runtime, server, approver, trader, price, shots, account)
    finally:
        with db.connection() as conn:
            conn.execute("DELETE FROM system_state WHERE key = ANY(%s)", (list(CONTROL_KEYS),))
            for key, value in saved:
                conn.execute("INSERT INTO system_state (key, value) VALUES (%s, %s::jsonb)", (key, json.dumps(value)))


def test_sign_in_approve_and_reject_in_a_real_browser(stack: Stack) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, chromium_sandbox=False)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(15_000)
        outside: list[str] = []
        page.on("request", lambda r: None if r.url.startswith(stack.server.url) else outside.append(r.url))
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        try:
            # no page without signing in
            page.goto(stack.server.url + "/inbox")
            expect(page).to_have_url(stack.server.url + "/login?next=/inbox")
            page.fill("input[name=username]", stack.approver)
            page.fill("input[name=password]", "not the password!")
            page.click("button[type=submit]")
            expect(page.locator(".alert.error")).to_have_text("Wrong username or password.")
            page.screenshot(path=str(stack.shots / "inbox-login.png"))
            page.fill("input[name=username]", stack.approver)
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            expect(page).to_have_url(stack.server.url + "/inbox")
            expect(page.locator("#live")).to_have_class("live on")
            expect(page.locator("#live")).to_have_text("updates: live")  # small, at the foot, labelled
            # the header's badge is the trading mode, not the update state
            expect(page.locator("header.top #mode")).to_have_text("DRY-RUN")
            expect(page.locator("header.top #mode")).to_have_class("mode dry-run")
            expect(page.locator("header.top #live")).to_have_count(0)

            # an MCP client proposes while the inbox is open: it appears without a reload
            market = OrderIntent(
                account=stack.account,
                symbol="BTC/USD",
                side=OrderSide.BUY,
                type=OrderType.MARKET,
                quantity=Decimal("0.05"),
            )
            first = stack.propose(market, "Momentum: price closed above the 20-bar high on rising volume.")
            link = page.locator(f'a[href="/inbox/{first.id}"]')
            expect(link).to_be_visible()
            expect(link).to_have_text(f"buy 0.05 BTC/USD market on {stack.account} (dry-run)")

            limit = OrderIntent(
                account=stack.account,
                symbol="BTC/USD",
                side=OrderSide.BUY,
                type=OrderType.LIMIT,
                quantity=Decimal("0.1"),
                price=(stack.last_price * Decimal("0.985")).quantize(Decimal("0.01")),
            )
            second = stack.propose(limit, "Buy the dip 1.5% under the last close; RSI(14) is 28.")
            expect(page.locator(f'a[href="/inbox/{second.id}"]')).to_be_visible()
            page.screenshot(path=str(stack.shots / "inbox-pending.png"), full_page=True)

            # the second request's page: verdict rule by rule, the chart with the proposed price
            page.click(f'a[href="/inbox/{second.id}"]')
            expect(page.locator("#status")).to_have_text("pending")
            expect(page.locator("#verdict tbody tr")).to_have_count(len((second.risk_verdict or {})["results"]))
            expect(page.locator("#verdict .badge.ok").first).to_be_visible()
            expect(page.locator("svg.chart")).to_be_visible()
            expect(page.locator("svg.chart g.marker.proposed")).to_have_count(1)
            assert page.locator("svg.chart g.candle").count() >= 50
            expect(page.locator(".countdown")).to_contain_text("m ")
            page.screenshot(path=str(stack.shots / "inbox-request.png"), full_page=True)

            # reject it, with a reason
            page.click("#reject")  # the reason is required: the browser refuses the empty form
            expect(page.locator("#status")).to_have_text("pending")
            page.fill("#reason", "Too large while the VaR breaker is close to its limit.")
            page.click("#reject")
            expect(page.locator("#status")).to_have_text("rejected")
            expect(page.locator(".alert.ok")).to_contain_text("Rejected.")
            expect(page.get_by_text("Too large while the VaR breaker is close to its limit.")).to_be_visible()

            # approve the first; the paper fill arrives on the open page
            page.goto(stack.server.url + f"/inbox/{first.id}")
            expect(page.locator("svg.chart g.marker.last")).to_have_count(1)
            page.click("#approve")
            expect(page.locator("#status")).to_have_text("approved")
            expect(page.locator("#live")).to_have_class("live on")
            record = stack.execute(first)
            expect(page.locator("#result")).to_be_visible()
            expect(page.locator("#result .status")).to_have_text(record.status.value)
            expect(page.locator("#result")).to_contain_text(f"#{record.id}")
            page.screenshot(path=str(stack.shots / "inbox-approved.png"), full_page=True)

            # history shows both, with their results
            page.goto(stack.server.url + f"/history?requester={stack.trader}")
            expect(page.locator("#history tbody tr")).to_have_count(2)
            expect(page.locator("#history")).to_contain_text("Too large while the VaR breaker")
            expect(page.locator("#history")).to_contain_text(f"order {record.status.value}")
            page.screenshot(path=str(stack.shots / "inbox-history.png"), full_page=True)

            # signing out ends the session
            page.click("text=Sign out")
            expect(page).to_have_url(stack.server.url + "/login")
            page.goto(stack.server.url + "/history")
            expect(page).to_have_url(stack.server.url + "/login?next=/history")
        finally:
            browser.close()
    assert outside == []  # no CDN, font or script from anywhere else
    # no script error and no CSP violation; the only console errors are the deliberate 401 and 422 answers
    assert [e for e in errors if "status of 401" not in e and "status of 422" not in e] == []
