"""What the pages show: the pending list, a request's full context, history with filters, the order result."""

from __future__ import annotations

import re
from decimal import Decimal

import httpx

from approvals.service import Evidence, Requester, decide, propose_order, propose_simple
from approvals.users import Role, create_user
from engine.execution.models import OrderIntent, OrderSide, OrderType
from engine.execution.worker import build_order_manager
from engine.runtime import Runtime
from tests.integration.inbox.helpers import PASSWORD, People, Propose, form_csrf, sign_in
from ui.api.app import create_app
from ui.api.inbox.templating import format_num


async def test_inbox_lists_pending_newest_first(client: httpx.AsyncClient, people: People, propose: Propose) -> None:
    older, newer = await propose(), await propose(quantity="0.03")
    await sign_in(client, people.viewer.username)
    page = await client.get("/inbox")
    assert page.status_code == 200
    assert page.text.index(newer.id) < page.text.index(older.id)
    assert "buy 0.03 BTC/USD limit" in page.text and f"{people.trader.username}" in page.text
    assert 'data-live="on"' in page.text and 'src="/static/inbox.js"' in page.text
    assert "http://" not in page.text and "https://" not in page.text.replace('xmlns="http://www.w3.org', "")
    fragment = await client.get("/inbox/fragment")
    assert fragment.status_code == 200 and newer.id in fragment.text and "<html" not in fragment.text


async def test_request_page_shows_the_full_context(
    client: httpx.AsyncClient, runtime: Runtime, people: People, market: Decimal, clean_controls: None
) -> None:
    intent = OrderIntent(
        account="paper",
        symbol="BTC/USD",
        side=OrderSide.BUY,
        type=OrderType.LIMIT,
        quantity=Decimal("0.04"),
        price=(market * Decimal("0.98")).quantize(Decimal("0.01")),
        mode=runtime.settings.mode,
    )
    request = await propose_order(
        runtime.db,
        runtime.bus,
        runtime.settings,
        intent,
        Requester(user=people.trader.username, kind="chat"),
        "RSI(14) < 25 <script>alert(1)</script>",
        [Evidence(kind="backtest", ref="bt_123", label="RSI 2019"), Evidence(kind="url", ref="javascript:alert(1)")],
    )
    await sign_in(client, people.approver.username)
    page = (await client.get(f"/inbox/{request.id}")).text
    # the order
    for text in ("BTC/USD", ">buy<", ">limit<", "0.04", format_num(intent.price), ">paper<", ">dry-run<", ">gtc<"):
        assert text in page, text
    # the verdict rule by rule, with its policy version
    verdict = request.risk_verdict
    assert verdict is not None
    assert f"Policy version {verdict['policy_version']}" in page
    rows = re.findall(r'<tr class="(pass|fail)">', page)
    assert len(rows) == len(verdict["results"]) and set(rows) == {"pass"}
    for result in verdict["results"]:
        assert f'<td class="mono">{result["rule"]}</td>' in page
    # the chart: candles and the proposed price as a line
    assert '<svg class="chart"' in page
    assert len(re.findall(r'<g class="candle (?:up|down)">', page)) >= 50
    assert '<g class="marker proposed">' in page and f"{float(intent.price or 0):,.0f}" in page
    # who asked and how, rationale (escaped), evidence, expiry countdown, the forms bound to the hash
    assert "via chat" in page and people.trader.username in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>alert(1)" not in page
    assert "<code>bt_123</code>" in page and 'href="javascript:' not in page
    assert f'data-expires="{request.expires_at.isoformat()}"' in page
    assert page.count(f'name="seen_hash" value="{request.intent_hash}"') == 2
    assert page.count('name="csrf_token"') == 3  # approve, reject, sign out


async def test_market_orders_mark_the_last_price(
    client: httpx.AsyncClient, runtime: Runtime, people: People, market: Decimal, clean_controls: None
) -> None:
    intent = OrderIntent(
        account="paper", symbol="ETH/USD", side=OrderSide.BUY, type=OrderType.MARKET, quantity=Decimal("0.5")
    )
    request = await propose_order(
        runtime.db, runtime.bus, runtime.settings, intent, Requester(user=people.trader.username, kind="mcp")
    )
    await sign_in(client, people.viewer.username)
    page = (await client.get(f"/inbox/{request.id}")).text
    assert '<g class="marker last">' in page and "last (market order)" in page
    assert "bitstamp:ETH/USD:1d" in page


async def test_history_filters(
    client: httpx.AsyncClient, runtime: Runtime, people: People, propose: Propose, unique: str
) -> None:
    other = create_user(runtime.db, f"erin{unique}", PASSWORD, Role.TRADER)
    mine = await propose()
    theirs = await propose(by=other.username)
    rejected = await propose()
    await decide(
        runtime.db, runtime.bus, runtime.settings, rejected.id, people.approver,
        approve=False, auth="password", reason="over the daily budget",
    )  # fmt: skip
    await sign_in(client, people.viewer.username)

    by_me = (await client.get("/history", params={"requester": people.trader.username})).text
    assert mine.id in by_me and rejected.id in by_me and theirs.id not in by_me
    only_rejected = (
        await client.get("/history", params={"requester": people.trader.username, "status": "rejected"})
    ).text
    assert rejected.id in only_rejected and mine.id not in only_rejected
    assert "over the daily budget" in only_rejected  # the result column: the reason
    by_symbol = (await client.get("/history", params={"symbol": "ETH/USD", "requester": other.username})).text
    assert theirs.id not in by_symbol and "No request matches" in by_symbol
    by_kind = (await client.get("/history", params={"kind": "cancel", "requester": people.trader.username})).text
    assert mine.id not in by_kind
    assert (await client.get("/history", params={"status": "nonsense"})).status_code == 400

    api = await client.get("/api/approvals", params={"requester": other.username, "symbol": "BTC/USD"})
    assert [r["id"] for r in api.json()] == [theirs.id]
    assert (await client.get("/api/approvals", params={"status": "nonsense"})).status_code == 422


async def test_an_executed_order_shows_its_result(
    client: httpx.AsyncClient, runtime: Runtime, people: People, clean_controls: None, market: Decimal
) -> None:
    intent = OrderIntent(
        account="paper", symbol="BTC/USD", side=OrderSide.BUY, type=OrderType.MARKET, quantity=Decimal("0.01")
    )
    request = await propose_order(
        runtime.db, runtime.bus, runtime.settings, intent, Requester(user=people.trader.username, kind="mcp")
    )
    await decide(runtime.db, runtime.bus, runtime.settings, request.id, people.approver, approve=True, auth="password")
    await sign_in(client, people.viewer.username)
    # a page rendered before the fill knows it is stale when its live feed connects: its state differs
    before = re.search(r'data-request-state="([^"]*)"', (await client.get(f"/inbox/{request.id}")).text)
    assert before is not None and (await client.get(f"/inbox/{request.id}/state")).json() == {"state": "approved"}
    record = await build_order_manager(runtime).submit_approved(intent, request.id)
    page = (await client.get(f"/inbox/{request.id}")).text
    after = re.search(r'data-request-state="([^"]*)"', page)
    assert after is not None and after.group(1) != before.group(1)
    assert (await client.get(f"/inbox/{request.id}/state")).json() == {"state": after.group(1)}
    assert after.group(1).split("|")[1:3] == [record.status.value, str(record.filled_quantity)]
    assert 'id="result"' in page and f"#{record.id}" in page
    assert f'<span class="status {record.status.value}">' in page
    api = (await client.get(f"/api/approvals/{request.id}")).json()
    assert api["order"]["id"] == record.id and api["order"]["status"] == record.status.value
    assert (await client.get(f"/api/orders/{record.id}")).json()["approval_id"] == request.id
    assert record.id in [o["id"] for o in (await client.get("/api/orders")).json()]
    history = (await client.get("/history", params={"requester": people.trader.username})).text
    assert f"order {record.status.value}" in history


async def test_hostile_input_is_a_clear_4xx(client: httpx.AsyncClient, people: People, propose: Propose) -> None:
    request = await propose()
    page = await client.get("/login")
    nul_login = await client.post(
        "/login",
        data={"username": "carol\x00", "password": "x\x00y", "csrf_token": form_csrf(page.text), "next": "/\x00"},
    )
    assert nul_login.status_code == 401
    await sign_in(client, people.approver.username)
    for path, code in (
        ("/inbox/apr%00x", 404),
        ("/inbox/..%2F..%2Fetc", 404),
        ("/inbox/apr%00x/state", 404),
        ("/inbox/apr_0123456789abcdef/state", 404),
        ("/history?requester=%00", 400),
        ("/history?symbol=%27%3B--", 400),
        ("/api/approvals?requester=%00", 422),
        ("/api/approvals/apr%00x", 422),
    ):
        response = await client.get(path, headers={"Accept": "text/html"})
        assert response.status_code == code, path
        assert "Traceback" not in response.text
    detail = await client.get(f"/inbox/{request.id}")
    rejected = await client.post(
        f"/inbox/{request.id}/reject",
        data={"csrf_token": form_csrf(detail.text), "seen_hash": request.intent_hash, "reason": "bad\x00reason"},
    )
    assert rejected.status_code == 422


async def test_requests_of_other_kinds_render(client: httpx.AsyncClient, runtime: Runtime, people: People) -> None:
    release = await propose_simple(
        runtime.db, runtime.bus, runtime.settings, "kill_switch_release", {"reason": "<b>drill over</b>"},
        Requester(user=people.trader.username, kind="cli"), "the drill is over",
    )  # fmt: skip
    await sign_in(client, people.approver.username)
    page = await client.get(f"/inbox/{release.id}")
    assert page.status_code == 200
    assert "release the kill switch" in page.text and "&lt;b&gt;drill over&lt;/b&gt;" in page.text
    assert 'id="chart"' not in page.text and 'id="verdict"' not in page.text
    assert f'action="/inbox/{release.id}/approve"' in page.text
    listed = (await client.get("/inbox")).text
    assert release.id in listed and '<span class="badge neutral">none</span>' in listed


async def test_the_header_shows_the_trading_mode_and_the_update_state_apart(
    client: httpx.AsyncClient, runtime: Runtime, people: People
) -> None:
    login = await client.get("/login")  # before signing in too: which IQTS is this?
    assert '<span id="mode" class="mode dry-run" data-mode="dry-run"' in login.text and ">DRY-RUN</span>" in login.text
    await sign_in(client, people.viewer.username)
    page = await client.get("/inbox")
    header = page.text[page.text.index('<header class="top">') : page.text.index("</header>")]
    assert 'class="mode dry-run"' in header and ">DRY-RUN<" in header
    assert 'id="live"' not in header and ">live<" not in header  # the green "live" badge meant live updates
    assert 'id="live" class="live off"' in page.text and "updates: <span" in page.text
    for mode, label in (("sandbox", "SANDBOX"), ("live", "LIVE TRADING")):
        other = Runtime(settings=runtime.settings.model_copy(update={"mode": mode}), db=runtime.db, bus=runtime.bus)
        transport = httpx.ASGITransport(app=create_app(other))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            shown = (await http.get("/login")).text
        assert f'class="mode {mode}" data-mode="{mode}"' in shown and f">{label}</span>" in shown
