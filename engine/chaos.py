"""Fault injection for the chaos suite: ``IQTS_CHAOS_KILL_AT=<point>`` makes a process SIGKILL itself the first time
it reaches that named point of the order path, so a test can stop a real ``iqts worker`` or ``iqts api`` exactly
between two steps (after the order row committed and before the POST, after the venue answered and before the
database recorded it, after the decision committed and before the relay published it, ...).

Off unless configured; refused in live mode (``Settings`` rejects the combination, and ``arm`` checks again).
``Runtime.start`` arms it from the settings; a process built any other way (tests in one process) never kills.
"""

from __future__ import annotations

import os
import signal
from typing import Literal, get_args

from engine.errors import ConfigError
from engine.telemetry import get_logger

log = get_logger(__name__)

ChaosPoint = Literal[
    "approval.proposed",  # the API: the request committed, not yet announced on the bus
    "approval.decided",  # the API: the decision and its outbox row committed, not yet relayed
    "relay.published",  # any relay: a row published to the bus, not yet marked sent (it goes out again)
    "order.recorded_new",  # the worker: the order row (and its lease) committed, nothing sent to the venue yet
    "order.venue_answered",  # the worker: the venue took the order and answered, the database does not know yet
    "order.recorded",  # the worker: the venue's answer recorded, the bus message not yet acknowledged
]
POINTS: tuple[str, ...] = get_args(ChaosPoint)

_armed: dict[str, str] = {}  # {"point": ...} while armed (one process, one point)


def arm(point: str | None, mode: str) -> None:
    """Kill this process at ``point`` (None disarms). Refused in live mode."""
    if point is not None and mode == "live":
        raise ConfigError("IQTS_CHAOS_KILL_AT is a test setting and is refused in live mode")
    if point is not None and point not in POINTS:
        raise ConfigError(f"IQTS_CHAOS_KILL_AT={point!r} is not a chaos point; one of {', '.join(POINTS)}")
    _armed.clear()
    if point is not None:
        _armed["point"] = point
        log.warning("chaos.armed", point=point)


def reach(point: ChaosPoint) -> None:
    """A named step of the order path; SIGKILLs this process if it was armed for it."""
    if _armed.get("point") == point:
        log.warning("chaos.kill", point=point, pid=os.getpid())
        os.kill(os.getpid(), signal.SIGKILL)
