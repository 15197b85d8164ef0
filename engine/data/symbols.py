"""What people write for a market, read into base / quote / settle codes, and which stored symbols that means
(:func:`matching_symbols`; ``engine.data.provider`` chooses among their series).

``BTC``, ``btc``, ``bitcoin`` and ``xbt`` are the base BTC with no quote; ``BTC/USD``, ``btc-usd``, ``BTC_USD``,
``btc usd`` and ``BTCUSD`` are BTC quoted in USD; ``BTC/USDT:USDT`` is the USDT-settled perpetual. The dollar
quotes USD, USDT and USDC are *equivalent*: a request for one is served by another when only that one is stored
(the provider says so in its result).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

from pydantic import BaseModel, ConfigDict

from engine.errors import ValidationFailedError

BASE_ALIASES: Final[dict[str, str]] = {
    "BITCOIN": "BTC",
    "XBT": "BTC",
    "ETHER": "ETH",
    "ETHEREUM": "ETH",
    "LITECOIN": "LTC",
    "SOLANA": "SOL",
    "RIPPLE": "XRP",
    "CARDANO": "ADA",
    "DOGECOIN": "DOGE",
    "POLKADOT": "DOT",
}
"""Names and old codes of base assets -> the code exchanges use (ccxt's unified code)."""
QUOTE_ALIASES: Final[dict[str, str]] = {
    "XBT": "BTC",
    "DOLLAR": "USD",
    "DOLLARS": "USD",
    "TETHER": "USDT",
    "EURO": "EUR",
    "EUROS": "EUR",
}
USD_LIKE: Final = ("USD", "USDT", "USDC")
"""Dollar quotes taken as equal when only one of them is stored (a stablecoin trades within cents of USD)."""
KNOWN_QUOTES: Final = ("USDT", "USDC", "BUSD", "FDUSD", "TUSD", "DAI", "USD", "EUR", "GBP", "JPY", "BTC", "ETH")
"""Quote codes recognised at the end of a run-together symbol such as ``BTCUSDT``."""

_CODE: Final = re.compile(r"^[A-Z0-9][A-Z0-9.]*$")
_SEPARATORS: Final = re.compile(r"[/\-_\s]+")
FORMS: Final = "a base asset (BTC, bitcoin) or a pair (BTC/USD, btc-usd, BTCUSDT; BTC/USDT:USDT for a perpetual)"


class SymbolQuery(BaseModel):
    """A market as written, read into codes: ``quote`` None means any quote (a base asset alone)."""

    model_config = ConfigDict(frozen=True)

    text: str
    base: str
    quote: str | None = None
    settle: str | None = None

    @property
    def unified(self) -> str | None:
        """The ccxt unified symbol when the quote is known (``BTC/USD``, ``BTC/USDT:USDT``)."""
        if self.quote is None:
            return None
        spot = f"{self.base}/{self.quote}"
        return spot if self.settle is None else f"{spot}:{self.settle}"


def split_symbol(symbol: str) -> tuple[str, str, str | None]:
    """``BTC/USDT:USDT`` -> ``("BTC", "USDT", "USDT")``; ``BTC/USD`` -> ``("BTC", "USD", None)``."""
    spot, _, settle = symbol.partition(":")
    base, _, quote = spot.partition("/")
    return base, quote, settle or None


def _code(part: str, aliases: dict[str, str], field: str, text: str) -> str:
    code = aliases.get(part, part)
    if not _CODE.match(code) or len(code) > 32:
        raise ValidationFailedError(f"{field}: {text!r} is not a market; write {FORMS}")
    return code


def parse_symbol_query(
    text: str, *, bases: Iterable[str] = (), quotes: Iterable[str] = (), field: str = "symbol"
) -> SymbolQuery:
    """Read ``text`` as a market. ``bases``/``quotes`` are the stored codes: a run-together word that is a stored
    base stays a base (``ETH`` is not E/TH), and stored quotes are recognised at the end of one (``LTCEUR``)."""
    if not isinstance(text, str) or not text.strip():
        raise ValidationFailedError(f"{field}: expected {FORMS}")
    written = text.strip()
    upper = written.upper()
    spot, _, settle_text = upper.partition(":")
    settle = _code(settle_text.strip(), QUOTE_ALIASES, field, written) if settle_text.strip() else None
    parts = [p for p in _SEPARATORS.split(spot) if p]
    if len(parts) == 2:
        base = _code(parts[0], BASE_ALIASES, field, written)
        quote = _code(parts[1], QUOTE_ALIASES, field, written)
        return SymbolQuery(text=written, base=base, quote=quote, settle=settle)
    if len(parts) != 1:
        raise ValidationFailedError(f"{field}: {written!r} is not a market; write {FORMS}")
    word = parts[0]
    stored_bases = set(bases)
    alias = BASE_ALIASES.get(word, word)
    if word in BASE_ALIASES or alias in stored_bases:
        return SymbolQuery(text=written, base=_code(alias, {}, field, written), settle=settle)
    splits = [
        (_code(word[: -len(quote)], BASE_ALIASES, field, written), quote)
        for quote in sorted({*KNOWN_QUOTES, *quotes}, key=len, reverse=True)
        if word.endswith(quote) and len(word) > len(quote)
    ]  # BTCUSDT ends in USDT and in TUSD...: a split onto a stored base wins, then the longest quote
    if splits:
        base, quote = next((split for split in splits if split[0] in stored_bases), splits[0])
        return SymbolQuery(text=written, base=base, quote=quote, settle=settle)
    return SymbolQuery(text=written, base=_code(word, BASE_ALIASES, field, written), settle=settle)


_DOLLARS: Final = f"{', '.join(USD_LIKE[:-1])} and {USD_LIKE[-1]} quotes"


def matching_symbols(query: SymbolQuery, stored: Iterable[str]) -> tuple[list[str], str | None]:
    """The ``stored`` symbols a query means, and why when they are not exactly what was written: a base alone
    means its dollar-quoted pairs when any is stored, else every pair of that base; a dollar quote not stored is
    served by the stored dollar quotes of the same base (USD ~ USDT ~ USDC)."""
    symbols = sorted(set(stored))
    parsed = {symbol: split_symbol(symbol) for symbol in symbols}
    same_base = [s for s, (b, _, settle) in parsed.items() if b == query.base and settle == query.settle]
    if query.quote is None:
        dollars = [s for s in same_base if parsed[s][1] in USD_LIKE]
        return (dollars or same_base), None
    exact = [s for s in same_base if parsed[s][1] == query.quote]
    if exact:
        return exact, None
    if query.quote in USD_LIKE:
        equivalent = [s for s in same_base if parsed[s][1] in USD_LIKE]
        if equivalent:
            serves = " / ".join(equivalent)
            return equivalent, f"no {query.unified} is stored; {_DOLLARS} are taken as equal, so {serves} serves it"
    return [], None
