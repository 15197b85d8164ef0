"""What a person is asked to approve: one typed intent per request kind, as one discriminated union.

The four kinds are ``order`` (an :class:`~engine.execution.models.OrderIntent`), ``cancel`` (an open order),
``kill_switch_release`` (the engagement it releases) and ``strategy_deployment``. Each has ``intent_hash()``
(what a decision binds to) and ``describe()`` (the one line the inbox, the chat and the notifier show).

The stored JSON of an intent does not hold its kind (the request row does): ``parse_intent(kind, data)`` reads it
back. ``kind`` is a field of every model only so that pydantic can discriminate; it is never dumped.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from engine.execution.models import OrderIntent

RequestKind = Literal["order", "cancel", "kill_switch_release", "strategy_deployment"]
KINDS: Final[tuple[RequestKind, ...]] = ("order", "cancel", "kill_switch_release", "strategy_deployment")


def payload_hash(payload: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON (sorted keys, no spaces) of a payload."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class _Intent(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    def intent_hash(self) -> str:
        return payload_hash(self.model_dump(mode="json"))


class CancelIntent(_Intent):
    """Cancel one open order."""

    kind: Literal["cancel"] = Field(default="cancel", exclude=True)
    order_id: int
    approval_id: str | None = None
    client_order_id: str | None = None
    account: str
    symbol: str

    def describe(self) -> str:
        return f"cancel order {self.order_id} {self.symbol} on {self.account}"


class KillSwitchReleaseIntent(_Intent):
    """Release the kill switch: names the engagement it releases, so a new engagement needs a new request."""

    kind: Literal["kill_switch_release"] = Field(default="kill_switch_release", exclude=True)
    action: Literal["kill_switch_release"] = "kill_switch_release"
    engaged_by: str | None = None
    engaged_at: str | None = None
    reason: str | None = None

    def describe(self) -> str:
        who = f" by {self.engaged_by}" if self.engaged_by else ""
        when = ""
        if self.engaged_at:
            try:
                when = f" at {datetime.fromisoformat(self.engaged_at).strftime('%Y-%m-%d %H:%M UTC')}"
            except ValueError:
                when = f" at {self.engaged_at}"
        why = f": {self.reason}" if self.reason else ""
        return f"release the kill switch (engaged{who}{when}{why})"


class StrategyDeploymentIntent(_Intent):
    """Run a strategy live with these parameters on this account."""

    model_config = ConfigDict(frozen=True, extra="allow")

    kind: Literal["strategy_deployment"] = Field(default="strategy_deployment", exclude=True)
    strategy: str = Field(min_length=1, max_length=64)
    params: dict[str, Any] = Field(default_factory=dict)
    account: str | None = None
    symbol: str | None = None

    def describe(self) -> str:
        params = ", ".join(f"{k}={v}" for k, v in sorted(self.params.items()))
        where = " ".join(x for x in (self.symbol, f"on {self.account}" if self.account else None) if x)
        return " ".join(x for x in (f"deploy strategy {self.strategy}", f"({params})" if params else "", where) if x)


ApprovalIntent = Annotated[
    OrderIntent | CancelIntent | KillSwitchReleaseIntent | StrategyDeploymentIntent, Field(discriminator="kind")
]
"""Every intent a request can hold, told apart by ``kind``."""

_ADAPTER: Final[TypeAdapter[ApprovalIntent]] = TypeAdapter(ApprovalIntent)


def parse_intent(kind: str, data: Mapping[str, Any]) -> ApprovalIntent:
    """The typed intent of a request of ``kind`` from its stored JSON (raises pydantic's ValidationError)."""
    return _ADAPTER.validate_python({**data, "kind": kind})


def intent_data(intent: ApprovalIntent) -> dict[str, Any]:
    """The JSON stored and shown for an intent (without its kind, which the request carries)."""
    return intent.model_dump(mode="json")


def describe(intent: ApprovalIntent) -> str:
    """The one line every surface shows for an intent: ``buy 0.01 BTC/USD market on paper (dry-run)`` etc."""
    return intent.describe()


def describe_data(data: Mapping[str, Any], kind: str | None = None) -> str | None:
    """:func:`describe` of an intent received as JSON (a tool result: its ``kind`` inside, else ``kind``, else
    an order); None when it is not a valid intent."""
    body = {k: v for k, v in data.items() if k != "kind"}
    try:
        return describe(parse_intent(str(data.get("kind") or kind or "order"), body))
    except ValueError:
        return None
