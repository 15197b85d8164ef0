"""Risk policy versions in the real database: save, activate, refuse to rewrite a version."""

from __future__ import annotations

import pytest

from engine.audit import entries
from engine.errors import ConfigError, NotFoundError
from engine.risk import load_default_policy
from engine.risk.store import (
    PolicyVersionConflictError,
    activate,
    active_policy,
    active_version,
    get_policy,
    list_policies,
    save_policy,
    stored_policy,
)
from engine.store.database import Database

pytestmark = pytest.mark.usefixtures("clean_risk_state")


def _policy(version: str, max_notional: int = 5000, comment: str = "") -> str:
    return (
        f"# {comment}\n"
        f'version: "{version}"\n'
        "defaults:\n"
        f"  max_order_notional: {max_notional}\n"
        "  max_daily_loss: 250.50\n"
        "accounts:\n"
        "  main:\n"
        "    max_drawdown: 0.1\n"
    )


def test_without_an_activation_the_bundled_default_is_active_and_stored(db: Database) -> None:
    policy = active_policy(db)
    assert policy == load_default_policy()
    assert active_version(db) is None
    stored = stored_policy(db, policy.version)
    assert stored.active and "conservative" in stored.body  # the file's own text, comments included
    assert active_policy(db) is policy  # the same object: compiled rules are reused across checks


def test_save_then_activate_is_audited_and_changes_the_active_policy(db: Database, unique: str) -> None:
    version = save_policy(db, _policy(f"t-{unique}"), "alice")
    assert version == f"t-{unique}"
    assert active_policy(db).version != version  # saving alone does not activate
    activated = activate(db, version, "bob")
    assert activated.version == version
    assert active_version(db) == version
    active = active_policy(db)
    assert active.breaker_limits("main").max_drawdown is not None
    assert str(active.defaults.max_daily_loss) == "250.50"
    assert active is get_policy(db, version)
    [saved] = entries(db, subject=f"risk_policy:{version}", action="risk_policy.saved")
    assert saved.actor == "alice" and saved.payload["version"] == version
    [act] = entries(db, subject=f"risk_policy:{version}", action="risk_policy.activated")
    assert act.actor == "bob" and act.payload["previous"] is None
    listed = {p.version: p.active for p in list_policies(db)}
    assert listed[version] is True and sum(listed.values()) == 1


def test_a_version_names_one_content_forever(db: Database, unique: str) -> None:
    version = f"t-{unique}"
    save_policy(db, _policy(version), "alice")
    # the same policy again, even formatted with another comment: a no-op, not a second save
    assert save_policy(db, _policy(version, comment="reformatted"), "alice") == version
    assert len(entries(db, subject=f"risk_policy:{version}", action="risk_policy.saved")) == 1
    with pytest.raises(PolicyVersionConflictError, match=rf"version t-{unique} is already stored with different"):
        save_policy(db, _policy(version, max_notional=9999), "mallory")
    assert get_policy(db, version).defaults.max_order_notional == 5000
    assert stored_policy(db, version).body == _policy(version)


def test_bad_input_is_refused_clearly(db: Database, unique: str) -> None:
    with pytest.raises(ConfigError, match="max_order_notionall: unknown key"):
        save_policy(db, f'version: "t-{unique}"\ndefaults:\n  max_order_notionall: 5\n', "alice")
    with pytest.raises(NotFoundError, match=f"no stored risk policy version nope-{unique}"):
        activate(db, f"nope-{unique}", "alice")
    with pytest.raises(NotFoundError):
        stored_policy(db, f"nope-{unique}")
