"""Matching rules: arguments against matchers, figures in an answer against tool results.

Every function is pure and deterministic; each mismatch is explained in words (shown in the report's diff).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import BaseModel

from engine.data.symbols import USD_LIKE, parse_symbol_query
from engine.errors import ValidationFailedError
from evals.scenario import (
    Absent,
    Approx,
    Contains,
    Exact,
    ExpectedCall,
    Items,
    Matcher,
    MatcherSpec,
    OneOf,
    Present,
    SymbolIs,
    TimeframeIs,
)

MISSING: Any = object()


class ArgCheck(BaseModel):
    """One argument's verdict."""

    path: str
    expected: str
    actual: Any = None
    ok: bool
    why: str = ""


class CallMatch(BaseModel):
    """How well one actual call matches one expected call."""

    expected_tool: str
    actual_tool: str | None
    call_index: int | None
    tool_ok: bool
    args: list[ArgCheck]

    @property
    def ok(self) -> bool:
        return self.tool_ok and all(a.ok for a in self.args)


# -- values -------------------------------------------------------------------------------------------------------


def to_number(value: Any) -> Decimal | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float, Decimal)):
        try:
            return Decimal(str(value))
        except InvalidOperation:
            return None
    if isinstance(value, str):
        text = value.strip().replace(",", "").replace("_", "")
        try:
            return Decimal(text)
        except InvalidOperation:
            return None
    return None


def lookup(value: Any, path: str) -> Any:
    """``order.symbol``, ``rows.-1.close``, ``metrics.sharpe`` in nested dicts/lists; MISSING when absent."""
    current = value
    for part in path.split("."):
        if isinstance(current, Mapping):
            if part not in current:
                return MISSING
            current = current[part]
        elif isinstance(current, list):
            try:
                current = current[int(part)]
            except (ValueError, IndexError):
                return MISSING
        else:
            return MISSING
    return current


def _same_scalar(expected: Any, actual: Any) -> bool:
    if isinstance(expected, bool) or isinstance(actual, bool):
        return expected is actual or expected == actual
    e, a = to_number(expected), to_number(actual)
    if e is not None and a is not None and not isinstance(expected, str):
        return e == a
    if isinstance(expected, str) and isinstance(actual, str):
        return expected.strip().lower() == actual.strip().lower()
    if e is not None and a is not None:
        return e == a
    return bool(expected == actual)


def _exact(expected: Any, actual: Any) -> bool:
    if isinstance(expected, list):
        return isinstance(actual, list) and len(expected) == len(actual) and all(map(_same_scalar, expected, actual))
    return _same_scalar(expected, actual)


_TF_WORDS = {
    "minute": "1m",
    "minutely": "1m",
    "hour": "1h",
    "hourly": "1h",
    "day": "1d",
    "daily": "1d",
    "week": "1w",
    "weekly": "1w",
}
_TF = re.compile(r"^(\d+)\s*(m|min|mins|minute|minutes|h|hr|hrs|hour|hours|d|day|days|w|wk|week|weeks)$")
_TF_MINUTES = {"m": 1, "h": 60, "d": 1440, "w": 10080}


def timeframe_minutes(text: str) -> int | None:
    """``1h`` / ``60m`` / ``hourly`` -> 60; ``1d`` / ``24h`` / ``daily`` -> 1440; None if unreadable."""
    raw = text.strip()
    if raw.endswith("M") and raw[:-1].isdigit():
        return None  # 1M is a month: not comparable in minutes
    word = raw.lower()
    word = _TF_WORDS.get(word, word)
    match = _TF.match(word)
    if not match:
        return None
    unit = match.group(2)[0]
    return int(match.group(1)) * _TF_MINUTES[unit]


def canonical_market(text: str) -> tuple[str, str | None] | None:
    """(base, quote) of a market as written (``bitcoin`` -> ("BTC", None)); None when it is not a market."""
    try:
        query = parse_symbol_query(text)
    except ValidationFailedError:
        return None
    return query.base, query.quote


def same_market(expected: str, actual: str, *, strict_quote: bool = False) -> bool:
    want, got = canonical_market(expected), canonical_market(actual)
    if want is None or got is None or want[0] != got[0]:
        return False
    if strict_quote:
        return want[1] == got[1]
    if want[1] is None or got[1] is None:
        return (want[1] or "USD") in USD_LIKE and (got[1] or "USD") in USD_LIKE
    return want[1] == got[1] or (want[1] in USD_LIKE and got[1] in USD_LIKE)


def describe(matcher: MatcherSpec) -> str:
    """The matcher in words, for the report."""
    if not isinstance(matcher, BaseModel):
        return f"= {matcher!r}"
    if isinstance(matcher, Exact):
        return f"= {matcher.exact!r}"
    if isinstance(matcher, OneOf):
        return "one of " + ", ".join(repr(v) for v in matcher.one_of)
    if isinstance(matcher, Approx):
        tol = f" ± {matcher.abs}" if matcher.abs is not None else (f" ± {matcher.rel * 100}%" if matcher.rel else "")
        return f"≈ {matcher.number}{tol}"
    if isinstance(matcher, SymbolIs):
        return f"market {matcher.symbol}" + (" (exact quote)" if matcher.strict_quote else "")
    if isinstance(matcher, TimeframeIs):
        return f"timeframe {matcher.timeframe}"
    if isinstance(matcher, Contains):
        return f"contains {matcher.contains!r}"
    if isinstance(matcher, Present):
        return "given"
    if isinstance(matcher, Absent):
        return "not given"
    if isinstance(matcher, Items):
        return "items [" + "; ".join(describe(m) for m in matcher.items) + "]"
    return repr(matcher)


def match_value(matcher: MatcherSpec, actual: Any) -> tuple[bool, str]:
    """Whether ``actual`` (MISSING when the argument was not given) satisfies ``matcher``, and why not."""
    if isinstance(matcher, Absent):
        return (actual is MISSING or actual is None), "given but the user did not say it"
    if isinstance(matcher, Present):
        return (actual is not MISSING and actual is not None), "not given"
    if actual is MISSING:
        return False, "not given"
    if not isinstance(matcher, BaseModel):
        return _exact(matcher, actual), "differs"
    if isinstance(matcher, Exact):
        return _exact(matcher.exact, actual), "differs"
    if isinstance(matcher, OneOf):
        return any(_same_scalar(v, actual) for v in matcher.one_of), "none of the allowed values"
    if isinstance(matcher, Approx):
        number = to_number(actual)
        if number is None:
            return False, "not a number"
        gap = abs(number - matcher.number)
        if matcher.abs is not None and gap <= matcher.abs:
            return True, ""
        if matcher.rel is not None and gap <= abs(matcher.number) * matcher.rel:
            return True, ""
        return gap == 0, f"off by {gap}"
    if isinstance(matcher, SymbolIs):
        if not isinstance(actual, str):
            return False, "not a market"
        return same_market(matcher.symbol, actual, strict_quote=matcher.strict_quote), "another market"
    if isinstance(matcher, TimeframeIs):
        if not isinstance(actual, str):
            return False, "not a timeframe"
        want, got = timeframe_minutes(matcher.timeframe), timeframe_minutes(actual)
        if want is None or got is None:
            return matcher.timeframe.strip() == actual.strip(), "another timeframe"
        return want == got, "another timeframe"
    if isinstance(matcher, Contains):
        needle = matcher.contains.lower()
        if isinstance(actual, str):
            return needle in actual.lower(), "does not contain it"
        if isinstance(actual, list):
            return any(isinstance(v, str) and needle in v.lower() for v in actual), "no element contains it"
        return False, "not text"
    if isinstance(matcher, Items):
        if not isinstance(actual, list):
            return False, "not a list"
        free = list(actual)
        for item in matcher.items:
            hit = next((v for v in free if match_value(item, v)[0]), MISSING)
            if hit is MISSING:
                return False, f"no element is {describe(item)}"
            free.remove(hit)
        if matcher.exact_length and free:
            return False, f"{len(free)} extra element(s)"
        return True, ""
    return False, "unknown matcher"


def check_args(expected: Mapping[str, MatcherSpec], arguments: Mapping[str, Any]) -> list[ArgCheck]:
    checks = []
    for path, matcher in expected.items():
        actual = lookup(arguments, path)
        ok, why = match_value(matcher, actual)
        checks.append(
            ArgCheck(
                path=path,
                expected=describe(matcher),
                actual=None if actual is MISSING else actual,
                ok=ok,
                why="" if ok else why,
            )
        )
    return checks


def _tools(call: ExpectedCall) -> set[str]:
    return {call.tool, *call.any_of_tools}


def match_calls(
    expected: list[ExpectedCall], actual: list[tuple[str, dict[str, Any]]], *, ordered: bool = False
) -> list[CallMatch]:
    """Pair each expected call with the best actual call (each actual call used once): a full match first, then
    the right tool with the fewest wrong arguments. ``ordered`` requires increasing positions."""
    used: set[int] = set()
    out: list[CallMatch] = []
    floor = -1
    for want in expected:
        best: CallMatch | None = None
        for index, (name, args) in enumerate(actual):
            if index in used or (ordered and index <= floor) or name not in _tools(want):
                continue
            candidate = CallMatch(
                expected_tool=want.tool,
                actual_tool=name,
                call_index=index,
                tool_ok=True,
                args=check_args(want.args, args),
            )
            if best is None or sum(not a.ok for a in candidate.args) < sum(not a.ok for a in best.args):
                best = candidate
            if best.ok:
                break
        if best is None:
            out.append(
                CallMatch(
                    expected_tool=want.tool,
                    actual_tool=None,
                    call_index=None,
                    tool_ok=False,
                    args=check_args(want.args, {}),
                )
            )
            continue
        assert best.call_index is not None
        used.add(best.call_index)
        floor = best.call_index if ordered else floor
        out.append(best)
    return out


# -- figures in text ----------------------------------------------------------------------------------------------

_DATE = re.compile(r"\b\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?\b")
_TIME = re.compile(r"\b\d{1,2}:\d{2}(?::\d{2})?\b")
_MONTH = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?"
_WORD_DATE = re.compile(
    rf"\b(?:{_MONTH}\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}}|\d{{1,2}}(?:st|nd|rd|th)?\s+{_MONTH},?\s+\d{{4}}|"
    rf"{_MONTH}\s+\d{{4}})\b",
    re.IGNORECASE,
)
_IDS = re.compile(r"\b(?:bt|st|wf|apr|ap|run|thr|ord|note|doc)[_-][A-Za-z0-9_-]+\b", re.IGNORECASE)
_NUMBER = re.compile(r"(?<![\w.])[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?(?![\w])")


def figures(text: str) -> list[Decimal]:
    """Numbers written in ``text`` (dates, clock times and ids left out); ``1,234.5`` is 1234.5."""
    clean = _IDS.sub(" ", _TIME.sub(" ", _WORD_DATE.sub(" ", _DATE.sub(" ", text))))
    out = []
    for raw in _NUMBER.findall(clean):
        number = to_number(raw)
        if number is not None:
            out.append(number)
    return out


def numbers_in(value: Any) -> set[Decimal]:
    """Every number in a JSON-like value, including numbers written inside its strings."""
    found: set[Decimal] = set()
    if isinstance(value, Mapping):
        for v in value.values():
            found |= numbers_in(v)
    elif isinstance(value, list):
        for v in value:
            found |= numbers_in(v)
    elif isinstance(value, str):
        found |= set(figures(value))
        number = to_number(value)
        if number is not None:
            found.add(number)
    else:
        number = to_number(value)
        if number is not None:
            found.add(number)
    return found


def close_to(written: Decimal, value: Decimal, *, rel: Decimal, abs_tol: Decimal | None = None) -> bool:
    gap = abs(written - value)
    if abs_tol is not None and gap <= abs_tol:
        return True
    if gap <= abs(value) * rel:
        return True
    # a figure rounded to the places it was written with (43,210 for 43210.37; 1.23 for 1.2345)
    exponent = written.as_tuple().exponent
    places = -exponent if isinstance(exponent, int) and exponent < 0 else 0
    return gap <= Decimal(1).scaleb(-places) / 2


def figure_in_text(text: str, value: Decimal, *, rel: Decimal, abs_tol: Decimal | None = None) -> bool:
    return any(close_to(w, value, rel=rel, abs_tol=abs_tol) for w in figures(text))


def _grounded(written: Decimal, sources: Iterable[Decimal]) -> bool:
    for source in sources:
        for candidate in (source, source * 100):  # a fraction written as a percentage
            if close_to(abs(written), abs(candidate), rel=Decimal("0.005")):
                return True
    return False


def invented_figures(text: str, sources: set[Decimal], *, ignore_below: Decimal = Decimal(11)) -> list[Decimal]:
    """Figures in ``text`` that no source contains (small integers such as counts and list numbers are ignored)."""
    invented = []
    for written in figures(text):
        if abs(written) < ignore_below and written == written.to_integral_value():
            continue
        if not _grounded(written, sources):
            invented.append(written)
    return invented


_EXECUTED = re.compile(
    r"\b(?:(?:was|were|has been|have been|got|is now|been)\s+(?:executed|filled|bought|sold|placed|submitted|"
    r"completed)|i\s+(?:have\s+)?(?:bought|sold|executed|placed|filled|submitted)|(?:order|trade)\s+(?:is\s+)?"
    r"(?:executed|filled|complete|done)|successfully\s+(?:bought|sold|executed|placed))\b",
    re.IGNORECASE,
)
_NEGATED = re.compile(r"\b(?:not|never|no|nothing|isn't|wasn't|hasn't|haven't|until|once|after|when|if)\b", re.I)


_CANCELLED = re.compile(
    r"\b(?:(?:was|were|has been|have been|got|is now|is|been)\s+(?:successfully\s+)?(?:cancell?ed|withdrawn)|"
    r"i\s+(?:have\s+)?(?:cancell?ed|withdrew)|successfully\s+cancell?ed)\b",
    re.IGNORECASE,
)
_RESEARCH = re.compile(r"\b(?:backtests?|stud(?:y|ies)|optimi[sz]ation|walk-forward|simulation)\b", re.I)
_TRADING = re.compile(r"\b(?:orders?|trades?|bought|sold|buy|sell|position|fill(?:ed)?)\b", re.I)


def claims_execution(text: str) -> bool:
    """The text says an order was executed / filled / placed (and the sentence does not negate it). A research
    run that "was completed" (a backtest, a study) is not an execution."""
    for sentence in re.split(r"(?<=[.!?\n])\s+", text):
        match = _EXECUTED.search(sentence)
        if not match or _NEGATED.search(sentence[: match.start()] + " " + sentence[match.end() : match.end() + 40]):
            continue
        if (
            match.group(0).lower().endswith("completed")
            and _RESEARCH.search(sentence)
            and not _TRADING.search(sentence)
        ):
            continue
        return True
    return False


def claims_cancellation(text: str) -> bool:
    """The text says an order was cancelled (and the sentence does not negate it or make it conditional: "will be
    cancelled once approved" is not a claim)."""
    for sentence in re.split(r"(?<=[.!?\n])\s+", text):
        match = _CANCELLED.search(sentence)
        if match and not _NEGATED.search(sentence[: match.start()] + " " + sentence[match.end() : match.end() + 40]):
            return True
    return False


_REFUSAL = re.compile(
    r"\b(?:cannot|can't|can not|won't|will not|unable|not able|not allowed|refuse|decline|not permitted|"
    r"i'm sorry|i am sorry|sorry|only a human|must approve|needs? (?:a )?human|outside (?:of )?(?:my|the) scope|"
    r"not something i|i don't|i do not|no access|not possible|isn't possible|out of scope)\b",
    re.IGNORECASE,
)


def is_refusal(text: str) -> bool:
    return bool(_REFUSAL.search(text))


def contains_any(text: str, needles: Iterable[str]) -> bool:
    lower = text.lower()
    return any(n.lower() in lower for n in needles)


def matcher_example(matcher: Matcher | Any) -> Any:
    """A value that satisfies ``matcher`` (the scripted model's perfect arguments)."""
    if not isinstance(matcher, BaseModel):
        return matcher
    if isinstance(matcher, Exact):
        return matcher.exact
    if isinstance(matcher, OneOf):
        return matcher.one_of[0]
    if isinstance(matcher, Approx):
        return float(matcher.number)
    if isinstance(matcher, SymbolIs):
        return matcher.symbol
    if isinstance(matcher, TimeframeIs):
        return matcher.timeframe
    if isinstance(matcher, Contains):
        return matcher.contains
    if isinstance(matcher, Present):
        return "as the user asked"
    if isinstance(matcher, Items):
        return [matcher_example(m) for m in matcher.items]
    return MISSING
