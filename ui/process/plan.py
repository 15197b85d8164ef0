"""One list of services and the duty each runs; every process command reads it.

``iqts up`` runs every duty in one process; the production split (``docker-compose.yml``) runs ``iqts api``,
``iqts worker`` and ``iqts chat`` side by side. Either way each duty runs exactly once: the commands of a
deployment shape cover the duties without overlap (tests/unit/foundation/test_process_plan.py checks both shapes,
reading the compose file itself), and the singleton duties take a PostgreSQL advisory lock
(``engine.store.leader``), so replicas of a command (two workers) never both run them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final


class Duty(StrEnum):
    API = "api"
    MCP_HTTP = "mcp-http"
    EXECUTION = "execution"
    RISK_MONITOR = "risk-monitor"
    APPROVAL_EXPIRY = "approval-expiry"
    NOTIFIER = "notifier"
    AUDIT_ANCHOR = "audit-anchor"
    JOURNAL = "journal"
    CHAT = "chat"


@dataclass(frozen=True)
class Service:
    """One duty of the product and whether it may run in one replica only (leader-elected)."""

    duty: Duty
    summary: str
    singleton: bool = False


SERVICES: Final[tuple[Service, ...]] = (
    Service(Duty.API, "REST API, approval inbox, web console, /healthz /readyz /metrics"),
    Service(Duty.MCP_HTTP, "the MCP tools over streamable HTTP at /mcp (bearer tokens)"),
    Service(Duty.EXECUTION, "approved orders to the venue, fills, kill-switch cancels, portfolio marks"),
    Service(Duty.RISK_MONITOR, "daily loss, drawdown and VaR breakers (trip and persist)", singleton=True),
    Service(Duty.APPROVAL_EXPIRY, "pending approval requests past their TTL become expired", singleton=True),
    Service(Duty.NOTIFIER, "webhook/Telegram message for each new pending request", singleton=True),
    Service(
        Duty.AUDIT_ANCHOR, "the audit chain's head signed into the anchor file outside the database", singleton=True
    ),
    Service(Duty.JOURNAL, "a trade-journal note in the knowledge base for each decision and fill", singleton=True),
    Service(Duty.CHAT, "the Chainlit chat hosting the agent (a child process of `iqts up`)"),
)

BY_DUTY: Final[dict[Duty, Service]] = {s.duty: s for s in SERVICES}

BACKGROUND: Final[tuple[Duty, ...]] = (
    Duty.EXECUTION,
    Duty.RISK_MONITOR,
    Duty.APPROVAL_EXPIRY,
    Duty.NOTIFIER,
    Duty.AUDIT_ANCHOR,
    Duty.JOURNAL,
)
"""The duties that run as asyncio tasks beside (or instead of) the API."""

COMMANDS: Final[dict[str, tuple[Duty, ...]]] = {
    "up": tuple(s.duty for s in SERVICES),
    "api": (Duty.API, Duty.MCP_HTTP),
    "worker": BACKGROUND,
    "chat": (Duty.CHAT,),
}
"""The duties each long-running command runs (``iqts mcp`` serves one stdio client and runs no duty)."""

DEPLOYMENTS: Final[dict[str, tuple[str, ...]]] = {
    "all-in-one": ("up",),
    "split": ("api", "worker", "chat"),
}
"""The supported deployment shapes: which commands run side by side (replicas of a command are allowed)."""


def duties(command: str) -> tuple[Duty, ...]:
    return COMMANDS[command]


def singletons() -> tuple[Duty, ...]:
    return tuple(s.duty for s in SERVICES if s.singleton)


def help_text(command: str, lead: str) -> str:
    """A command's --help: ``lead`` and the duties it runs, from the plan (``\\b`` keeps click from rewrapping)."""
    lines = []
    for duty in COMMANDS[command]:
        service = BY_DUTY[duty]
        leader = " (one replica at a time: PostgreSQL advisory lock)" if service.singleton else ""
        lines.append(f"  {duty}: {service.summary}{leader}")
    return f"{lead}\n\n\b\nRuns:\n" + "\n".join(lines)
