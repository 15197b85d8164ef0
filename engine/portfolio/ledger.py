"""The in-memory ledger: cash, positions, average cost, realised and unrealised PnL, fees, attribution.

Accounting model (position-based, the one a margin or spot venue reports in its quote currency):

- a fill moves quote-currency cash by ``-signed quantity x price - fee`` and the position by the signed quantity;
- each position keeps its *cost basis* (signed quantity x entry price of what is still open): adding to a position
  adds to it, reducing removes the closed share of it, and ``realised = proceeds - removed cost basis``; the average
  cost is ``cost basis / quantity``. A fill through zero closes the position and opens the rest at the fill price;
- ``unrealised = quantity x last price - cost basis``, so in one currency, exactly,
  ``equity = deposits + realised + unrealised - fees``.

Every account keeps its net book (what the venue sees, read by risk) and one book per strategy (attribution).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Final

from pydantic import ValidationError

from engine.errors import NotFoundError, ValidationFailedError
from engine.execution.models import Fill, quote_currency
from engine.portfolio.models import (
    AccountSnapshot,
    AccountState,
    AttributionRow,
    BookState,
    FillApplied,
    LedgerState,
    LotState,
    PortfolioSnapshot,
    PositionSnapshot,
    RecentOrder,
)
from engine.portfolio.valuation import conversion_rate
from engine.telemetry import get_logger

log = get_logger(__name__)

ZERO: Final = Decimal(0)
ONE: Final = Decimal(1)
COST_BASIS_STEP: Final = Decimal("1E-12")
"""The share of cost basis a partial close removes is rounded to this (far below any venue's precision), so every
amount in the ledger has a bounded number of decimals and sums of them stay exact in the default 28-digit context."""
UNATTRIBUTED: Final = "(none)"
"""The strategy name that fills without a strategy are attributed to."""
ORDER_RATE_WINDOW: Final = timedelta(minutes=1)
"""How long a submitted order is remembered for the per-minute rate limit."""
DEFAULT_VALUATION_CURRENCY: Final = "USDT"


def _require_aware(ts: datetime, what: str) -> datetime:
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise ValidationFailedError(f"{what} must be timezone-aware (UTC)")
    return ts


def _trim(value: Decimal) -> Decimal:
    """The same number without trailing zeros and without an exponent (``1.500`` -> ``1.5``, ``1E+2`` stays 100)."""
    normal = value.normalize()
    exponent = normal.as_tuple().exponent
    return normal.quantize(ONE) if isinstance(exponent, int) and exponent > 0 else normal


@dataclass
class _Lot:
    quantity: Decimal = ZERO
    cost_basis: Decimal = ZERO

    @property
    def avg_cost(self) -> Decimal:
        return ZERO if self.quantity == 0 else abs(self.cost_basis / self.quantity)


@dataclass
class _Book:
    positions: dict[str, _Lot] = field(default_factory=dict)
    realised: dict[str, Decimal] = field(default_factory=dict)
    fees: dict[str, Decimal] = field(default_factory=dict)

    def apply(self, symbol: str, signed_quantity: Decimal, price: Decimal, fee: Decimal) -> Decimal:
        """Apply one fill; return the PnL it realised (quote currency, gross of the fee)."""
        lot = self.positions.get(symbol) or _Lot()
        quantity, basis = lot.quantity, lot.cost_basis
        realised = ZERO
        rest = signed_quantity
        if quantity != 0 and (quantity > 0) != (signed_quantity > 0):
            # the part of the fill that closes (some of) the position
            closing = signed_quantity if abs(signed_quantity) <= abs(quantity) else -quantity
            if abs(closing) == abs(quantity):
                removed = basis
            else:
                removed = _trim((basis * abs(closing) / abs(quantity)).quantize(COST_BASIS_STEP))
            realised = -closing * price - removed
            basis -= removed
            quantity += closing
            rest = signed_quantity - closing
        if rest != 0:
            basis += rest * price
            quantity += rest
        if quantity == 0:
            self.positions.pop(symbol, None)
        else:
            self.positions[symbol] = _Lot(quantity, basis)
        self.realised[symbol] = self.realised.get(symbol, ZERO) + realised
        self.fees[symbol] = self.fees.get(symbol, ZERO) + fee
        return realised

    def to_state(self) -> BookState:
        return BookState(
            positions={
                s: LotState(quantity=lot.quantity, cost_basis=lot.cost_basis) for s, lot in self.positions.items()
            },
            realised=dict(self.realised),
            fees=dict(self.fees),
        )

    @classmethod
    def from_state(cls, state: BookState) -> _Book:
        return cls(
            positions={
                s: _Lot(lot.quantity, lot.cost_basis) for s, lot in state.positions.items() if lot.quantity != 0
            },
            realised=dict(state.realised),
            fees=dict(state.fees),
        )


@dataclass
class _Account:
    valuation_currency: str
    cash: dict[str, Decimal] = field(default_factory=dict)
    net_deposits: dict[str, Decimal] = field(default_factory=dict)
    unmarked_flows: dict[str, Decimal] = field(default_factory=dict)
    book: _Book = field(default_factory=_Book)
    strategies: dict[str, _Book] = field(default_factory=dict)
    day: date | None = None
    day_start_equity: Decimal | None = None
    peak_equity: Decimal | None = None
    recent_orders: deque[RecentOrder] = field(default_factory=deque)

    def add_flow(self, currency: str, amount: Decimal) -> None:
        self.cash[currency] = self.cash.get(currency, ZERO) + amount
        self.net_deposits[currency] = self.net_deposits.get(currency, ZERO) + amount
        self.unmarked_flows[currency] = self.unmarked_flows.get(currency, ZERO) + amount


class Ledger:
    """Cash, positions and PnL of every account, updated by fills. Not thread-safe: one owner applies fills."""

    def __init__(self) -> None:
        self._accounts: dict[str, _Account] = {}

    # ---- accounts and cash ------------------------------------------------------------------------------------

    @property
    def accounts(self) -> tuple[str, ...]:
        return tuple(self._accounts)

    def open_account(
        self,
        account: str,
        *,
        valuation_currency: str = DEFAULT_VALUATION_CURRENCY,
        cash: Mapping[str, Decimal] | None = None,
    ) -> None:
        """Start an account valued in ``valuation_currency``, optionally with initial cash (as deposits)."""
        if not account or account != account.strip():
            raise ValidationFailedError(f"invalid account name {account!r}")
        if account in self._accounts:
            raise ValidationFailedError(f"account {account} is already open in the ledger")
        self._accounts[account] = _Account(valuation_currency=valuation_currency)
        for currency, amount in (cash or {}).items():
            self.deposit(account, amount, currency)

    def deposit(self, account: str, amount: Decimal, currency: str | None = None) -> None:
        """Add cash (not PnL: day-start and peak equity move with it)."""
        if amount <= 0:
            raise ValidationFailedError(f"a deposit must be positive, got {amount}")
        state = self._account(account)
        state.add_flow(currency or state.valuation_currency, amount)

    def withdraw(self, account: str, amount: Decimal, currency: str | None = None) -> None:
        """Remove cash (not a loss: day-start and peak equity move with it)."""
        if amount <= 0:
            raise ValidationFailedError(f"a withdrawal must be positive, got {amount}")
        state = self._account(account)
        state.add_flow(currency or state.valuation_currency, -amount)

    def cash(self, account: str) -> dict[str, Decimal]:
        return dict(self._account(account).cash)

    def net_deposits(self, account: str) -> dict[str, Decimal]:
        return dict(self._account(account).net_deposits)

    # ---- fills and orders -------------------------------------------------------------------------------------

    def apply_fill(self, fill: Fill, account: str, strategy: str | None = None) -> FillApplied:
        """Book one fill on ``account`` (and on ``strategy``'s attribution book)."""
        state = self._account(account)
        quote = quote_currency(fill.symbol)
        if ":" in fill.symbol and fill.symbol.rsplit(":", 1)[1].split("-", 1)[0] != quote:
            raise ValidationFailedError(f"{fill.symbol}: inverse contracts (settled in the base) are not supported")
        if fill.fee != 0 and fill.fee_currency != quote:
            raise ValidationFailedError(
                f"fill {fill.order_id} on {fill.symbol} charges its fee in {fill.fee_currency}; the ledger books fees "
                f"in the quote currency ({quote}): convert the fee before applying the fill"
            )
        strategy_name = strategy or UNATTRIBUTED
        before = state.book.positions.get(fill.symbol, _Lot()).quantity
        signed = fill.signed_quantity
        realised = state.book.apply(fill.symbol, signed, fill.price, fill.fee)
        book = state.strategies.setdefault(strategy_name, _Book())
        book.apply(fill.symbol, signed, fill.price, fill.fee)
        cash_change = -signed * fill.price - fill.fee
        state.cash[quote] = state.cash.get(quote, ZERO) + cash_change
        after = state.book.positions.get(fill.symbol, _Lot())
        log.debug(
            "fill_applied",
            account=account,
            strategy=strategy_name,
            symbol=fill.symbol,
            order_id=fill.order_id,
            quantity=str(signed),
            price=str(fill.price),
            realised=str(realised),
        )
        return FillApplied(
            account=account,
            strategy=strategy_name,
            symbol=fill.symbol,
            side=fill.side,
            quantity_before=before,
            quantity_after=after.quantity,
            avg_cost_after=after.avg_cost,
            realised_pnl=realised,
            fee=fill.fee,
            cash_change=cash_change,
        )

    def record_order(self, account: str, symbol: str, ts: datetime) -> None:
        """Remember that an order was submitted (the per-minute rate limit counts these)."""
        _require_aware(ts, "order time")
        self._account(account).recent_orders.append(RecentOrder(symbol=symbol, ts=ts))

    def position(self, account: str, symbol: str, strategy: str | None = None) -> tuple[Decimal, Decimal]:
        """(signed quantity, average cost) of the account's net position, or of one strategy's share of it."""
        state = self._account(account)
        book = state.book if strategy is None else state.strategies.get(strategy, _Book())
        lot = book.positions.get(symbol, _Lot())
        return lot.quantity, lot.avg_cost

    # ---- valuation --------------------------------------------------------------------------------------------

    def snapshot(
        self,
        prices: Mapping[str, Decimal],
        now: datetime,
        *,
        fx_rates: Mapping[str, Decimal] | None = None,
    ) -> PortfolioSnapshot:
        """Mark every account to ``prices`` (last price by symbol) at ``now``.

        Marking also advances the account's marks: the first snapshot of a UTC day sets that day's start equity,
        and the peak equity rises to any new high (deposits and withdrawals shift both, so they are not PnL).
        Never raises for missing prices: a held symbol without a price, or a currency without a conversion rate
        (``fx_rates`` takes explicit ones such as ``{"USD/USDT": Decimal(1)}``), is listed in the account's
        ``unvalued`` with the reason, the position is reported without a market value, the totals cover what
        could be valued, and the marks do not move (a partial equity is not a loss or a new peak).
        """
        _require_aware(now, "snapshot time")
        accounts = {name: self._mark(name, state, prices, fx_rates, now) for name, state in self._accounts.items()}
        return PortfolioSnapshot(ts=now, accounts=accounts)

    def attribution(self, prices: Mapping[str, Decimal], *, account: str | None = None) -> tuple[AttributionRow, ...]:
        """Realised, unrealised PnL and fees per (account, strategy, symbol), in each symbol's quote currency."""
        rows: list[AttributionRow] = []
        names = [account] if account is not None else list(self._accounts)
        for name in names:
            state = self._account(name)
            for strategy, book in sorted(state.strategies.items()):
                for symbol in sorted(set(book.realised) | set(book.positions)):
                    lot = book.positions.get(symbol, _Lot())
                    unrealised = ZERO
                    if lot.quantity != 0:
                        last = prices.get(symbol)
                        if last is None:
                            raise ValidationFailedError(f"no price for {symbol}: cannot attribute its open PnL")
                        unrealised = lot.quantity * last - lot.cost_basis
                    rows.append(
                        AttributionRow(
                            account=name,
                            strategy=strategy,
                            symbol=symbol,
                            currency=quote_currency(symbol),
                            quantity=lot.quantity,
                            realised_pnl=book.realised.get(symbol, ZERO),
                            unrealised_pnl=unrealised,
                            fees=book.fees.get(symbol, ZERO),
                        )
                    )
        return tuple(rows)

    # ---- persistence ------------------------------------------------------------------------------------------

    def to_state(self) -> LedgerState:
        return LedgerState(
            accounts={
                name: AccountState(
                    valuation_currency=s.valuation_currency,
                    cash=dict(s.cash),
                    net_deposits=dict(s.net_deposits),
                    unmarked_flows=dict(s.unmarked_flows),
                    book=s.book.to_state(),
                    strategies={k: b.to_state() for k, b in s.strategies.items()},
                    day=s.day,
                    day_start_equity=s.day_start_equity,
                    peak_equity=s.peak_equity,
                    recent_orders=list(s.recent_orders),
                )
                for name, s in self._accounts.items()
            }
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data; every amount is a decimal string (exact, for NUMERIC columns)."""
        return self.to_state().model_dump(mode="json")

    @classmethod
    def from_state(cls, state: LedgerState) -> Ledger:
        ledger = cls()
        for name, s in state.accounts.items():
            ledger._accounts[name] = _Account(
                valuation_currency=s.valuation_currency,
                cash=dict(s.cash),
                net_deposits=dict(s.net_deposits),
                unmarked_flows=dict(s.unmarked_flows),
                book=_Book.from_state(s.book),
                strategies={k: _Book.from_state(b) for k, b in s.strategies.items()},
                day=s.day,
                day_start_equity=s.day_start_equity,
                peak_equity=s.peak_equity,
                recent_orders=deque(s.recent_orders),
            )
        return ledger

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Ledger:
        """Rebuild a ledger from :meth:`to_dict` output (validated; raises ValidationFailedError if malformed)."""
        try:
            state = LedgerState.model_validate(data)
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "(top)"
            raise ValidationFailedError(f"malformed ledger data at {where}: {first['msg']}") from None
        return cls.from_state(state)

    # ---- internals --------------------------------------------------------------------------------------------

    def _account(self, account: str) -> _Account:
        try:
            return self._accounts[account]
        except KeyError:
            raise NotFoundError(f"account {account} is not open in the ledger") from None

    def _mark(
        self,
        name: str,
        state: _Account,
        prices: Mapping[str, Decimal],
        fx_rates: Mapping[str, Decimal] | None,
        now: datetime,
    ) -> AccountSnapshot:
        valuation = state.valuation_currency
        unvalued: dict[str, str] = {}

        def rate(currency: str, what: str, key: str) -> Decimal | None:
            found = conversion_rate(currency, valuation, prices, fx_rates)
            if found is None:
                unvalued.setdefault(
                    key,
                    f"no rate from {currency} to {valuation} to value {what} of account {name}: pass a price of "
                    f"{currency}/{valuation} or an fx rate",
                )
            return found

        def total(amounts: Iterable[tuple[str, Decimal]], what: str) -> Decimal:
            summed = ZERO
            for ccy, amount in amounts:
                if amount != 0:
                    fx = rate(ccy, what, f"{what} in {ccy}")
                    summed += ZERO if fx is None else amount * fx
            return summed

        positions: dict[str, PositionSnapshot] = {}
        gross = net = unrealised_total = ZERO
        for symbol, lot in state.book.positions.items():
            quote = quote_currency(symbol)
            last = prices.get(symbol)
            fx = rate(quote, f"the {symbol} position", symbol) if last is not None else None
            if last is None:
                unvalued[symbol] = f"no price for {symbol}, held by account {name}: cannot value it"
            if last is None or fx is None:
                positions[symbol] = PositionSnapshot(
                    symbol=symbol,
                    quote_currency=quote,
                    quantity=lot.quantity,
                    avg_cost=lot.avg_cost,
                    cost_basis=lot.cost_basis,
                    last_price=last,
                    notional=None if last is None else abs(lot.quantity * last),
                    unrealised_pnl=None if last is None else lot.quantity * last - lot.cost_basis,
                    unvalued_reason=unvalued[symbol],
                )
                continue
            value = lot.quantity * last
            unrealised = value - lot.cost_basis
            positions[symbol] = PositionSnapshot(
                symbol=symbol,
                quote_currency=quote,
                quantity=lot.quantity,
                avg_cost=lot.avg_cost,
                cost_basis=lot.cost_basis,
                last_price=last,
                notional=abs(value),
                market_value=value * fx,
                unrealised_pnl=unrealised,
            )
            gross += abs(value * fx)
            net += value * fx
            unrealised_total += unrealised * fx
        equity = total(state.cash.items(), "the cash") + net
        flows = total(state.unmarked_flows.items(), "the deposits")
        realised = total(((quote_currency(s), v) for s, v in state.book.realised.items()), "the realised PnL")
        fees = total(((quote_currency(s), v) for s, v in state.book.fees.items()), "the fees")
        if unvalued:
            # a partial valuation must not move the marks: report them as they stand (or this equity, unstored)
            day_start = equity if state.day_start_equity is None else state.day_start_equity + flows
            peak = equity if state.peak_equity is None else state.peak_equity + flows
        else:
            today = now.astimezone(UTC).date()
            if state.day is None or state.day_start_equity is None or today > state.day:
                state.day, state.day_start_equity = today, equity
            else:
                state.day_start_equity += flows
            state.peak_equity = equity if state.peak_equity is None else max(state.peak_equity + flows, equity)
            state.unmarked_flows.clear()
            day_start, peak = state.day_start_equity, state.peak_equity
        cutoff = now - ORDER_RATE_WINDOW
        while state.recent_orders and state.recent_orders[0].ts <= cutoff:
            state.recent_orders.popleft()
        return AccountSnapshot(
            account=name,
            valuation_currency=valuation,
            cash=dict(state.cash),
            positions=positions,
            equity=equity,
            day_start_equity=day_start,
            peak_equity=peak,
            realised_pnl=realised,
            unrealised_pnl=unrealised_total,
            fees=fees,
            gross_exposure=gross,
            net_exposure=net,
            recent_orders=tuple(o for o in state.recent_orders if o.ts > cutoff),
            unvalued=unvalued,
        )
