"""The intake guard: before the model sees a message, scrub secrets, keep to scope, refuse injection and approvals.

Deterministic heuristics, on purpose: they run before any model, they cost nothing, and a test can say exactly
what they do. They refuse three things:

* questions outside trading and research (the copilot is not a general chatbot);
* text that tries to rewrite the agent's rules (prompt-injection patterns);
* asking the agent to approve, authorise or release anything: approvals are a person's decision in the inbox.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Literal

from pydantic import BaseModel, ConfigDict

from agent.guards.redaction import redact_secrets

Decision = Literal["ok", "out_of_scope", "injection", "approval_request", "empty"]

_DOMAIN = re.compile(
    r"\b(price|prices|ticker|quote|btc|xbt|bitcoin|eth|ether|ethereum|ltc|litecoin|sol|solana|xrp|doge|ada|bnb|"
    r"usd|usdt|usdc|crypto|coin|token\s*price|market|markets|buy|sell|long|short|close|order|orders|trade|trades|"
    r"trading|position|positions|portfolio|balance|balances|equity|cash|pnl|p&l|profit|loss|drawdown|risk|var|"
    r"exposure|leverage|kill\s*switch|breaker|approval|approvals|inbox|pending|fill|filled|backtest|backtests|"
    r"back-test|strategy|strategies|optimi[sz]e|optimi[sz]ation|walk[-\s]?forward|sharpe|sortino|volatility|"
    r"returns?|benchmark|sma|ema|rsi|macd|bollinger|momentum|mean[-\s]reversion|signal|signals|indicator|ohlcv|"
    r"candle|candles|bars?|timeframe|1h|4h|1d|data|coverage|gaps?|history|historical|note|notes|research|report|"
    r"journal|study|studies|run|runs|parameter|parameters|fees?|slippage|exchange|binance|kraken|coinbase|"
    r"bitstamp|venue|account|accounts|liquidity|spread|volume|hedge|allocation|rebalance|alpha|beta|correlation)\b",
    re.IGNORECASE,
)
_PAIR = re.compile(r"\b[A-Z]{2,10}/[A-Z]{2,10}\b")
_META = re.compile(
    r"^\s*(hi|hello|hey|thanks|thank you|help|who are you|what can you do|what are you|which model|what model)\b",
    re.IGNORECASE,
)
_INJECTION = re.compile(
    r"(ignore|disregard|forget|override)\s+(all\s+|any\s+|the\s+|your\s+|my\s+)?(previous|prior|above|earlier|"
    r"system|safety)?\s*(instructions|rules|prompts?|guard(rail)?s?|constraints)|"
    r"\b(you are now|act as (an? )?(unrestricted|jailbroken)|developer mode|jailbreak|dan mode)\b|"
    r"\b(reveal|print|show|repeat)\s+(me\s+)?(your|the)\s+(system\s+prompt|hidden\s+instructions|instructions)\b|"
    r"</?\s*untrusted-data|<\|im_start\|>|<\|system\|>|\[/?INST\]",
    re.IGNORECASE,
)
_APPROVE = re.compile(
    r"\b(approve|approving|authori[sz]e|sign[-\s]off|green[-\s]?light|release|accept)\b(?!s\b)"
    r"(?=.*\b(order|request|trade|proposal|it|this|that|them|apr_[a-z0-9]+|kill\s*switch|my own)\b)|"
    r"\bapprove\s+apr_[a-z0-9]+|\b(approve|authori[sz]e)\s+(it|this|that|them)\b|"
    r"\bskip\s+(the\s+)?(approval|inbox|human)",
    re.IGNORECASE | re.DOTALL,
)

OUT_OF_SCOPE_REPLY = (
    "I am IQTS's trading and research copilot, so I keep to markets: prices and data, backtests and strategy "
    "research, your notes, portfolio and risk, and proposing orders for a person to approve. Ask me about one of "
    "those."
)
INJECTION_REPLY = (
    "That message tries to change my rules (it reads like a prompt injection), so I will not act on it. Ask your "
    "question plainly and I will help."
)
APPROVAL_REPLY = (
    "I cannot approve, authorise or release anything, and no tool lets me: every order I propose waits in the "
    "approval inbox for a person with the approver role. Open the inbox to decide on it."
)


class IntakeVerdict(BaseModel):
    """What the intake guard decided about one user message."""

    model_config = ConfigDict(frozen=True)

    decision: Decision
    text: str  # the message with secrets redacted: the only version that goes further
    redactions: list[str]
    reply: str | None = None

    @property
    def allowed(self) -> bool:
        return self.decision == "ok"


def check_intake(text: str, known_secrets: Iterable[str] = (), *, follow_up: bool = False) -> IntakeVerdict:
    """Redact, then decide: ok, out of scope, injection, or a request to approve. A ``follow_up`` in a conversation
    already about markets ("and yesterday?", "why?") is not held to the topic words."""
    clean, found = redact_secrets(text, known_secrets)
    stripped = clean.strip()
    if not stripped:
        return IntakeVerdict(decision="empty", text=clean, redactions=found, reply="Ask me something about markets.")
    if _INJECTION.search(stripped):
        return IntakeVerdict(decision="injection", text=clean, redactions=found, reply=INJECTION_REPLY)
    if _APPROVE.search(stripped):
        return IntakeVerdict(decision="approval_request", text=clean, redactions=found, reply=APPROVAL_REPLY)
    if _DOMAIN.search(stripped) or _PAIR.search(stripped) or _META.search(stripped) or follow_up:
        return IntakeVerdict(decision="ok", text=clean, redactions=found)
    if found and len(stripped.split()) <= 12:  # "here is my key ..." : answer about the redaction, in scope
        return IntakeVerdict(decision="ok", text=clean, redactions=found)
    return IntakeVerdict(decision="out_of_scope", text=clean, redactions=found, reply=OUT_OF_SCOPE_REPLY)
