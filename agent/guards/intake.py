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
    r"\b(prices?|pric(ed|ing)|ticker|quotes?|btc|xbt|bitcoin|eth|ether|ethereum|ltc|litecoin|sol|solana|xrp|doge|"
    r"dogecoin|ada|cardano|bnb|avax|usd|usdt|usdc|eur|stablecoins?|crypto(currency|currencies)?|coins?|altcoins?|"
    r"tokens?|sats|satoshis?|markets?|buy(ing|s)?|sell(ing|s)?|long|short|close|closing|orders?|trades?|trading|"
    r"traded|cancel(s|led|ling|lation)?|positions?|portfolio|holdings?|hold(s|ing)?|(do|did) i own|i own|owned|"
    r"wallet|assets?|"
    r"invest(ed|ing|ment|ments)?|money|worth|valuation|balances?|equity|cash|funds?|pnl|p&l|profit(s|able)?|"
    r"loss(es)?|gain(s|ed)?|earn(ed|ings)?|drawdowns?|risk(s|y)?|var|exposure|leverage(d)?|margin|"
    r"kill\s*switch|breakers?|limits?|approvals?|inbox|pending|fills?|filled|execut(e|ed|ion)|backtest(s|ed|ing)?|"
    r"back-test(s)?|strateg(y|ies)|optimi[sz](e|ed|ing|ation)|walk[-\s]?forward|out[-\s]of[-\s]sample|"
    r"overfit(ting)?|sharpe|sortino|calmar|volatility|vol|returns?|performance|benchmark|"
    r"buy[-\s]and[-\s]hold|sma|ema|rsi|macd|bollinger|atr|momentum|mean[-\s]reversion|breakout|crossover|"
    r"signals?|indicators?|ohlcv?|candles?|candlesticks?|bars?|charts?|timeframes?|1m|5m|15m|1h|4h|1d|hourly|daily|"
    r"weekly|data|dataset|series|coverage|gaps?|history|historical|notes?|research|report|journal|stud(y|ies)|"
    r"runs?|trials?|parameters?|params?|fees?|commission|slippage|exchanges?|binance|kraken|coinbase|bitstamp|"
    r"bybit|okx|venues?|accounts?|liquidity|spread|volume|hedg(e|ing)|allocation|rebalanc(e|ing)|alpha|beta|"
    r"correlation|spot|futures|perps?|funding|stop[-\s]?loss|take[-\s]?profit|dip|rally|bull(ish)?|"
    r"bear(ish)?|iqts|dry[-\s]?run|paper[-\s](trad(e|ing)|account|broker)|sandbox)\b",
    re.IGNORECASE,
)
_PAIR = re.compile(r"\b[A-Z]{2,10}/[A-Z]{2,10}\b")
# the identifiers IQTS hands out (backtest runs, studies, approval requests) and order numbers ("order #17")
_REFERENCE = re.compile(r"\b(bt|st|apr)_[0-9a-f]{6,}\b|#\d+\b", re.IGNORECASE)
_TICKER = re.compile(r"\b(AVAX|DOT|MATIC|POL|LINK|TRX|TON|SHIB|ATOM|UNI|NEAR|APT|ARB|OP|SUI|PEPE|FIL|XLM|ETC|BCH)\b")
_META = re.compile(
    r"^\s*(hi|hello|hey|thanks|thank you|help|who are you|what are you|which model|what model)\b|"
    r"\bwhat (else )?can (you|i) (do|help|ask)|\bhow (do|can|should) i (use|start|begin)\b|\b(your|which) tools\b",
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
    if follow_up or any(p.search(stripped) for p in (_DOMAIN, _PAIR, _REFERENCE, _TICKER, _META)):
        return IntakeVerdict(decision="ok", text=clean, redactions=found)
    if found and len(stripped.split()) <= 12:  # "here is my key ..." : answer about the redaction, in scope
        return IntakeVerdict(decision="ok", text=clean, redactions=found)
    return IntakeVerdict(decision="out_of_scope", text=clean, redactions=found, reply=OUT_OF_SCOPE_REPLY)
