"""One owner per table: only the owning module holds SQL on approval_requests, system_state and web_sessions."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
PACKAGES = ("engine", "approvals", "tools", "ui", "agent", "knowledge", "evals")
OWNERS = {
    "approval_requests": "engine/store/approval_requests.py",
    "system_state": "engine/store/system_state.py",
    "web_sessions": "approvals/sessions.py",
    "kb_documents": "knowledge/store.py",
    "kb_chunks": "knowledge/store.py",
    "kb_docstore": "knowledge/docstore.py",
}


def _sql_on(table: str) -> re.Pattern[str]:
    return re.compile(rf"\b(FROM|INTO|UPDATE|JOIN|TABLE)\s+{table}\b", re.IGNORECASE)


@pytest.mark.parametrize("table", sorted(OWNERS))
def test_only_the_owner_module_holds_sql_on_the_table(table: str) -> None:
    pattern = _sql_on(table)
    holders = sorted(
        str(path.relative_to(ROOT))
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if pattern.search(path.read_text(encoding="utf-8"))
    )
    assert holders == [OWNERS[table]]


def test_web_sessions_are_not_kept_in_system_state() -> None:
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            assert "web_session:" not in path.read_text(encoding="utf-8"), path
