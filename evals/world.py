"""The world a scenario runs in: a database of its own (cloned from a template migrated once per run, with or without
the bundled history), set up through the real services (notes, positions bought through the approval path on the
paper venue, an open order, the kill switch), and the end state counted afterwards."""

from __future__ import annotations

import itertools
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import psycopg
from psycopg import sql

from engine.settings import Settings, load_settings
from engine.store.database import Database, check_url, connect
from engine.store.migrate import upgrade
from engine.telemetry import get_logger
from evals.results import EndStateSeen
from evals.scenario import Position, Setup

log = get_logger(__name__)

SETUP_USER = "eval-setup"
SETUP_APPROVER = "eval-approver"


@dataclass
class DatabaseServer:
    """Where run databases are made: an admin connection, and settings that address one database by name."""

    admin: str
    base: Settings

    @classmethod
    def of(cls, settings: Settings) -> DatabaseServer:
        if settings.database_url is not None:
            url = check_url(settings.database_url.get_secret_value())
            return cls(admin=psycopg.conninfo.make_conninfo(url, dbname="postgres"), base=settings)
        from engine.store.embedded import EmbeddedPostgres

        embedded = EmbeddedPostgres(settings.state_dir, start_timeout_s=settings.embedded_pg_start_timeout_s)
        embedded.start()
        return cls(admin=embedded.layout.conninfo("postgres"), base=settings)

    def settings_for(self, name: str, **overrides: Any) -> Settings:
        values: dict[str, Any] = {"state_dir": self.base.state_dir, "mode": "dry-run", **overrides}
        if self.base.database_url is not None:
            url = psycopg.conninfo.make_conninfo(self.base.database_url.get_secret_value(), dbname=name)
            values["database_url"] = url
        else:
            values["db_name"] = name
        return load_settings(**values)

    def execute(self, statement: sql.Composed) -> None:
        with psycopg.connect(self.admin, autocommit=True) as conn:
            conn.execute(statement)

    def drop(self, name: str) -> None:
        self.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def drop_stale(self, prefix: str = "iqts_eval_") -> list[str]:
        """Drop the databases of eval runs whose process is gone (a run killed before it could clean up)."""
        with psycopg.connect(self.admin, autocommit=True) as conn:
            rows = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (prefix + "%",)).fetchall()
        dropped = []
        for (name,) in rows:
            pid = name.removeprefix(prefix).split("_", 1)[0]
            if pid.isdigit() and not _alive(int(pid)):
                self.drop(name)
                dropped.append(name)
        return dropped

    def create(self, name: str, template: str | None = None) -> None:
        self.drop(name)
        if template is None:
            self.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        else:
            self.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template))
            )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class RunDatabases:
    """The templates of one run (made on first use) and the scenario databases cloned from them."""

    server: DatabaseServer
    prefix: str = field(default_factory=lambda: f"iqts_eval_{os.getpid()}_{uuid.uuid4().hex[:6]}")
    overrides: dict[str, Any] = field(default_factory=dict)
    _templates: dict[str, str] = field(default_factory=dict)
    _numbers: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        stale = self.server.drop_stale()
        if stale:
            log.info("eval.dropped_stale_databases", databases=stale)

    def _template(self, data: str) -> str:
        if data in self._templates:
            return self._templates[data]
        name = f"{self.prefix}_tpl_{data}"
        self.server.create(name)
        database = connect(self.server.settings_for(name, **self.overrides))
        try:
            upgrade(database)
            if data == "bundled":
                from engine.data.sample import load_sample_series
                from engine.data.store import BarStore, make_key

                store = BarStore(database)
                for series in load_sample_series():
                    store.upsert_bars(make_key(series.exchange, series.symbol, series.timeframe), series.frame)
        finally:
            database.close()  # a template must have no open connection when it is copied
        self._templates[data] = name
        return name

    @contextmanager
    def scenario(self, data: str) -> Iterator[Settings]:
        """Settings for one scenario's own database, dropped afterwards."""
        name = f"{self.prefix}_{next(self._numbers)}"
        self.server.create(name, template=self._template(data))
        try:
            yield self.server.settings_for(name, **self.overrides)
        finally:
            self.server.drop(name)

    def close(self) -> None:
        for name in self._templates.values():
            self.server.drop(name)
        self._templates.clear()


# -- setup --------------------------------------------------------------------------------------------------------


@dataclass
class Prepared:
    """What the setup made, for placeholders in the scenario text (``{order_id}``, ``{backtest_0}``)."""

    values: dict[str, str] = field(default_factory=dict)
    baseline: EndStateSeen = field(default_factory=EndStateSeen)


async def _fill_on_paper(db: Database, settings: Settings, position: Position, *, limit: bool) -> Any:
    """Propose, approve (a stand-in approver) and submit one order on a paper venue fed one bar at the price."""
    from approvals import service as approvals
    from approvals.service import Requester
    from approvals.users import Role, User
    from engine.bus import make_bus
    from engine.execution import gate
    from engine.execution.models import OrderIntent
    from engine.execution.paper import ManualPriceFeed, PaperBroker, PaperBrokerConfig, PriceBar
    from engine.execution.router import Router
    from engine.execution.worker import build_order_manager
    from engine.runtime import Runtime

    bus = make_bus(settings)
    try:
        order: dict[str, Any] = {
            "symbol": position.symbol,
            "side": "buy",
            "quantity": position.quantity,
            "type": "market",
            "account": position.account,
            "mode": settings.mode,
        }
        if limit:
            # 3 % under the price: inside the policy's 5 % price collar, and the paper bar never reaches it
            order |= {"type": "limit", "price": (position.price * Decimal("0.97")).quantize(Decimal("0.01"))}
        intent = OrderIntent.model_validate(order)
        request = await approvals.propose_order(db, bus, settings, intent, Requester(user=SETUP_USER, kind="cli"))
        approver = User(id=-1, username=SETUP_APPROVER, role=Role.APPROVER)
        await approvals.decide(
            db, bus, settings, request.id, approver, approve=True, auth="password", seen_hash=request.intent_hash
        )
        feed = ManualPriceFeed()
        price = position.price
        feed.push(position.symbol, PriceBar(int(time.time() * 1000), price, price, price, price, Decimal(1000)))
        cash = {"USD": Decimal(100_000), "USDT": Decimal(100_000)}
        broker = PaperBroker(PaperBrokerConfig(name=position.account, initial_balances=cash), feed)
        runtime = Runtime(settings=settings, db=db, bus=bus)
        manager = build_order_manager(runtime, Router({position.account: broker}))
        with db.connection() as conn:
            approved = gate.load_approved_intent(conn, request.id)
        return await manager.submit_approved(approved, request.id)
    finally:
        await bus.close()


async def prepare(settings: Settings, setup: Setup) -> Prepared:
    """Bring the scenario's database to its starting state through the real services."""
    prepared = Prepared()
    database = connect(settings)
    try:
        for note in setup.notes:
            from knowledge.service import add_note

            add_note(database, note.title, note.text, "note", tuple(note.tags), metadata={"by": SETUP_USER})
        for position in setup.positions:
            await _fill_on_paper(database, settings, position, limit=False)
        if setup.open_order is not None:
            record = await _fill_on_paper(database, settings, setup.open_order, limit=True)
            prepared.values["order_id"] = str(record.id)
        if setup.kill_switch == "engaged":
            from engine.bus import make_bus
            from engine.risk.killswitch import engage

            bus = make_bus(settings)
            try:
                await engage(database, bus, SETUP_USER, "engaged by the scenario's setup")
            finally:
                await bus.close()
        prepared.baseline = end_state(database)
    finally:
        database.close()
    return prepared


def end_state(database: Database) -> EndStateSeen:
    from engine.risk.killswitch import status
    from engine.store import approval_requests

    with database.connection() as conn:
        approvals, decided = approval_requests.counts(conn)
        orders = (conn.execute("SELECT count(*) FROM orders").fetchone() or (0,))[0]
        fills = (conn.execute("SELECT count(*) FROM fills").fetchone() or (0,))[0]
        cancelled = (conn.execute("SELECT count(*) FROM orders WHERE status = 'cancelled'").fetchone() or (0,))[0]
    engaged = status(database).engaged
    return EndStateSeen(
        approvals=int(approvals),
        decided=int(decided),
        orders=int(orders),
        fills=int(fills),
        cancelled=int(cancelled),
        kill_switch="engaged" if engaged else "released",
    )


def observed_end(settings: Settings, baseline: EndStateSeen) -> EndStateSeen:
    database = connect(settings)
    try:
        now = end_state(database)
    finally:
        database.close()
    return EndStateSeen(
        approvals=now.approvals - baseline.approvals,
        decided=now.decided - baseline.decided,
        orders=now.orders - baseline.orders,
        fills=now.fills - baseline.fills,
        cancelled=now.cancelled - baseline.cancelled,
        kill_switch=now.kill_switch,
    )
