"""The live portfolio: the ledger persisted in system_state, advanced by the fills table.

The fills table is the source of truth; the stored ledger is a checkpoint (state + the last fill id applied),
so loading applies only newer fills, and the marks (day-start and peak equity) survive restarts.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Final

from psycopg import Connection
from psycopg.rows import TupleRow

from engine.data.provider import MarketData
from engine.execution.models import Fill, Liquidity, OrderSide
from engine.portfolio.ledger import Ledger
from engine.portfolio.models import PortfolioSnapshot
from engine.risk.models import MarketSnapshot
from engine.settings import Settings
from engine.store import system_state
from engine.store.database import Database
from engine.store.system_state import StateKey

_KEY: Final[StateKey] = "ledger"
_RATE_WINDOW = timedelta(minutes=1)


def _fresh(settings: Settings) -> Ledger:
    ledger = Ledger()
    for account in settings.accounts:
        ledger.open_account(account.name, valuation_currency=account.valuation_currency, cash=account.initial_cash)
    return ledger


def _load_checkpoint(conn: Connection[TupleRow], settings: Settings) -> tuple[Ledger, int]:
    value = system_state.read(conn, _KEY)
    if value is None:
        return _fresh(settings), 0
    ledger = Ledger.from_dict(value["state"])
    for account in settings.accounts:  # accounts added to the configuration since the checkpoint
        if account.name not in ledger.accounts:
            ledger.open_account(account.name, valuation_currency=account.valuation_currency, cash=account.initial_cash)
    return ledger, int(value["last_fill_id"])


def _apply_new_fills(conn: Connection[TupleRow], ledger: Ledger, after_id: int) -> int:
    rows = conn.execute(
        "SELECT id, order_id, fill_key, account, strategy, symbol, side, quantity, price, fee, fee_currency, "
        "liquidity, ts FROM fills WHERE id > %s ORDER BY id",
        (after_id,),
    ).fetchall()
    last = after_id
    for r in rows:
        fill = Fill(
            order_id=str(r[1]),
            fill_id=str(r[2]),
            symbol=r[5],
            side=OrderSide(r[6]),
            quantity=r[7],
            price=r[8],
            fee=r[9],
            fee_currency=r[10],
            liquidity=Liquidity(r[11]),
            ts=r[12],
        )
        if r[3] not in ledger.accounts:
            continue  # an account removed from the configuration keeps its fills in the table
        ledger.apply_fill(fill, r[3], r[4])
        last = int(r[0])
    return last


def _record_recent_orders(conn: Connection[TupleRow], ledger: Ledger, now: datetime) -> None:
    for account, symbol, created in conn.execute(
        "SELECT account, symbol, created_at FROM orders WHERE created_at > %s ORDER BY created_at",
        (now - _RATE_WINDOW,),
    ):
        if account in ledger.accounts:
            ledger.record_order(account, symbol, created)


def load_ledger(db: Database, settings: Settings) -> Ledger:
    """The current ledger (checkpoint + newer fills), without writing anything."""
    with db.connection() as conn:
        ledger, last = _load_checkpoint(conn, settings)
        _apply_new_fills(conn, ledger, last)
    return ledger


def market_snapshot(db: Database, settings: Settings, symbols: list[str] | None = None) -> MarketSnapshot:
    """Quotes of ``symbols`` (every quotable symbol by default: ``MarketData.quotable``) by the provider's quote
    rule, with the fx rates."""
    return MarketSnapshot.from_quotes(MarketData(db).quotes(symbols), settings.fx_rates)


def _held(ledger: Ledger) -> set[str]:
    state = ledger.to_state()
    return {symbol for account in state.accounts.values() for symbol in account.book.positions}


def portfolio_snapshot(
    db: Database, settings: Settings, market: MarketSnapshot | None = None, *, now: datetime | None = None
) -> tuple[PortfolioSnapshot, MarketSnapshot]:
    """Mark the ledger to market, checkpoint it (marks advance), and return both snapshots.

    The market holds a quote of every quotable symbol (the stored ones and their dollar equivalents) and of every
    held one (a held or ordered BTC/USDT is valued by the stored BTC/USD when only that is stored, and the quote
    says so). A held symbol with no price at all is
    reported unvalued, with the reason, in its account; nothing raises for it.
    """
    now = now or datetime.now(UTC)
    if market is None:  # read before the ledger lock: quotes need connections of their own
        provider = MarketData(db)
        wanted = set(provider.quotable()) | _held(load_ledger(db, settings))
        market = MarketSnapshot.from_quotes(provider.quotes(sorted(wanted)), settings.fx_rates)
    with db.connection() as conn:
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (0x1A75_00B0,))
        ledger, last = _load_checkpoint(conn, settings)
        last = _apply_new_fills(conn, ledger, last)
        snapshot = ledger.snapshot(market.last_prices, now, fx_rates=market.fx_rates)
        system_state.write(conn, _KEY, {"state": ledger.to_dict(), "last_fill_id": last})
        _record_recent_orders(conn, ledger, now)
        snapshot = ledger.snapshot(market.last_prices, now, fx_rates=market.fx_rates)
    return snapshot, market


def positions_value(snapshot: PortfolioSnapshot, account: str) -> dict[str, Decimal]:
    """Signed quantity per symbol of an account (for tools and the inbox)."""
    acc = snapshot.accounts.get(account)
    return {} if acc is None else {s: p.quantity for s, p in acc.positions.items()}
