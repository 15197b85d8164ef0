"""One signed-in person's copilot for one chat session: an MCP token of their own, the Copilot held open, the
approval cards it watches.

The copilot reaches the tools over ``/mcp`` with a bearer token issued for this session (named ``chat-<session>``,
so it shows up as such in ``iqts users`` and the audit log) and revoked when the session ends: what the person may
do in the chat is exactly what their role allows over MCP.

Chainlit runs each callback in a task of its own, while the MCP client's task group must be exited by the task
that entered it: a small holder task owns the ``Copilot.connect`` context for the session's lifetime.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from langchain_core.language_models import BaseChatModel
from pydantic import SecretStr

from agent.mcp import McpHttp
from agent.session import Copilot
from approvals import users
from approvals.users import issue_token
from engine.errors import ConfigError
from engine.settings import Settings
from engine.store.database import Database
from engine.telemetry import get_logger
from ui.chat.config import ChatSettings, api_url
from ui.chat.render import ApprovalState

log = get_logger(__name__)

ModelFactory = Callable[[], BaseChatModel]


def load_model_factory(spec: str | None) -> ModelFactory | None:
    """``module:callable`` (IQTS_CHAT_MODEL_FACTORY) as a function returning a chat model; None when unset."""
    if not spec:
        return None
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ConfigError(f"IQTS_CHAT_MODEL_FACTORY={spec!r}: expected 'module:callable'")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as error:
        raise ConfigError(f"IQTS_CHAT_MODEL_FACTORY={spec!r}: {error}") from None
    if not callable(factory):
        raise ConfigError(f"IQTS_CHAT_MODEL_FACTORY={spec!r} is not callable")
    return factory  # type: ignore[no-any-return]


def token_name(session_id: str) -> str:
    return f"chat-{session_id[:12]}"


def revoke_token(db: Database, token: str, *, actor: str) -> bool:
    """Revoke this session's token only (see ``approvals.users.revoke_token``)."""
    return users.revoke_token(db, token, actor=actor)


class CopilotLease:
    """A ``Copilot.connect`` context held open by a task of its own until ``close``."""

    def __init__(self, opener: Callable[[], AbstractAsyncContextManager[Copilot]]) -> None:
        self._opener = opener
        self._ready: asyncio.Future[Copilot] = asyncio.get_running_loop().create_future()
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self._hold(), name="chat-copilot")

    async def _hold(self) -> None:
        try:
            async with self._opener() as copilot:
                self._ready.set_result(copilot)
                await self._stop.wait()
        except BaseException as error:
            if not self._ready.done():
                self._ready.set_exception(error)
            elif not isinstance(error, asyncio.CancelledError):
                log.warning("chat.copilot_closed_with_error", error=str(error)[:300])

    async def copilot(self) -> Copilot:
        return await asyncio.shield(self._ready)

    @property
    def alive(self) -> bool:
        return not self._task.done()

    async def close(self) -> None:
        self._stop.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout=10)
        except TimeoutError:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


class SessionClosedError(RuntimeError):
    """The chat session ended: its copilot is not opened again (its token is revoked)."""


class ChatAgent:
    """The copilot of one chat session, opened on first use, with the session's MCP token."""

    def __init__(
        self,
        *,
        db: Database,
        settings: Settings,
        chat: ChatSettings,
        username: str,
        session_id: str,
        model_factory: ModelFactory | None = None,
        checkpoint_url: str | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.chat = chat
        self.username = username
        self.session_id = session_id
        self.model_factory = model_factory
        self.checkpoint_url = checkpoint_url if checkpoint_url is not None else db.url
        self.lock = asyncio.Lock()
        """One graph run at a time in this session (a question, or the resume after a decision)."""
        self.watches: dict[str, asyncio.Task[None]] = {}
        self._lease: CopilotLease | None = None
        self._token: str | None = None
        self._opening = asyncio.Lock()
        self._closed = False

    @property
    def actor(self) -> str:
        return f"chat:{self.username}"

    def _open(self) -> AbstractAsyncContextManager[Copilot]:
        assert self._token is not None
        model = self.model_factory() if self.model_factory is not None else None
        return Copilot.connect(
            self.settings,
            mcp=McpHttp(url=api_url(self.settings, self.chat), token=SecretStr(self._token)),
            checkpoint_url=self.checkpoint_url,
            model=model,
        )

    async def copilot(self) -> Copilot:
        """The session's Copilot (connecting on first use, or again after a dropped connection)."""
        async with self._opening:
            if self._closed:
                raise SessionClosedError("this chat session has ended")
            if self._lease is not None and self._lease.alive:
                return await self._lease.copilot()
            if self._token is None:
                name = token_name(self.session_id)
                self._token = await asyncio.to_thread(issue_token, self.db, self.username, name, actor=self.actor)
            self._lease = CopilotLease(self._open)
            try:
                return await self._lease.copilot()
            except BaseException:
                self._lease = None
                raise

    def watch(self, approval_id: str, job: Callable[[], Awaitable[None]]) -> None:
        """Run ``job`` (an approval card's live status) until it ends or the session closes; one per approval."""
        current = self.watches.get(approval_id)
        if current is not None and not current.done():
            return

        async def run() -> None:
            try:
                await job()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # a watch must never take the session down; say why it stopped
                log.warning("chat.watch_failed", approval_id=approval_id, error=str(error)[:300])
            finally:
                self.watches.pop(approval_id, None)

        self.watches[approval_id] = asyncio.create_task(run(), name=f"chat-watch-{approval_id}")

    async def approval_state(self, approval_id: str) -> ApprovalState | None:
        """The request's status read back through ``get_approval`` (None when it cannot be read)."""
        copilot = await self.copilot()
        result: Any = await copilot.connection.session.call_tool("get_approval", {"approval_id": approval_id})
        if result.isError or not isinstance(result.structuredContent, dict):
            return None
        return ApprovalState.from_tool(result.structuredContent)

    async def close(self) -> None:
        """Stop the watches, close the copilot, revoke the session's token."""
        for task in list(self.watches.values()):
            task.cancel()
        await asyncio.gather(*self.watches.values(), return_exceptions=True)
        self.watches.clear()
        self._closed = True
        async with self._opening:  # an open in flight (a page closed while it connects) finishes first
            lease, self._lease = self._lease, None
            token, self._token = self._token, None
        try:
            if lease is not None:
                await lease.close()
        finally:  # the token is revoked even when closing the connection fails
            if token is not None:
                await asyncio.to_thread(revoke_token, self.db, token, actor=self.actor)
