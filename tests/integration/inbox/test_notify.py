"""Webhook and Telegram notifications on new requests, against real HTTP servers on the loopback."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from pydantic import SecretStr, ValidationError
from structlog.testing import capture_logs

from approvals.notify import (
    NOTIFIER_GROUP,
    NotifySettings,
    PendingNotice,
    TelegramChannel,
    WebhookChannel,
    build_notice,
    notify_pending,
    run_notifier,
)
from approvals.service import EVENTS_TOPIC, decide
from engine.runtime import Runtime
from tests.integration.inbox.helpers import People, Propose


@dataclass
class Receiver:
    """A loopback HTTP server that records every POST and answers with ``status``."""

    url: str = ""
    status: int = 200
    calls: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    state = Receiver()

    async def record(request: web.Request) -> web.Response:
        state.calls.append((request.path, dict(request.headers), await request.read()))
        state.arrived.set()
        return web.json_response({"ok": state.status < 400}, status=state.status)

    app = web.Application()
    app.router.add_post("/{tail:.*}", record)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    state.url = f"http://127.0.0.1:{port}"
    yield state
    await runner.cleanup()


async def _run_until(runtime: Runtime, config: NotifySettings, receiver: Receiver, propose: Propose) -> Any:
    stop = asyncio.Event()
    task = asyncio.create_task(run_notifier(runtime, stop, config=config))
    try:
        for _ in range(200):  # the notifier reads from "$": let it create its consumer group first
            try:
                await runtime.bus.pending(EVENTS_TOPIC, NOTIFIER_GROUP)
                break
            except KeyError:
                await asyncio.sleep(0.01)
        request = await propose()
        await asyncio.wait_for(receiver.arrived.wait(), 10)
        return request
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def test_webhook_posts_each_new_pending_request(
    runtime: Runtime, people: People, propose: Propose, receiver: Receiver
) -> None:
    config = NotifySettings(
        webhook_url=SecretStr(receiver.url + "/hooks/iqts?key=hook-secret-123"),
        webhook_secret=SecretStr("signing-secret-456"),
        webhook_timeout_s=2,
    )
    request = await _run_until(runtime, config, receiver, propose)
    assert len(receiver.calls) == 1
    path, headers, body = receiver.calls[0]
    assert path == "/hooks/iqts"
    assert headers["Content-Type"] == "application/json" and headers["X-IQTS-Event"] == "approval.pending"
    expected = "sha256=" + hmac.new(b"signing-secret-456", body, hashlib.sha256).hexdigest()
    assert headers["X-IQTS-Signature"] == expected
    notice = PendingNotice.model_validate_json(body)
    assert notice.id == request.id and notice.kind == "order" and notice.requested_by == people.trader.username
    assert notice.summary.startswith("buy 0.05 BTC/USD limit @ ")
    assert notice.inbox_url == f"{runtime.settings.api_url}/inbox/{request.id}"
    assert notice.risk_check.startswith("passed (")
    assert set(notice.intent) == {"account", "symbol", "side", "type", "quantity", "price", "mode", "time_in_force"}
    text = body.decode()
    for secret in ("hook-secret-123", "signing-secret-456", people.trader_token, "correct horse"):
        assert secret not in text


async def test_a_failing_receiver_gets_one_attempt_and_no_secret_in_logs(
    runtime: Runtime, propose: Propose, receiver: Receiver
) -> None:
    receiver.status = 500
    config = NotifySettings(webhook_url=SecretStr(receiver.url + "/hook-secret-789"), webhook_timeout_s=2)
    with capture_logs() as logs:
        await _run_until(runtime, config, receiver, propose)  # returns once the notifier has ended
    assert len(receiver.calls) == 1  # refused once, not retried
    refused = [entry for entry in logs if entry["event"] == "notify.refused"]
    assert refused and refused[0]["status"] == 500 and refused[0]["host"] == "127.0.0.1"
    assert "hook-secret-789" not in json.dumps(logs, default=str)

    dead = WebhookChannel(SecretStr("http://127.0.0.1:1/hook-secret-789"), timeout_s=1)
    notice = build_notice(await propose(), runtime.settings.api_url)
    with capture_logs() as logs:
        assert await dead.send(notice) is False
    assert logs[0]["event"] == "notify.failed" and "hook-secret-789" not in json.dumps(logs, default=str)


async def test_telegram_message(runtime: Runtime, propose: Propose, receiver: Receiver) -> None:
    token = "123456:telegram-bot-token-abc"
    channel = TelegramChannel(SecretStr(token), "-1001234", api_url=receiver.url, timeout_s=2)
    request = await propose(rationale="breakout above the 20-day high")
    with capture_logs() as logs:
        assert await channel.send(build_notice(request, "https://iqts.example")) is True
    path, _headers, body = receiver.calls[0]
    assert path == f"/bot{token}/sendMessage"
    payload = json.loads(body)
    assert payload["chat_id"] == "-1001234" and payload["disable_web_page_preview"] is True
    assert "parse_mode" not in payload  # plain text: nothing in a rationale is taken as markup
    text = payload["text"]
    assert text.startswith("IQTS: approval needed\nbuy 0.05 BTC/USD limit @ ")
    assert "why: breakout above the 20-day high" in text
    assert text.endswith(f"https://iqts.example/inbox/{request.id}")
    assert token not in text and token not in json.dumps(logs, default=str)


async def test_only_pending_requests_are_notified(
    runtime: Runtime, people: People, propose: Propose, receiver: Receiver
) -> None:
    channel = WebhookChannel(SecretStr(receiver.url + "/x"), timeout_s=2)
    request = await propose()
    await decide(
        runtime.db, runtime.bus, runtime.settings, request.id, people.approver, approve=False, auth="password",
        reason="no",
    )  # fmt: skip
    assert await notify_pending(runtime.db, runtime.settings, [channel], request.id) == {}
    assert receiver.calls == []
    assert await notify_pending(runtime.db, runtime.settings, [channel], (await propose()).id) == {"webhook": True}
    assert len(receiver.calls) == 1


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IQTS_WEBHOOK_URL", "https://hooks.example/abc")
    monkeypatch.setenv("IQTS_TELEGRAM_BOT_TOKEN", "42:xyz-token")
    monkeypatch.setenv("IQTS_TELEGRAM_CHAT_ID", "99")
    config = NotifySettings(_env_file=None)  # type: ignore[call-arg]
    assert config.webhook_url is not None and config.webhook_url.get_secret_value() == "https://hooks.example/abc"
    assert "abc" not in repr(config) and "xyz-token" not in repr(config)
    assert config.telegram_chat_id == "99"
    monkeypatch.setenv("IQTS_WEBHOOK_URL", "file:///etc/passwd")
    with pytest.raises(ValidationError, match="http"):
        NotifySettings(_env_file=None)  # type: ignore[call-arg]
