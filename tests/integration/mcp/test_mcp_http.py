"""The mcp SDK's own client over streamable HTTP against the real API process."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from engine.runtime import Runtime
from tests.support.polling import wait_for


@asynccontextmanager
async def session(url: str, token: str) -> AsyncIterator[ClientSession]:
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        httpx.AsyncClient(headers=headers, timeout=60) as http,
        streamable_http_client(f"{url}/mcp", http_client=http) as (r, w, _),
        ClientSession(r, w) as s,
    ):
        await s.initialize()
        yield s


async def _raw_call(url: str, token: str, params: str) -> str:
    """A tools/call whose JSON the SDK's client could not send (a lone surrogate escape), over plain HTTP."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json",
               "Accept": "application/json, text/event-stream"}  # fmt: skip
    client_info = {"name": "raw", "version": "1"}
    params_init = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": client_info}
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": params_init}
    async with httpx.AsyncClient(timeout=60) as client:
        opened = await client.post(f"{url}/mcp", json=init, headers=headers)
        assert opened.status_code == 200, opened.text
        headers["mcp-session-id"] = opened.headers["mcp-session-id"]
        await client.post(f"{url}/mcp", json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers)
        body = '{"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": ' + params + "}"
        answer = await client.post(f"{url}/mcp", content=body, headers=headers)
        return answer.text


def structured(result: Any) -> dict[str, Any]:
    assert not result.isError, result.content
    assert result.structuredContent is not None
    return dict(result.structuredContent)


async def test_unauthenticated_calls_are_refused(mcp_api: tuple[str, Runtime]) -> None:
    url, _ = mcp_api
    async with httpx.AsyncClient() as client:
        body = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}
        missing = await client.post(f"{url}/mcp", json=body)
        forged = await client.post(f"{url}/mcp", json=body, headers={"Authorization": "Bearer iqts_forged"})
    assert missing.status_code == 401 and "bearer" in missing.json()["detail"]
    assert forged.status_code == 401


async def test_tools_publish_input_and_output_schemas(mcp_api: tuple[str, Runtime], trader_token: str) -> None:
    url, _ = mcp_api
    async with session(url, trader_token) as s:
        tools = {t.name: t for t in (await s.list_tools()).tools}
    for name in (
        "list_markets",
        "get_ohlcv",
        "get_ticker",
        "data_coverage",
        "get_portfolio",
        "get_risk_status",
        "check_order",
        "propose_order",
        "propose_cancel",
        "get_approval",
        "list_approvals",
        "engage_kill_switch",
    ):
        assert name in tools, name
        assert tools[name].outputSchema is not None, name
    assert tools["get_ohlcv"].annotations is not None and tools["get_ohlcv"].annotations.readOnlyHint
    assert tools["propose_order"].annotations is not None and not tools["propose_order"].annotations.readOnlyHint
    assert "approve" not in " ".join(tools)  # nothing a client can call approves


async def test_data_tools_on_the_real_sample(mcp_api: tuple[str, Runtime], viewer_token: str) -> None:
    url, _ = mcp_api
    async with session(url, viewer_token) as s:
        markets = structured(await s.call_tool("list_markets", {}))["markets"]
        assert {(m["symbol"], m["timeframe"]) for m in markets} >= {("BTC/USD", "1h"), ("ETH/USD", "1d")}
        bars = structured(await s.call_tool("get_ohlcv", {"symbol": "BTC/USD", "timeframe": "1h", "limit": 5}))
        assert len(bars["bars"]) == 5 and bars["truncated"]
        assert bars["bars"][-1]["ts"] == 1571302800000  # 2019-10-17 09:00 UTC, the last real bar
        ticker = structured(await s.call_tool("get_ticker", {"symbol": "BTC/USD"}))
        assert ticker["last"] > 0
        cov = structured(await s.call_tool("data_coverage", {"symbol": "ETH/USD"}))["series"]
        assert cov[0]["rows"] == 788


@pytest.mark.parametrize(
    ("tool", "args", "expected"),
    [
        ("get_ohlcv", {"symbol": "DOGE/EUR"}, "no stored data for DOGE/EUR"),
        ("get_ohlcv", {"symbol": "BTC/USD", "limit": "many"}, "limit"),
        ("get_ohlcv", {"symbol": "BTC/USD", "limit": 100000}, "limit"),
        ("get_ticker", {}, "symbol"),
        ("get_approval", {"approval_id": "apr_nope"}, "no approval request apr_nope"),
    ],
)
async def test_bad_input_is_a_clear_tool_error(
    mcp_api: tuple[str, Runtime], viewer_token: str, tool: str, args: dict[str, Any], expected: str
) -> None:
    url, _ = mcp_api
    async with session(url, viewer_token) as s:
        result = await s.call_tool(tool, args)
    assert result.isError
    text = " ".join(c.text for c in result.content if hasattr(c, "text"))
    assert expected in text
    assert "Traceback" not in text


async def test_a_viewer_cannot_propose(mcp_api: tuple[str, Runtime], viewer_token: str) -> None:
    url, _ = mcp_api
    async with session(url, viewer_token) as s:
        result = await s.call_tool("propose_order", {"order": {"symbol": "BTC/USD", "side": "buy", "quantity": "0.01"}})
    assert result.isError
    assert "needs trader" in result.content[0].text  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("order", "expected"),
    [
        ({"symbol": "DOGE", "side": "buy", "quantity": "0.01"}, "symbol: no stored data for DOGE"),
        ({"symbol": "BTC/", "side": "buy", "quantity": "0.01"}, "symbol"),
        ({"symbol": "BTC/USD", "side": "buy", "quantity": "0.01", "type": "limit"}, "a limit order needs a price"),
    ],
)
async def test_an_order_that_is_not_one_names_its_field_and_files_nothing(
    mcp_api: tuple[str, Runtime], trader_token: str, order: dict[str, Any], expected: str
) -> None:
    """The model corrects a call from its error: the error says which field and how (not pydantic's docs link)."""
    url, _ = mcp_api
    async with session(url, trader_token) as s:
        before = structured(await s.call_tool("list_approvals", {"limit": 200}))["approvals"]
        result = await s.call_tool("propose_order", {"order": order})
        after = structured(await s.call_tool("list_approvals", {"limit": 200}))["approvals"]
    text = " ".join(c.text for c in result.content if hasattr(c, "text"))
    assert result.isError and expected in text
    assert "errors.pydantic.dev" not in text and "Traceback" not in text
    assert len(after) == len(before)


async def test_an_asset_alone_is_read_as_its_priced_market_and_the_result_says_so(
    mcp_api: tuple[str, Runtime], trader_token: str
) -> None:
    url, _ = mcp_api
    async with session(url, trader_token) as s:
        checked = structured(
            await s.call_tool("check_order", {"order": {"symbol": "bitcoin", "side": "buy", "quantity": "0.01"}})
        )
        out = structured(
            await s.call_tool("propose_order", {"order": {"symbol": "BTC", "side": "buy", "quantity": "0.01"}})
        )
        exact = structured(
            await s.call_tool("check_order", {"order": {"symbol": "BTC/USD", "side": "buy", "quantity": "0.01"}})
        )
    assert checked["read_as"] == "symbol 'bitcoin' read as BTC/USD"
    assert out["intent"]["symbol"] == "BTC/USD" and out["read_as"] == "symbol 'BTC' read as BTC/USD"
    assert out["status"] in ("pending", "rejected") and "BTC/USD" in out["summary"]
    assert exact["read_as"] is None  # a market as written is never changed


async def test_propose_order_files_a_pending_request_and_executes_nothing(
    mcp_api: tuple[str, Runtime], trader_token: str
) -> None:
    url, runtime = mcp_api
    async with session(url, trader_token) as s:
        out = structured(
            await s.call_tool(
                "propose_order",
                {
                    "order": {"symbol": "BTC/USD", "side": "buy", "quantity": "0.05"},
                    "rationale": "SMA cross turned up (see backtest)",
                },
            )
        )
        again = structured(await s.call_tool("get_approval", {"approval_id": out["approval_id"]}))
    assert out["status"] == "pending" and out["risk_allowed"] is True
    assert out["inbox_url"].endswith(f"/inbox/{out['approval_id']}")
    assert "untrusted-data" in out["rationale"]
    assert again["status"] == "pending"
    with runtime.db.connection() as conn:
        orders = conn.execute("SELECT count(*) FROM orders WHERE approval_id = %s", (out["approval_id"],)).fetchone()
        audit = conn.execute(
            "SELECT count(*) FROM audit_log WHERE subject = %s", (f"approval:{out['approval_id']}",)
        ).fetchone()
    assert orders == (0,)
    assert audit is not None and audit[0] >= 2  # the request and its risk verdict
    assert json.loads(json.dumps(out))  # plain JSON


async def test_an_order_failing_risk_is_refused_at_proposal(mcp_api: tuple[str, Runtime], trader_token: str) -> None:
    url, _ = mcp_api
    async with session(url, trader_token) as s:
        out = structured(
            await s.call_tool(
                "propose_order",
                {
                    "order": {"symbol": "BTC/USD", "side": "buy", "quantity": "50"},  # ~400k USD notional
                },
            )
        )
    assert out["status"] == "rejected" and out["risk_allowed"] is False
    assert "max_order_notional" in out["risk_summary"]


async def test_closing_a_session_logs_no_error(
    mcp_api: tuple[str, Runtime], viewer_token: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The SDK client ends its session with DELETE /mcp: nothing at WARNING or above, no traceback (before, the
    SDK's transport logged "Error in standalone SSE writer" with an anyio.ClosedResourceError traceback)."""
    url, _ = mcp_api
    caplog.set_level(logging.DEBUG, logger="mcp")
    async with session(url, viewer_token) as s:
        await s.list_tools()

    def writer_closed() -> bool:  # the SDK's last word on the closed session (its writer's `finally`)
        return any(r.getMessage() == "Closing standalone SSE writer" for r in caplog.records)

    await asyncio.to_thread(wait_for, "the server to close the session's SSE writer", writer_closed, timeout=30)
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]
    assert not loud, [(r.name, r.levelname, r.getMessage()) for r in loud]


async def test_deeply_nested_json_answers_400_not_500(mcp_api: tuple[str, Runtime], trader_token: str) -> None:
    url, _ = mcp_api
    deep = "[" * 100_000 + "]" * 100_000
    body = '{"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"x": ' + deep + "}}"
    headers = {"Authorization": f"Bearer {trader_token}", "Content-Type": "application/json",
               "Accept": "application/json, text/event-stream"}  # fmt: skip
    async with httpx.AsyncClient(timeout=60) as client:
        answer = await client.post(f"{url}/mcp", content=body, headers=headers)
    assert answer.status_code == 400 and "nested deeper" in answer.json()["detail"]


async def test_refused_tool_calls_are_audited_and_answer_a_tool_error(
    mcp_api: tuple[str, Runtime], trader_token: str
) -> None:
    """Calls refused for their arguments (most of a fuzz run) and a lone surrogate: a tool error and an audit row."""
    url, runtime = mcp_api
    with runtime.db.connection() as conn:
        before = conn.execute("SELECT coalesce(max(seq), 0) FROM audit_log").fetchone()
    assert before is not None
    async with session(url, trader_token) as s:
        invalid = await s.call_tool("get_ohlcv", {"symbol": "BTC/USD", "timeframe": "1h", "limit": "many"})
        unknown = await s.call_tool("no_such_tool", {})
    for result in (invalid, unknown):
        assert result.isError
        text = " ".join(getattr(c, "text", "") for c in result.content)
        assert "Traceback" not in text, text
    lone = await _raw_call(url, trader_token, r'{"name": "get_ticker", "arguments": {"symbol": "BTC/\ud800USD"}}')
    assert '"isError":true' in lone.replace(" ", "") and "surrogate" in lone and "codec" not in lone, lone
    with runtime.db.connection() as conn:
        rows = conn.execute(
            "SELECT subject, payload_json FROM audit_log WHERE seq > %s AND action = 'tool.refused' ORDER BY seq",
            (before[0],),
        ).fetchall()
    assert [r[0] for r in rows] == ["tool:get_ohlcv", "tool:no_such_tool", "tool:get_ticker"]
    assert rows[2][1]["arguments"]["symbol"] == "BTC/\\ud800USD"  # audited as given, escaped
    assert all(r[1]["error"] for r in rows)
