"""Imports deferred to first use, so that IQTS processes start fast.

``jsonschema`` (which the MCP SDK imports on every ``import mcp``) builds its format checkers at import time, and
when ``rfc3987_syntax`` is installed that means compiling a Lark grammar of RFC 3987 for about 2 s on one core, to
check the ``iri`` and ``iri-reference`` formats that no IQTS schema uses. :func:`defer_slow_imports` puts a stand-in
for that module in ``sys.modules``: jsonschema takes its functions as usual, and the real module (and the grammar)
is imported the first time one of them is called, so behaviour is unchanged and only the cost moves.

Call it before anything imports ``mcp`` or ``jsonschema``; calling it again, or after the real module was imported,
does nothing.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
import types
from typing import Any

DEFERRED: tuple[str, ...] = ("rfc3987_syntax",)
"""Modules whose import is deferred (each is only ever reached through functions it exports)."""

_lock = threading.Lock()
_real: dict[str, types.ModuleType] = {}


class DeferredModule(types.ModuleType):
    """Stands in for a slow module: any attribute it does not hold itself imports the real module first."""

    def __getattr__(self, attribute: str) -> Any:
        if attribute.startswith("__"):
            raise AttributeError(attribute)
        return getattr(load(self.__name__), attribute)


def load(name: str) -> types.ModuleType:
    """The real module ``name`` (imported now if only its stand-in was)."""
    with _lock:
        module = _real.get(name)
        if module is not None:
            return module
        stand_in = sys.modules.get(name)
        if isinstance(stand_in, DeferredModule):
            del sys.modules[name]
        try:
            module = importlib.import_module(name)
        except BaseException:
            if stand_in is not None:
                sys.modules[name] = stand_in
            raise
        _real[name] = module
        return module


def _forwarder(name: str, function: str) -> Any:
    def forward(*args: Any, **kwargs: Any) -> Any:
        return getattr(load(name), function)(*args, **kwargs)

    forward.__name__ = forward.__qualname__ = function
    forward.__doc__ = f"{name}.{function}, imported on first call"
    return forward


_EXPORTS: dict[str, tuple[str, ...]] = {"rfc3987_syntax": ("is_valid_syntax", "parse", "make_syntax_validator")}


def defer_slow_imports() -> None:
    """Install the stand-ins (for each deferred module that is installed and not imported yet)."""
    with _lock:
        for name in DEFERRED:
            if name in sys.modules:
                continue
            spec = importlib.util.find_spec(name)
            if spec is None:
                continue  # not installed: its users take their ImportError path as before
            stand_in = DeferredModule(name, f"stand-in for {name}, imported on first use (engine.imports)")
            stand_in.__spec__ = spec
            for function in _EXPORTS.get(name, ()):
                setattr(stand_in, function, _forwarder(name, function))
            sys.modules[name] = stand_in
