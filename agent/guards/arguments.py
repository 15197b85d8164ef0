"""Small models invent optional arguments (dates on every backtest, a limit price nobody asked for). For models
that declare it, optional scalar arguments whose value the user never said are dropped before the call, so the
server's defaults apply; so are the choices of an optional enum list that the user never named (a search limited
to ``kinds: [risk_policy]`` because the question said "rule" searches everything instead). Required arguments and
free text (anything with a space) are kept.

"Said" is judged by meaning, not by substring: the user's message is read once into :class:`Meaning` (the
timeframes, assets, numbers, periods, dates and words it names), and a value counts as said when it means one of
those:

* timeframes from words: "hourly", "every hour", "4-hour", "fifteen minute", "daily", "weekly" -> ``1h`` ``4h``
  ``15m`` ``1d`` ``1w``;
* assets by name or ticker: "bitcoin", "btc", "BTC/USDT", "ether" -> the symbol's base asset (``BTC/USD`` is said
  when bitcoin was; ``BTC/USDT`` is not when the person wrote ``BTC/USD``);
* numbers written out: "fifty trials", "twenty-five", "a hundred", "2k", "1.5 million", "5 %" (also 0.05);
* periods and dates: "last week" -> ``7d ago``; "since March 2024" -> ``2024-03-01``;
* names by their words and synonyms: "macd" or "MACD crossover" for ``macd_cross``, "moving average" for ``sma``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

_UNITS = {
    "zero": 0,
    "one": 1,
    "a": 1,
    "an": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
}
_TENS = {
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
}
_SCALES = {"hundred": 100, "thousand": 1000, "million": 1_000_000, "billion": 1_000_000_000}
_SPECIAL = {"half": Decimal("0.5"), "quarter": Decimal("0.25"), "dozen": Decimal(12), "couple": Decimal(2)}
_SUFFIX = {"k": 1000, "m": 1_000_000, "mm": 1_000_000, "bn": 1_000_000_000}

ASSET_ALIASES: dict[str, tuple[str, ...]] = {
    "BTC": ("btc", "xbt", "bitcoin", "bitcoins"),
    "ETH": ("eth", "ether", "ethereum"),
    "LTC": ("ltc", "litecoin"),
    "SOL": ("sol", "solana"),
    "XRP": ("xrp", "ripple"),
    "DOGE": ("doge", "dogecoin"),
    "ADA": ("ada", "cardano"),
    "USDT": ("usdt", "tether"),
    "USDC": ("usdc",),
    "USD": ("usd", "dollar", "dollars"),
    "EUR": ("eur", "euro", "euros"),
}
_ALIAS_TO_ASSET = {alias: asset for asset, aliases in ASSET_ALIASES.items() for alias in aliases}
_QUOTES = {"USD", "USDT", "USDC", "EUR", "BTC", "ETH"}

_UNIT_WORDS = {
    "m": ("minute", "minutes", "min", "mins", "minutely"),
    "h": ("hour", "hours", "hr", "hrs", "hourly"),
    "d": ("day", "days", "daily"),
    "w": ("week", "weeks", "weekly"),
    "M": ("month", "months", "monthly"),
}
_WORD_TO_UNIT = {word: unit for unit, words in _UNIT_WORDS.items() for word in words}
_ADVERBS = {"minutely": "1m", "hourly": "1h", "daily": "1d", "nightly": "1d", "weekly": "1w", "monthly": "1M"}
_MONTHS = {
    name: i
    for i, names in enumerate(
        (
            ("january", "jan"),
            ("february", "feb"),
            ("march", "mar"),
            ("april", "apr"),
            ("may",),
            ("june", "jun"),
            ("july", "jul"),
            ("august", "aug"),
            ("september", "sep", "sept"),
            ("october", "oct"),
            ("november", "nov"),
            ("december", "dec"),
        ),
        start=1,
    )
    for name in names
}

SYNONYMS: dict[str, tuple[str, ...]] = {
    "sma": ("moving average", "moving averages", "simple moving"),
    "ema": ("exponential moving", "exponential average"),
    "cross": ("crossover", "crossing", "crosses"),
    "rsi": ("relative strength",),
    "macd": ("moving average convergence",),
    "bollinger": ("bands", "bbands"),
    "breakout": ("break out", "breakouts", "donchian"),
    "momentum": ("trend following", "trend-following"),
    "mean": ("reversion", "revert"),
    "buy": ("long", "purchase", "acquire"),
    "sell": ("short", "dump"),
    "market": ("at market", "market price"),
    "limit": ("limit price", "at a price"),
    "sharpe": ("risk-adjusted", "risk adjusted"),
    "drawdown": ("draw down", "drawdowns"),
}

_TOKEN = re.compile(r"[a-z0-9]+(?:[./][a-z0-9]+)*", re.IGNORECASE)
_NUMBER = re.compile(r"(?<![\w.])(\d+(?:,\d{3})*(?:\.\d+)?|\.\d+)\s*(k|m|mm|bn|%|percent)?(?![\w])", re.IGNORECASE)
_PAIR = re.compile(r"\b([a-z]{2,6})\s*[/\-]\s*([a-z]{3,5})\b", re.IGNORECASE)
_TIMEFRAME_VALUE = re.compile(r"^(\d+)\s*(m|h|d|w|M)$")
_RELATIVE_VALUE = re.compile(r"^-?(\d+)\s*(m|h|d|w|M)[a-z]*(?:\s+ago)?$", re.IGNORECASE)
_DATE_VALUE = re.compile(r"^(\d{4})-(\d{2})(?:-(\d{2}))?")
_SYMBOL_VALUE = re.compile(r"^([A-Za-z]{2,6})(?:[/\-]([A-Za-z]{3,5}))?(?::[A-Za-z]+)?$")


def _decimal(text: str) -> Decimal | None:
    try:
        return Decimal(text.replace(",", ""))
    except InvalidOperation:
        return None


def _word_numbers(words: list[str]) -> set[Decimal]:
    """Numbers spelled in words: "fifty", "twenty-five", "two hundred and ten", "a thousand", "1.5 million"."""
    out: set[Decimal] = set()
    total, current, active = Decimal(0), Decimal(0), False

    def flush() -> None:
        nonlocal total, current, active
        if active:
            out.add(total + current)
        total, current, active = Decimal(0), Decimal(0), False

    for i, word in enumerate(words):
        parts = word.split("-")
        if all(p in _UNITS or p in _TENS for p in parts) and parts not in (["a"], ["an"]):
            for part in parts:
                current += _UNITS.get(part, 0) + _TENS.get(part, 0)
            active = True
        elif word in ("a", "an") and i + 1 < len(words) and words[i + 1] in _SCALES:
            current, active = Decimal(1), True
        elif word in _SCALES and (active or (i > 0 and _decimal(words[i - 1]) is not None)):
            if not active:
                current = _decimal(words[i - 1]) or Decimal(0)
            scale = _SCALES[word]
            if scale == 100:
                current *= scale
            else:
                total += current * scale
                current = Decimal(0)
            active = True
            if scale > 100:
                out.add(total)
        elif word == "and" and active:
            continue
        elif word in _SPECIAL:
            flush()
            out.add(_SPECIAL[word])
        else:
            flush()
    flush()
    return out


@dataclass
class Meaning:
    """What a message names, read once."""

    text: str
    words: list[str] = field(default_factory=list)
    numbers: set[Decimal] = field(default_factory=set)
    timeframes: set[str] = field(default_factory=set)
    periods: set[tuple[int, str]] = field(default_factory=set)
    assets: set[str] = field(default_factory=set)
    pairs: set[tuple[str, str]] = field(default_factory=set)
    years: set[int] = field(default_factory=set)
    months: set[int] = field(default_factory=set)

    @classmethod
    def read(cls, text: str) -> Meaning:
        lowered = text.lower()
        words = [w.strip(".") for w in re.findall(r"[a-z0-9.,%/\-]+", lowered)]
        words = [w.strip(",") for w in words if w.strip(",.")]
        meaning = cls(text=lowered, words=words)
        meaning._read_numbers()
        meaning._read_timeframes()
        meaning._read_assets()
        meaning._read_dates()
        return meaning

    def _read_numbers(self) -> None:
        for match in _NUMBER.finditer(self.text):
            number = _decimal(match.group(1))
            if number is None:
                continue
            suffix = (match.group(2) or "").lower()
            self.numbers.add(number)
            if suffix in _SUFFIX:
                self.numbers.add(number * _SUFFIX[suffix])
            if suffix in ("%", "percent"):
                self.numbers.add(number / 100)
        spoken = _word_numbers(re.findall(r"[a-z]+(?:-[a-z]+)*|\d+(?:\.\d+)?", self.text))
        self.numbers |= spoken
        for i, word in enumerate(self.words):  # "five percent"
            if word in ("percent", "%", "pct") and i > 0:
                for number in _word_numbers(self.words[i - 1 : i]):
                    self.numbers.add(number / 100)

    def _count_before(self, i: int) -> int | None:
        """The count written just before word ``i`` ("4", "four", "fifteen"), if any."""
        if i <= 0:
            return None
        previous = self.words[i - 1]
        number = _decimal(previous)
        if number is None:
            spoken = _word_numbers([previous])
            number = next(iter(spoken)) if len(spoken) == 1 else None
        if number is None or number != number.to_integral_value() or number <= 0:
            return None
        return int(number)

    def _read_timeframes(self) -> None:
        for i, raw in enumerate(self.words):
            for word in raw.split("-"):
                if word in _ADVERBS:
                    count = self._count_before(i) if raw == word else _first_count(raw)
                    self.timeframes.add(f"{count or 1}{_ADVERBS[word][-1]}")
                    continue
                found = _WORD_TO_UNIT.get(word)
                if found is None:
                    glued = re.fullmatch(r"(\d+)(m|min|h|hr|d|w)", word)
                    if glued:
                        short = {"min": "m", "hr": "h"}.get(glued.group(2), glued.group(2))
                        self.timeframes.add(f"{int(glued.group(1))}{short}")
                        self.periods.add((int(glued.group(1)), short))
                    continue
                unit = found
                count = _first_count(raw) if raw != word else self._count_before(i)
                self.timeframes.add(f"{count or 1}{unit}")
                self.periods.add((count or 1, unit))
                if unit == "h" and count == 24:
                    self.periods.add((1, "d"))

    def _read_assets(self) -> None:
        for match in _PAIR.finditer(self.text):
            base = _ALIAS_TO_ASSET.get(match.group(1).lower(), match.group(1).upper())
            quote = _ALIAS_TO_ASSET.get(match.group(2).lower(), match.group(2).upper())
            if quote in _QUOTES:
                self.pairs.add((base, quote))
                self.assets.add(base)
        for word in _TOKEN.findall(self.text):
            for piece in re.split(r"[/.]", word.lower()):
                asset = _ALIAS_TO_ASSET.get(piece)
                if asset is not None:
                    self.assets.add(asset)

    def _read_dates(self) -> None:
        for word in self.words:
            year = re.fullmatch(r"(19|20)\d\d", word)
            if year:
                self.years.add(int(word))
            month = _MONTHS.get(word)
            if month is not None and (word not in ("may", "mar") or self._has_year()):  # "may" is also a verb
                self.months.add(month)
            iso = _DATE_VALUE.match(word)
            if iso:
                self.years.add(int(iso.group(1)))
                self.months.add(int(iso.group(2)))

    def _has_year(self) -> bool:
        return any(re.fullmatch(r"(19|20)\d\d", w) for w in self.words)

    # -- is a value said? ---------------------------------------------------------------------------------

    def says_number(self, value: float | int | Decimal) -> bool:
        number = _decimal(str(value))
        if number is None:
            return False
        return number in self.numbers or any(number == n.normalize() for n in self.numbers)

    def says_string(self, value: str) -> bool:
        text = value.strip()
        if not text:
            return False
        if text.lower() in self.text:
            return True
        timeframe = _TIMEFRAME_VALUE.match(text)
        if timeframe:
            return f"{int(timeframe.group(1))}{timeframe.group(2)}" in self.timeframes
        relative = _RELATIVE_VALUE.match(text)
        if relative:
            count, unit = int(relative.group(1)), relative.group(2)
            return (count, unit) in self.periods or (
                unit == "d" and count % 7 == 0 and (count // 7, "w") in self.periods
            )
        date = _DATE_VALUE.match(text)
        if date:
            year, month = int(date.group(1)), int(date.group(2))
            return year in self.years and (month in self.months or (month == 1 and not self.months))
        symbol = _SYMBOL_VALUE.match(text)
        if symbol and (symbol.group(2) or text.upper() == text or text.lower() in _ALIAS_TO_ASSET):
            base = _ALIAS_TO_ASSET.get(symbol.group(1).lower(), symbol.group(1).upper())
            quote = symbol.group(2).upper() if symbol.group(2) else None
            if base not in self.assets:
                return False
            named_quotes = {q for b, q in self.pairs if b == base}
            return quote is None or not named_quotes or quote in named_quotes
        return self._says_words(text)

    def _says_words(self, value: str) -> bool:
        """Every word of a name (``macd_cross``, ``mean-reversion``) is in the message, or a synonym of it is."""
        parts = [p for p in re.split(r"[_\-\s./]+", value.lower()) if p]
        if not parts:
            return False
        return all(self._says_word(part) for part in parts if not part.isdigit()) and any(
            not p.isdigit() for p in parts
        )

    def _says_word(self, part: str) -> bool:
        for word in self.words:
            for piece in re.split(r"[_\-/]", word):
                if piece == part or (
                    len(part) >= 3 and len(piece) >= 3 and (piece.startswith(part) or part.startswith(piece))
                ):
                    return True
        return any(phrase in self.text for phrase in SYNONYMS.get(part, ()))


def _first_count(compound: str) -> int | None:
    """The count in a compound like "4-hour" or "fifteen-minute"."""
    head = compound.split("-", maxsplit=1)[0]
    number = _decimal(head)
    if number is None:
        spoken = _word_numbers([head])
        number = next(iter(spoken)) if len(spoken) == 1 else None
    if number is None or number != number.to_integral_value() or number <= 0:
        return None
    return int(number)


def _said(value: Any, meaning: Meaning) -> bool:
    if isinstance(value, bool):
        return True
    if isinstance(value, int | float | Decimal):
        return meaning.says_number(value)
    if isinstance(value, str):
        if " " in value.strip() and not _RELATIVE_VALUE.match(value.strip()):
            return True  # free text (a rationale): not an invented parameter
        return meaning.says_string(value)
    return True  # lists and objects are checked field by field or kept


def _is_choice_list(value: Any, schema: Mapping[str, Any]) -> bool:
    """A list of choices from an enum (``kinds: [note, journal]``): each choice must be said, like a scalar."""
    items = schema.get("items") if isinstance(schema, Mapping) else None
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(v, str) for v in value)
        and isinstance(items, Mapping)
        and "enum" in items
    )


def ground_arguments(
    args: Mapping[str, Any], schema: Mapping[str, Any], said: str | Meaning, path: str = ""
) -> tuple[dict[str, Any], list[str]]:
    """``args`` without optional values the user never said; and the dotted names of what was dropped."""
    meaning = said if isinstance(said, Meaning) else Meaning.read(said)
    required = set(schema.get("required", []))
    properties = schema.get("properties", {})
    kept: dict[str, Any] = {}
    dropped: list[str] = []
    for name, value in args.items():
        sub = properties.get(name, {})
        where = f"{path}{name}"
        if isinstance(value, Mapping) and isinstance(sub, Mapping) and sub.get("type") == "object":
            inner, lost = ground_arguments(value, sub, meaning, where + ".")
            kept[name] = inner
            dropped += lost
        elif name not in required and _is_choice_list(value, sub):
            chosen = [v for v in value if meaning.says_string(v)]
            if chosen:
                kept[name] = chosen
            dropped += [f"{where}[{v}]" for v in value if v not in chosen] if chosen else [where]
        elif name not in required and not _said(value, meaning):
            dropped.append(where)
        else:
            kept[name] = value
    return kept, dropped
