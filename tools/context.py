"""What every tool shares: the runtime, who is calling, auditing, clear errors, untrusted-data marking.

The runtime reaches a tool through the FastMCP lifespan context (``ctx.request_context.lifespan_context``): each
server built by ``tools.server.build_server`` carries its own :class:`ToolRuntime`, so two servers (two apps) in one
process never share or overwrite each other's runtime.

A tool validates its input (pydantic, via its signature), calls one service function, returns a pydantic
model. ``tool_call`` wraps that: it resolves the caller (the HTTP bearer token's user, or the local stdio
user), checks the role, audits the call (arguments redacted), and turns IQTS errors into MCP tool errors
whose text is the one-line reason.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from mcp.server.fastmcp import Context, FastMCP
from mcp.server.fastmcp.exceptions import ToolError
from pydantic import BaseModel

from approvals.users import PermissionDeniedError, Role, User, require
from engine.audit.log import record as audit
from engine.errors import IQTSError
from engine.runtime import Runtime
from engine.telemetry import get_logger, redact_text

log = get_logger(__name__)

T = TypeVar("T")

LOCAL_USER = User(id=0, username="local", role=Role.TRADER)
"""The caller of the stdio transport: the person who started `iqts mcp` on their own machine."""


@dataclass
class ToolRuntime:
    """The process runtime plus how the transport identifies callers."""

    runtime: Runtime
    transport: str  # "stdio" | "http"
    local_user: User = field(default_factory=lambda: LOCAL_USER)


Bound = ToolRuntime | asyncio.Future[ToolRuntime]


def lifespan(tool_runtime: Bound) -> Callable[[FastMCP[Any]], AbstractAsyncContextManager[Bound]]:
    """The FastMCP lifespan that hands ``tool_runtime`` to every request of the server (stdio: one session; HTTP:
    each session enters it). The runtime's own lifetime belongs to the process that built it.

    A future stands for a runtime still starting (``iqts mcp`` answers ``initialize`` first); the server lets no
    tool run before it is resolved."""

    @asynccontextmanager
    async def run(_server: FastMCP[Any]) -> AsyncIterator[Bound]:
        yield tool_runtime

    return run


def current(ctx: Context[Any, Any, Any] | None) -> ToolRuntime:
    """The runtime of the server handling this request (its lifespan context)."""
    state: object = None
    if ctx is not None:
        try:
            state = ctx.request_context.lifespan_context
        except (ValueError, LookupError):
            state = None
    if isinstance(state, asyncio.Future) and state.done() and not state.cancelled() and state.exception() is None:
        state = state.result()
    if not isinstance(state, ToolRuntime):
        raise ToolError("IQTS tools are not bound to a runtime")
    return state


def caller(ctx: Context[Any, Any, Any] | None) -> User:
    """The user behind this call: the bearer token's (HTTP) or the local user (stdio)."""
    state = current(ctx)
    request = None
    if ctx is not None:
        try:
            request = ctx.request_context.request
        except (ValueError, LookupError):
            request = None
    if request is not None:
        user = getattr(getattr(request, "state", None), "iqts_user", None)
        if not isinstance(user, User):
            raise ToolError("unauthenticated: send Authorization: Bearer <token> (iqts users token NAME)")
        return user
    if state.transport == "http":
        raise ToolError("unauthenticated")
    return state.local_user


class AuditedToolError(ToolError):
    """A tool error already written to the audit log (by ``tool_call``)."""


def has_lone_surrogate(value: Any) -> bool:
    """Whether a string anywhere in ``value`` holds a lone surrogate (not Unicode: it cannot be stored or sent)."""
    if isinstance(value, str):
        return any("\ud800" <= ch <= "\udfff" for ch in value)
    if isinstance(value, dict):
        return any(has_lone_surrogate(k) or has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(has_lone_surrogate(v) for v in value)
    return False


def storable(value: Any) -> Any:
    """``value`` with every lone surrogate written as its escape (``\\ud800``), so it can be audited as given."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {storable(k): storable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [storable(v) for v in value]
    return value


def _summary(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return storable(value.model_dump(mode="json"))
    return storable(value)


async def audit_refusal(ctx: Context[Any, Any, Any] | None, name: str, arguments: dict[str, Any], reason: str) -> None:
    """A tool call refused before its tool ran (unknown tool, invalid arguments): audited like any other call."""
    state = current(ctx)
    try:
        who = caller(ctx).username
    except ToolError:
        who = "anonymous"
    await asyncio.to_thread(
        audit,
        state.runtime.db,
        who,
        "tool.refused",
        f"tool:{storable(name)}",
        {"arguments": storable(arguments), "error": storable(reason), "transport": state.transport},
    )


async def tool_call(
    name: str,
    ctx: Context[Any, Any, Any] | None,
    arguments: dict[str, Any],
    action: Callable[[Runtime, User], Awaitable[T]],
    *,
    role: Role = Role.VIEWER,
) -> T:
    """Run one tool: identity, role, audit, error mapping."""
    state = current(ctx)
    runtime = state.runtime
    user = caller(ctx)
    args = {k: _summary(v) for k, v in arguments.items()}
    try:
        require(user, role, f"call {name}")
        result = await action(runtime, user)
    except (IQTSError, PermissionDeniedError) as error:
        message = redact_text(str(error))
        await asyncio.to_thread(
            audit,
            runtime.db,
            user.username,
            "tool.error",
            f"tool:{name}",
            {"arguments": args, "error": message, "transport": state.transport},
        )
        raise AuditedToolError(message) from None
    await asyncio.to_thread(
        audit,
        runtime.db,
        user.username,
        "tool.call",
        f"tool:{name}",
        {"arguments": args, "transport": state.transport},
    )
    return result


@asynccontextmanager
async def progress(ctx: Context[Any, Any, Any] | None, total: float) -> Any:
    """Progress notifications for long tools (no-op when the client did not ask for them)."""

    async def report(done: float, message: str | None = None) -> None:
        if ctx is not None:
            try:
                await ctx.report_progress(done, total, message)
            except (ValueError, LookupError):
                return

    yield report
