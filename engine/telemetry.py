"""Logging (structlog: console in a terminal, JSON otherwise, secrets redacted) and Prometheus metrics."""

from __future__ import annotations

import logging
import re
import sys
import threading
from collections.abc import Iterable, MutableMapping, Sequence
from typing import Any, TypeVar

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, PlatformCollector, ProcessCollector
from pydantic import SecretStr

REGISTRY = CollectorRegistry(auto_describe=True)
"""The registry every IQTS metric is registered in; served at ``/metrics``."""
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
BUILD_INFO = Info("iqts_build", "IQTS version and trading mode", registry=REGISTRY)

_M = TypeVar("_M", Counter, Gauge, Histogram)
_register_lock = threading.Lock()


def metric(kind: type[_M], name: str, documentation: str, labels: Sequence[str] = (), **kwargs: Any) -> _M:
    """The collector registered under ``name`` in ``REGISTRY``, created on first use (a module imported twice
    reuses it instead of failing on a duplicate name)."""
    with _register_lock:
        existing = REGISTRY._names_to_collectors.get(name)  # prometheus_client has no public lookup
        if existing is not None:
            if not isinstance(existing, kind):
                raise TypeError(f"metric {name} is already registered as a {type(existing).__name__}")
            return existing
        return kind(name, documentation, labelnames=tuple(labels), registry=REGISTRY, **kwargs)


REDACTED = "***"
_SECRET_KEY = re.compile(
    r"(pass(word|phrase)?|secret|token|api[_-]?key|apikey|private[_-]?key|authorization|credential|signature)",
    re.IGNORECASE,
)
# user:password@ inside URLs (postgresql://, redis://, https://)
_URL_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://[^:/@\s]*):(?P<pw>[^@\s]+)@", re.IGNORECASE)
_known_secrets: set[str] = set()


def register_secrets(values: Iterable[str]) -> None:
    """Remember secret values so that they are scrubbed from every log line, whatever the key."""
    _known_secrets.update(v for v in values if v)


def redact_text(text: str) -> str:
    """Remove URL passwords and every registered secret value from a string."""
    text = _URL_PASSWORD.sub(lambda m: f"{m.group('scheme')}:{REDACTED}@", text)
    for secret in _known_secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def _redact_value(key: str, value: Any) -> Any:
    if isinstance(value, SecretStr):
        return REDACTED
    if _SECRET_KEY.search(key) and value not in (None, ""):
        return REDACTED
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: _redact_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_redact_value(key, v) for v in value)
    return value


def redact_processor(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: redact secrets by key name, by type and by known value."""
    for key in list(event_dict):
        event_dict[key] = _redact_value(key, event_dict[key])
    return event_dict


def configure_logging(level: str = "INFO", fmt: str = "auto", secrets: Iterable[str] = ()) -> None:
    """Set up structlog and the stdlib root logger once per process."""
    register_secrets(secrets)
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    renderer: Any = structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer()
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_processor,
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info if use_json else _identity,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("httpx", "httpcore", "asyncio", "numba", "urllib3"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))


def _default_to_stderr() -> None:
    """Before ``configure_logging`` runs, structlog would print to stdout, which belongs to a command's output
    (``--json``) or to a protocol (MCP stdio): send early log lines to stderr, INFO and above."""
    structlog.configure(
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
    )


_default_to_stderr()


def _identity(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    return event_dict


def get_logger(name: str) -> Any:
    """A structlog logger bound to a module name."""
    return structlog.get_logger(name)
