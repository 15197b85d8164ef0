"""PostgreSQL away: every route answers 503 with a reason (never 500), and readiness comes back by itself when the
server returns, without restarting the API (issue 11, item 4). The outage is a cut TCP proxy in front of the
suite's real server, so no other test module notices."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from pydantic import SecretStr

from approvals.users import Role, create_user, issue_token
from engine.bus import InProcessBus
from engine.runtime import Runtime
from engine.settings import Settings
from engine.store.database import Database, connect
from tests.integration.inbox.helpers import ServerThread
from tests.support.polling import wait_for
from tests.support.tcp_proxy import TcpProxy
from ui.api.app import create_app


@pytest.fixture
def proxied(settings: Settings, db: Database) -> Iterator[tuple[TcpProxy, Database]]:
    info = psycopg.conninfo.conninfo_to_dict(db.url)
    host, port = str(info.get("host") or "localhost"), int(info.get("port") or 5432)
    if host.startswith("/"):
        proxy = TcpProxy(unix_path=Path(host) / f".s.PGSQL.{port}").restore()
    else:
        proxy = TcpProxy(host=host, port=port).restore()
    url = psycopg.conninfo.make_conninfo(db.url, host="127.0.0.1", port=str(proxy.port))
    through = connect(settings.model_copy(update={"database_url": SecretStr(url), "db_connect_timeout_s": 2.0}))
    try:
        yield proxy, through
    finally:
        through.close()
        proxy.close()


def _until_ready(http: httpx.Client, timeout: float = 60) -> httpx.Response:
    def ready() -> httpx.Response | None:
        answer = http.get("/readyz")
        return answer if answer.status_code == 200 else None

    return wait_for("readiness to return", ready, timeout=timeout, interval=0.2)


def test_the_api_answers_503_while_the_database_is_away_and_recovers_by_itself(
    proxied: tuple[TcpProxy, Database], settings: Settings, db: Database, unique: str
) -> None:
    proxy, through = proxied
    create_user(db, f"tess{unique}", "correct horse battery", Role.TRADER)
    token = issue_token(db, f"tess{unique}", "outage", actor="test")
    bearer = {"Authorization": f"Bearer {token}"}
    app = create_app(Runtime(settings=settings, db=through, bus=InProcessBus()), with_mcp=False)
    with ServerThread(app) as server, httpx.Client(base_url=server.url, timeout=30) as http:
        assert http.get("/readyz").status_code == 200
        assert http.get("/api/approvals", headers=bearer).status_code == 200

        proxy.cut()
        ready = http.get("/readyz")
        assert ready.status_code == 503 and ready.json()["checks"]["database"] is False
        for path in ("/api/approvals", "/api/session"):
            answer = http.get(path, headers=bearer)
            assert answer.status_code == 503, (path, answer.text)
            assert "database" in answer.json()["detail"]

        proxy.restore()
        assert _until_ready(http).status_code == 200  # no restart
        assert http.get("/api/approvals", headers=bearer).status_code == 200
