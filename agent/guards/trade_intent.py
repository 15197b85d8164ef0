"""Nothing the agent reads can make it propose an order the user did not ask for.

A deterministic check runs on every action call the model makes (``propose_order``, ``propose_cancel``,
``engage_kill_switch``) before it is sent to the MCP server: the user's latest message must express that action
(buy/sell/long/short/close with a symbol and a quantity; cancel with the order id; stop trading), and the call's
side, symbol, quantity, type and prices must match what the user said. Anything else is blocked and reported.
There is no approving tool; a call to anything named like one is blocked too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

Side = Literal["buy", "sell", "close"]

ORDER_TOOLS = frozenset({"propose_order"})
ACTION_TOOLS = frozenset({"propose_order", "propose_cancel", "engage_kill_switch"})
_FORBIDDEN_NAME = re.compile(r"approve|decide|authori[sz]e|release|grant", re.IGNORECASE)

_SIDE_WORDS: tuple[tuple[Side, re.Pattern[str]], ...] = (
    ("buy", re.compile(r"\b(buy|purchase|go\s+long|long|acquire)\b", re.IGNORECASE)),
    ("sell", re.compile(r"\b(sell|go\s+short|short|dump)\b", re.IGNORECASE)),
    ("close", re.compile(r"\b(close|exit|flatten|liquidate)\b", re.IGNORECASE)),
)
_ALIASES = {
    "BITCOIN": "BTC",
    "XBT": "BTC",
    "ETHER": "ETH",
    "ETHEREUM": "ETH",
    "LITECOIN": "LTC",
    "SOLANA": "SOL",
    "DOGECOIN": "DOGE",
    "CARDANO": "ADA",
    "RIPPLE": "XRP",
}
_NOT_ASSETS = {
    "USD",
    "EUR",
    "GBP",
    "THE",
    "AND",
    "FOR",
    "AT",
    "OF",
    "MY",
    "ME",
    "ALL",
    "LIMIT",
    "MARKET",
    "STOP",
    "PRICE",
    "ORDER",
    "BUY",
    "SELL",
    "LONG",
    "SHORT",
    "CLOSE",
    "PLEASE",
    "NOW",
    "UNITS",
    "COINS",
    "OK",
    "PAPER",
    "ACCOUNT",
    "WORTH",
    "WITH",
    "IF",
    "IT",
    "A",
    "AN",
    "TO",
    "IN",
    "ON",
    "OR",
    "I",
    "RISK",
}
_PAIR = re.compile(r"\b([A-Za-z]{2,10})\s*[/\-]\s*([A-Za-z]{2,10})\b")
_WORD = re.compile(r"\b[A-Za-z]{2,10}\b")
_NUMBER = re.compile(
    r"(?<![\w.])(\$\s*)?(\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)(\s*(?:k\b|%|usd[tc]?\b|"
    r"dollars?\b|bucks\b|eur\b))?",
    re.IGNORECASE,
)


BLOCKED_NOTE_HEAD = "I tried a call that the IQTS guard blocked"
"""How the note appended under an answer about a blocked call begins (``agent.memory`` cuts earlier answers there)."""


class GuardBlock(BaseModel):
    """A call the guard refused, and why (shown to the user and to the model)."""

    model_config = ConfigDict(frozen=True)

    tool: str
    reason: str


class TradeIntent(BaseModel):
    """What the user's own words ask for."""

    model_config = ConfigDict(frozen=True)

    side: Side | None
    assets: list[str]  # base assets mentioned (BTC)
    pairs: list[tuple[str, str]]  # explicit pairs (BTC, USD)
    quantities: list[Decimal]  # bare numbers: candidate quantities and prices
    notionals: list[Decimal]  # amounts in money ($500, 500 USD)
    says_limit: bool
    says_stop: bool

    @property
    def is_trade(self) -> bool:
        return (
            self.side is not None
            and bool(self.assets or self.pairs)
            and (bool(self.quantities) or self.side == "close")
        )


def _decimal(text: str) -> Decimal | None:
    try:
        return Decimal(text.replace(",", ""))
    except InvalidOperation:
        return None


def parse_trade_intent(text: str) -> TradeIntent:
    side: Side | None = None
    first = len(text) + 1
    for candidate, pattern in _SIDE_WORDS:
        match = pattern.search(text)
        if match and match.start() < first:
            side, first = candidate, match.start()
    pairs = [(_ALIASES.get(a.upper(), a.upper()), b.upper()) for a, b in _PAIR.findall(text)]
    assets = [p[0] for p in pairs]
    for word in _WORD.findall(text):
        upper = _ALIASES.get(word.upper(), word.upper())
        is_ticker = word.isupper() and upper not in _NOT_ASSETS
        if (word.upper() in _ALIASES or is_ticker) and upper not in assets:
            assets.append(upper)
    quantities: list[Decimal] = []
    notionals: list[Decimal] = []
    for dollar, number, unit in _NUMBER.findall(text):
        value = _decimal(number)
        if value is None:
            continue
        money = bool(dollar) or (unit.strip().lower() not in ("", "k", "%"))
        if unit.strip().lower() == "k":
            value *= 1000
        if unit.strip() == "%":
            continue
        (notionals if money else quantities).append(value)
    return TradeIntent(
        side=side,
        assets=assets,
        pairs=pairs,
        quantities=quantities,
        notionals=notionals,
        says_limit=bool(re.search(r"\blimit\b", text, re.IGNORECASE)),
        says_stop=bool(re.search(r"\bstop\b", text, re.IGNORECASE)),
    )


def _same_number(value: Any, candidates: Iterable[Decimal]) -> bool:
    number = _decimal(str(value))
    return number is not None and any(number == c for c in candidates)


def _position_quantities(artifacts: Iterable[Mapping[str, Any]], symbol: str) -> list[Decimal]:
    out: list[Decimal] = []
    for artifact in artifacts:
        for account in artifact.get("accounts", []) if isinstance(artifact, Mapping) else []:
            for position in account.get("positions", []) if isinstance(account, Mapping) else []:
                if isinstance(position, Mapping) and position.get("symbol") == symbol:
                    quantity = _decimal(str(position.get("quantity")))
                    if quantity is not None:
                        out.append(abs(quantity))
    return out


def check_order_call(
    args: Mapping[str, Any], user_text: str, artifacts: Iterable[Mapping[str, Any]] = ()
) -> str | None:
    """Why this propose_order call does not match the user's words, or None when it does."""
    intent = parse_trade_intent(user_text)
    if not intent.is_trade:
        if intent.side is not None and intent.notionals and not intent.quantities:
            return "the user gave an amount of money, not a quantity: ask for the quantity in units of the asset"
        return (
            "the user's latest message does not ask for a trade (it must say buy, sell, long, short or close, "
            "with a symbol and a quantity)"
        )
    order = args.get("order")
    if not isinstance(order, Mapping):
        return "the call has no order"
    symbol = str(order.get("symbol", "")).upper()
    base, _, quote = symbol.partition("/")
    side = str(order.get("side", "")).lower()
    if intent.side in ("buy", "sell") and side != intent.side:
        return f"the user asked to {intent.side}, the call would {side}"
    if intent.pairs:
        if (base, quote) not in intent.pairs:
            said = ", ".join(f"{a}/{b}" for a, b in intent.pairs)
            return f"the user named {said}, the call names {symbol}"
    elif base not in intent.assets:
        return f"the user did not name {base or 'this symbol'} (named: {', '.join(intent.assets) or 'none'})"
    quantity = order.get("quantity")
    if intent.side == "close" and not intent.quantities:
        positions = _position_quantities(artifacts, symbol)
        if not _same_number(quantity, positions):
            return f"closing needs the position's quantity from get_portfolio ({symbol}); {quantity} is not it"
    elif not _same_number(quantity, intent.quantities):
        return f"the quantity {quantity} is not a number the user said"
    kind = str(order.get("type", "market")).lower()
    if kind in ("limit", "stop_limit") and not intent.says_limit:
        return "the user did not ask for a limit order"
    if kind in ("stop", "stop_limit") and not intent.says_stop:
        return "the user did not ask for a stop order"
    for field in ("price", "stop_price"):
        value = order.get(field)
        if value is not None and not _same_number(value, [*intent.quantities, *intent.notionals]):
            return f"the {field.replace('_', ' ')} {value} is not a number the user said"
    account = order.get("account")
    if account not in (None, "paper") and str(account).lower() not in user_text.lower():
        return f"the user did not name the account {account}"
    return None


def check_action_call(
    name: str,
    args: Mapping[str, Any],
    user_text: str,
    artifacts: Iterable[Mapping[str, Any]] = (),
    *,
    proposed_this_turn: int = 0,
) -> GuardBlock | None:
    """A block when this call must not run; None for calls that are not actions or that match the user."""
    if _FORBIDDEN_NAME.search(name):
        return GuardBlock(tool=name, reason="the agent can never approve, decide or release anything")
    if name not in ACTION_TOOLS:
        return None
    if name == "propose_order":
        if proposed_this_turn >= 1:
            return GuardBlock(tool=name, reason="one order proposal per request: an order was already proposed")
        reason = check_order_call(args, user_text, artifacts)
        return GuardBlock(tool=name, reason=reason) if reason else None
    if name == "propose_cancel":
        order_id = str(args.get("order_id", ""))
        if not re.search(r"\bcancel", user_text, re.IGNORECASE) or not re.search(
            rf"(?<!\d){re.escape(order_id)}(?!\d)", user_text
        ):
            return GuardBlock(tool=name, reason=f"the user did not ask to cancel order {order_id}")
        return None
    if not re.search(r"kill[\s-]?switch|stop (all )?trading|halt|emergency stop", user_text, re.IGNORECASE):
        return GuardBlock(tool=name, reason="the user did not ask to stop trading")
    return None
