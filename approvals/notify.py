"""Notifications on new approval requests: a webhook and, optionally, a Telegram message.

``run_notifier(runtime, stop_event)`` consumes ``approvals.events`` (consumer group ``notifier``) and, for each
request that became pending, sends one message to each configured channel: one attempt with a timeout, the
outcome logged, the bus message acked either way (a dead receiver never causes a retry storm). Messages hold
what an approver needs to decide whether to open the inbox (the order, who asked, the risk check, the link)
and never a secret; the logs never show the webhook URL or the bot token, which may carry credentials.

Configuration (environment, or the ``.env`` file), read by :class:`NotifySettings`:

* ``IQTS_WEBHOOK_URL``: POST JSON here; ``IQTS_WEBHOOK_SECRET`` (optional) signs the body
  (header ``X-IQTS-Signature: sha256=<hex HMAC of the body>``); ``IQTS_WEBHOOK_TIMEOUT_S`` (default 5).
* ``IQTS_TELEGRAM_BOT_TOKEN`` and ``IQTS_TELEGRAM_CHAT_ID``: send a Telegram message through the Bot API
  (``IQTS_TELEGRAM_API_URL``, default https://api.telegram.org).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final, Protocol
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, SecretStr

from approvals.service import EVENTS_TOPIC, ApprovalRequest, get_request
from engine.bus import Bus, Message
from engine.bus.consumer import process_once
from engine.intents import intent_data
from engine.runtime import Runtime
from engine.settings import NotifySettings, Settings
from engine.store.database import Database
from engine.telemetry import get_logger

log = get_logger(__name__)

NOTIFIER_GROUP: Final = "notifier"
MAX_RATIONALE: Final = 500
USER_AGENT: Final = "iqts-notifier"


# -- what is sent ---------------------------------------------------------------------------------------
class PendingNotice(BaseModel):
    """The message about one new pending request (the webhook's JSON body)."""

    event: str = "approval.pending"
    id: str
    kind: str
    summary: str
    intent: dict[str, Any]
    requested_by: str
    via: str
    rationale: str
    risk_check: str
    created_at: datetime
    expires_at: datetime
    inbox_url: str


_INTENT_FIELDS: Final = (
    "account",
    "symbol",
    "side",
    "type",
    "quantity",
    "price",
    "stop_price",
    "mode",
    "time_in_force",
    "strategy",
    "order_id",
)


def _risk_line(request: ApprovalRequest) -> str:
    verdict = request.risk_verdict
    if not verdict:
        return "no risk check for this kind"
    results = verdict.get("results", [])
    if verdict.get("allowed"):
        return f"passed ({len(results)} rules, policy {verdict.get('policy_version')})"
    failed = [r.get("rule", "?") for r in results if not r.get("passed")]
    return f"failed: {', '.join(failed)} (policy {verdict.get('policy_version')})"


def build_notice(request: ApprovalRequest, api_url: str) -> PendingNotice:
    """The notice of ``request``: only the fields of the intent a person decides on, no secret."""
    rationale = request.rationale.strip()
    intent = intent_data(request.intent)
    if len(rationale) > MAX_RATIONALE:
        rationale = rationale[: MAX_RATIONALE - 1] + "…"
    return PendingNotice(
        id=request.id,
        kind=request.kind,
        summary=request.describe(),
        intent={k: intent[k] for k in _INTENT_FIELDS if intent.get(k) is not None},
        requested_by=request.requested_by,
        via=request.requester_kind,
        rationale=rationale,
        risk_check=_risk_line(request),
        created_at=request.created_at,
        expires_at=request.expires_at,
        inbox_url=f"{api_url.rstrip('/')}/inbox/{request.id}",
    )


def telegram_text(notice: PendingNotice) -> str:
    """A plain-text Telegram message (no parse mode, so nothing in it is interpreted as markup)."""
    minutes = max(0, int((notice.expires_at - datetime.now(UTC)).total_seconds() // 60))
    lines = [
        "IQTS: approval needed",
        notice.summary,
        f"asked by {notice.requested_by} via {notice.via}",
        f"risk check: {notice.risk_check}",
    ]
    if notice.rationale:
        lines.append(f"why: {notice.rationale}")
    lines += [f"expires in {minutes} min", notice.inbox_url]
    return "\n".join(lines)


# -- channels -------------------------------------------------------------------------------------------
class Channel(Protocol):
    name: str

    async def send(self, notice: PendingNotice) -> bool:
        """One attempt; True when the receiver accepted it. Never raises for network trouble."""
        ...


def _host(url: str) -> str:
    return urlsplit(url).hostname or "?"


class WebhookChannel:
    """POST the notice as JSON to a URL (optionally HMAC-signed)."""

    name = "webhook"

    def __init__(
        self,
        url: SecretStr,
        *,
        secret: SecretStr | None = None,
        timeout_s: float = 5.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self._url = url
        self._secret = secret
        self._timeout = timeout_s
        self._client = client

    def sign(self, body: bytes) -> str | None:
        if self._secret is None:
            return None
        digest = hmac.new(self._secret.get_secret_value().encode(), body, hashlib.sha256).hexdigest()
        return f"sha256={digest}"

    async def send(self, notice: PendingNotice) -> bool:
        body = notice.model_dump_json().encode()
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, "X-IQTS-Event": notice.event}
        signature = self.sign(body)
        if signature is not None:
            headers["X-IQTS-Signature"] = signature
        url = self._url.get_secret_value()
        return await _post(self._client, url, body, headers, self._timeout, channel=self.name, request_id=notice.id)


class TelegramChannel:
    """Send the notice as a Telegram message through the Bot API's ``sendMessage``."""

    name = "telegram"

    def __init__(
        self,
        bot_token: SecretStr,
        chat_id: str,
        *,
        api_url: str = "https://api.telegram.org",
        timeout_s: float = 5.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self._token = bot_token
        self._chat_id = chat_id
        self._api_url = api_url.rstrip("/")
        self._timeout = timeout_s
        self._client = client

    async def send(self, notice: PendingNotice) -> bool:
        body = json.dumps(
            {"chat_id": self._chat_id, "text": telegram_text(notice), "disable_web_page_preview": True}
        ).encode()
        url = f"{self._api_url}/bot{self._token.get_secret_value()}/sendMessage"
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
        return await _post(self._client, url, body, headers, self._timeout, channel=self.name, request_id=notice.id)


async def _post(
    client: httpx.AsyncClient | None,
    url: str,
    body: bytes,
    headers: dict[str, str],
    timeout_s: float,
    *,
    channel: str,
    request_id: str,
) -> bool:
    """One POST; logs the outcome by channel and host only (URLs and tokens may hold secrets)."""
    owned = client is None
    http = client or httpx.AsyncClient(follow_redirects=False)
    try:
        response = await http.post(url, content=body, headers=headers, timeout=timeout_s)
    except httpx.HTTPError as error:
        log.warning("notify.failed", channel=channel, host=_host(url), id=request_id, error=type(error).__name__)
        return False
    finally:
        if owned:
            await http.aclose()
    if response.is_success:
        log.info("notify.sent", channel=channel, host=_host(url), id=request_id, status=response.status_code)
        return True
    log.warning("notify.refused", channel=channel, host=_host(url), id=request_id, status=response.status_code)
    return False


def channels(config: NotifySettings, client: httpx.AsyncClient | None = None) -> list[Channel]:
    """The configured channels (none when nothing is set)."""
    found: list[Channel] = []
    if config.webhook_url is not None:
        found.append(
            WebhookChannel(
                config.webhook_url, secret=config.webhook_secret, timeout_s=config.webhook_timeout_s, client=client
            )
        )
    if config.telegram_bot_token is not None and config.telegram_chat_id:
        found.append(
            TelegramChannel(
                config.telegram_bot_token,
                config.telegram_chat_id,
                api_url=config.telegram_api_url,
                timeout_s=config.telegram_timeout_s,
                client=client,
            )
        )
    return found


# -- the consumer ---------------------------------------------------------------------------------------
async def notify_pending(
    db: Database, settings: Settings, targets: Sequence[Channel], request_id: str
) -> dict[str, bool]:
    """Send the notice of one request to every channel, if it is still pending; {channel: delivered}."""
    request = await asyncio.to_thread(get_request, db, request_id)
    if request.status != "pending":
        return {}
    notice = build_notice(request, settings.api_url)
    results = await asyncio.gather(*(target.send(notice) for target in targets))
    return {target.name: ok for target, ok in zip(targets, results, strict=True)}


async def run_notifier(
    runtime: Runtime,
    stop_event: asyncio.Event,
    *,
    config: NotifySettings | None = None,
    consumer: str = "notifier-1",
    client: httpx.AsyncClient | None = None,
) -> None:
    """Notify on every request that becomes pending, until ``stop_event`` is set."""
    config = config or runtime.settings.notify
    targets = channels(config, client)
    if not targets:
        log.info("notify.disabled", reason="no IQTS_WEBHOOK_URL or Telegram bot configured")
        await stop_event.wait()
        return
    bus: Bus = runtime.bus
    await bus.ensure_group(EVENTS_TOPIC, NOTIFIER_GROUP, start="$")
    log.info("notify.started", channels=[t.name for t in targets])

    async def handle(message: Message) -> None:
        if message.payload.get("status") != "pending" or not isinstance(message.payload.get("id"), str):
            return
        try:
            await notify_pending(runtime.db, runtime.settings, targets, message.payload["id"])
        except Exception:  # one attempt per request: a failure is logged, never retried in a loop
            log.exception("notify.handler_failed", id=message.payload.get("id"))

    while not stop_event.is_set():
        try:
            await process_once(
                bus,
                EVENTS_TOPIC,
                NOTIFIER_GROUP,
                consumer,
                handle,
                block_ms=runtime.settings.bus_block_ms,
                reclaim_idle_ms=runtime.settings.bus_reclaim_idle_ms,
            )
        except Exception:
            log.exception("notify.bus_failed")
            await _sleep_or_stop(stop_event, 1.0)


async def _sleep_or_stop(stop_event: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop_event.wait(), timeout=seconds)
    except TimeoutError:
        return
