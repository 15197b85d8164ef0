"""Jinja2 rendering of the inbox pages: autoescaped templates, strict security headers on every page."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Final

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse

UI_DIR: Final = Path(__file__).resolve().parent.parent.parent
TEMPLATES_DIR: Final = UI_DIR / "templates"
STATIC_DIR: Final = UI_DIR / "static"

# Pages load only their own CSS and JS; no inline scripts, no frames, forms post only to this origin.
PAGE_HEADERS: Final[dict[str, str]] = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def format_dt(value: datetime | None) -> str:
    """``2025-01-31 14:05:09 UTC`` (empty for None)."""
    if value is None:
        return ""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def format_num(value: Any) -> str:
    """A decimal as people read it: no exponent, thousands separated, trailing zeros dropped."""
    if value is None or value == "":
        return ""
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return str(value)
    if not number.is_finite():
        return str(value)
    text = format(number.normalize(), "f")
    whole, _, fraction = text.partition(".")
    sign = "-" if whole.startswith("-") else ""
    grouped = f"{int(whole.lstrip('-') or '0'):,}"
    return f"{sign}{grouped}.{fraction}" if fraction else f"{sign}{grouped}"


_NUMERIC = re.compile(r"-?\d+(\.\d+)?([eE][-+]?\d+)?")
_SIGNIFICANT = 8


def format_value(value: Any) -> str:
    """A rule's limit or observation for people: ``true``/``false``, lists joined, long decimals shortened."""
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ", ".join(format_value(v) for v in value) if value else "—"
    if isinstance(value, int | float | Decimal) or (isinstance(value, str) and _NUMERIC.fullmatch(value)):
        try:
            number = Decimal(str(value))
        except InvalidOperation:
            return str(value)
        if number.is_finite() and not number.is_zero():
            places = max(0, _SIGNIFICANT - 1 - number.adjusted())
            number = number.quantize(Decimal(1).scaleb(-places))
        return format_num(number)
    return str(value)


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["dt"] = format_dt
    env.filters["num"] = format_num
    env.filters["value"] = format_value
    return env


ENV: Final = _environment()


def render_fragment(template: str, context: dict[str, Any]) -> str:
    return ENV.get_template(template).render(**context)


_MODES: Final = {
    "dry-run": ("DRY-RUN", "dry-run: orders are simulated by the paper broker; nothing reaches an exchange"),
    "sandbox": ("SANDBOX", "sandbox: orders go to the exchange's test venue, with test money"),
    "live": ("LIVE TRADING", "live: approved orders are sent to the exchange with real money"),
}


def _mode(request: Request) -> dict[str, str]:
    """The trading mode this IQTS runs in, for the header badge (nothing when the app has no runtime)."""
    runtime = getattr(request.app.state, "runtime", None)
    mode = getattr(getattr(runtime, "settings", None), "mode", None)
    if mode not in _MODES:
        return {"mode": ""}
    label, note = _MODES[mode]
    return {"mode": mode, "mode_label": label, "mode_note": note}


def render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    """A full page; ``principal`` and ``csrf_token`` default to the signed-in person's, if any."""
    principal = getattr(request.state, "principal", None)
    values: dict[str, Any] = {
        "request": request,
        "principal": principal,
        "csrf_token": getattr(principal, "csrf_token", None) or "",
        "now": datetime.now(UTC),
        "title": "IQTS",
        "nav": "",
        "live": False,
        "request_id": "",
        **_mode(request),
    }
    values.update(context or {})
    html = ENV.get_template(template).render(**values)
    return HTMLResponse(html, status_code=status_code, headers={**PAGE_HEADERS, **(headers or {})})
