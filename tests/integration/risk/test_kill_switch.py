"""The kill switch on the real database and both buses: engage, release only with a valid approval, controls."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from engine.audit import entries
from engine.bus import Bus, InProcessBus
from engine.bus.redis_streams import RedisStreamsBus
from engine.errors import BusUnavailableError, ValidationFailedError
from engine.risk.killswitch import (
    KILL_SWITCH_TOPIC,
    KillSwitchBroadcastError,
    KillSwitchError,
    controls,
    engage,
    release,
    status,
)
from engine.risk.models import BreakerTrip
from engine.store.database import Database
from tests.integration.risk.conftest import ApprovalFactory

pytestmark = pytest.mark.usefixtures("clean_risk_state")


def _approval_status(db: Database, approval_id: str) -> str:
    with db.connection() as conn:
        row = conn.execute("SELECT status FROM approval_requests WHERE id = %s", (approval_id,)).fetchone()
    assert row is not None
    return str(row[0])


async def _messages(bus: Bus, group: str) -> list[dict[str, object]]:
    await bus.ensure_group(KILL_SWITCH_TOPIC, group)
    return [m.payload for m in await bus.read(KILL_SWITCH_TOPIC, group, "c1", count=100, block_ms=100)]


@pytest.fixture(params=["memory", "redis"])
async def bus(request: pytest.FixtureRequest, redis_url: str, unique: str) -> AsyncIterator[Bus]:
    instance: Bus = InProcessBus() if request.param == "memory" else RedisStreamsBus(redis_url, prefix=f"t{unique}:")
    yield instance
    await instance.close()


async def test_engage_persists_audits_and_broadcasts(db: Database, bus: Bus, unique: str) -> None:
    assert not status(db).engaged
    await bus.ensure_group(KILL_SWITCH_TOPIC, f"worker-{unique}")  # a worker listening before the act
    state = await engage(db, bus, f"trader-{unique}", "exchange is misbehaving")
    assert state.engaged and state.by == f"trader-{unique}" and state.reason == "exchange is misbehaving"
    assert status(db) == state
    [row] = entries(db, subject="kill_switch", action="kill_switch.engage", limit=1)
    assert row.actor == f"trader-{unique}" and row.payload == {
        "reason": "exchange is misbehaving",
        "already_engaged": False,
    }
    [message] = await _messages(bus, f"worker-{unique}")
    assert message["engaged"] is True and message["by"] == f"trader-{unique}"
    assert message["reason"] == "exchange is misbehaving" and message["at"]

    again = await engage(db, bus, "someone-else", "me too")  # keeps the first engagement, broadcasts again
    assert again == state
    assert entries(db, subject="kill_switch", limit=1)[0].payload["already_engaged"] is True
    [repeat] = await _messages(bus, f"worker-{unique}")
    assert repeat["engaged"] is True and repeat["by"] == f"trader-{unique}"


async def test_release_is_refused_without_a_valid_approval(db: Database, make_approval: ApprovalFactory) -> None:
    bus = InProcessBus()
    with pytest.raises(KillSwitchError, match="not engaged"):
        await release(db, bus, "carol", make_approval())
    stale = make_approval(created_at=datetime.now(UTC) - timedelta(minutes=1))  # asked before the engagement
    await engage(db, bus, "bob", "drill")
    old_order_approval = make_approval(kind="order")
    used = make_approval(status="executed")
    cases = {
        "apr-does-not-exist": "no approval apr-does-not-exist",
        make_approval(status="pending", decided=False): "is pending, not approved",
        make_approval(status="rejected"): "is rejected, not approved",
        make_approval(status="expired"): "is expired, not approved",
        make_approval(expires_in=timedelta(seconds=-1)): "expired at",
        used: "already used",
        old_order_approval: "is a order request, not a kill switch release",
        make_approval(decided_hash="0" * 64): "was given for a different request",
        make_approval(status="approved", decided=False): "not approved",
        stale: "requested before the kill switch was engaged",
    }
    for approval_id, reason in cases.items():
        with pytest.raises(KillSwitchError, match=reason):
            await release(db, bus, "carol", approval_id)
        assert status(db).engaged, approval_id
    assert _approval_status(db, stale) == "approved"  # a refused release consumes nothing
    refused = entries(db, subject="kill_switch", action="kill_switch.release_refused", limit=len(cases))
    assert len(refused) == len(cases) and all(r.actor == "carol" for r in refused)
    assert [m["engaged"] for m in await _messages(bus, "g")] == [True]  # only the engage message went out


async def test_release_with_a_valid_approval_executes_it_once(
    db: Database, bus: Bus, make_approval: ApprovalFactory, unique: str
) -> None:
    await engage(db, bus, "bob", "drill")
    approval_id = make_approval()
    await bus.ensure_group(KILL_SWITCH_TOPIC, f"w-{unique}", start="$")
    state = await release(db, bus, "carol", approval_id)
    assert not state.engaged and state.by == "carol" and state.approval_id == approval_id
    assert not status(db).engaged
    assert _approval_status(db, approval_id) == "executed"
    [row] = entries(db, subject="kill_switch", action="kill_switch.release", limit=1)
    assert row.actor == "carol" and row.payload["approval_id"] == approval_id
    assert row.payload["engaged_by"] == "bob" and row.payload["engaged_reason"] == "drill"
    [message] = await _messages(bus, f"w-{unique}")
    assert message["engaged"] is False and message["approval_id"] == approval_id

    await engage(db, bus, "bob", "second drill")
    with pytest.raises(KillSwitchError, match="already used"):
        await release(db, bus, "carol", approval_id)
    assert status(db).engaged


async def test_engage_needs_a_reason_and_survives_a_dead_bus(db: Database) -> None:
    with pytest.raises(ValidationFailedError, match="reason"):
        await engage(db, InProcessBus(), "bob", "  ")
    assert not status(db).engaged
    dead = RedisStreamsBus("redis://127.0.0.1:1/0")
    try:
        with pytest.raises(KillSwitchBroadcastError, match="engaged \\(new orders are blocked\\) but the bus") as info:
            await engage(db, dead, "bob", "bus is down too")
    finally:
        await dead.close()
    assert isinstance(info.value, BusUnavailableError)
    assert status(db).engaged and controls(db).kill_switch_engaged  # persisted before the broadcast


async def test_controls_reflect_the_switch_and_the_breakers(db: Database, make_approval: ApprovalFactory) -> None:
    released = controls(db)
    assert not released.kill_switch_engaged and released.breakers == ()
    await engage(db, InProcessBus(), "bob", "fat finger")
    engaged = controls(db)
    assert engaged.kill_switch_engaged
    assert engaged.kill_switch_reason is not None and "by bob" in engaged.kill_switch_reason
    assert "fat finger" in engaged.kill_switch_reason
    trip = BreakerTrip(
        breaker="max_drawdown",
        account="main",
        reason="drawdown 25% exceeds 20%",
        limit=Decimal("0.2"),
        observed=Decimal("0.25"),
        tripped_at=datetime.now(UTC),
    )
    with db.connection() as conn:
        conn.execute(
            "INSERT INTO system_state (key, value) VALUES ('breakers', %s::jsonb)",
            ('{"trips": [' + trip.model_dump_json() + "]}",),
        )
    await release(db, InProcessBus(), "carol", make_approval())
    after = controls(db)
    assert not after.kill_switch_engaged and after.kill_switch_reason is None
    assert after.breakers == (trip,)
