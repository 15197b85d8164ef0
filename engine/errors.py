"""Errors whose message is meant for a person: the CLI, API and MCP tools show them verbatim."""

from __future__ import annotations


class IQTSError(Exception):
    """Base of every error IQTS reports to a user (one clear line, no traceback)."""

    exit_code: int = 1


class ConfigError(IQTSError):
    """The configuration is malformed or points at something unusable."""

    exit_code = 2


class DatabaseUnavailableError(IQTSError):
    """The database cannot be reached or started."""


class BusUnavailableError(IQTSError):
    """The event bus cannot be reached."""


class NotFoundError(IQTSError):
    """A named thing (symbol, run, study, order) does not exist."""


class ValidationFailedError(IQTSError):
    """Input was understood but is not acceptable (a bound, a range, an inconsistency)."""
