"""The event-driven backtest: bar by bar, with orders, latency, partial fills, maker/taker fees and funding.

Slower than the fused kernels and meant for realism: market, limit and stop orders; orders becoming active
``latency_bars`` after the decision; fills capped at a fraction of each bar's volume (the rest keeps working);
maker fees for resting limit fills and taker fees otherwise; a funding rate charged on the position's notional
every N bars (perpetual futures); and every order passing a pre-trade risk check before it is worked.

It shares the strategy interface with the vectorised path: a registered strategy's targets drive a
:class:`TargetStrategy`, which turns target changes into orders. With market orders, no latency, no volume cap
and no funding, it reproduces the vectorised path's fills, equity and metrics (the tests hold it to that).

Latency: a decision taken at a bar's close (its cancellations and its orders alike) reaches the venue
``latency_bars`` bars later than it otherwise would (the next open, or with ``fill_at="close"`` the same close).

A bar, in order: (1) with ``fill_at="next_open"``, decisions due now reach the venue and market orders active
at this bar fill at its open;
(2) protective stops of the position (as in the vectorised path: gap fills at the open, the stop side first);
(3) limit and stop orders active at this bar; (4) funding; (5) the strategy decides at the close and its
orders pass the risk check (at submission); with ``fill_at="close"`` decisions due now reach the venue and
market orders fill at the close; (6) out of money: liquidation at the close; (7) equity marked at the close.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt
import pandas as pd
from pydantic import Field

from engine.backtest import kernels
from engine.backtest.bars import Bars
from engine.backtest.config import DIRECTION_BOUNDS, BacktestConfig, Direction, MetricsConfig
from engine.backtest.events.orders import Order, OrderRequest, OrderStatus, OrderType
from engine.backtest.events.risk import AllowAll, MarketState, PortfolioState, PreTradeCheck
from engine.backtest.metrics import compute_metrics
from engine.backtest.result import BacktestResult
from engine.backtest.vectorized import ParamsLike, resolve_bars_per_year, resolve_strategy
from engine.errors import ValidationFailedError
from engine.strategies import StrategySpec
from engine.strategies.base import I8
from engine.telemetry import get_logger

log = get_logger(__name__)

# a remainder below this fraction of an order's size counts as filled (float dust)
_DUST = 1e-12


class EventBacktestConfig(BacktestConfig):
    """:class:`BacktestConfig` plus the venue details only the event-driven path models. ``fee`` is the taker
    fee (market and stop fills, and limit orders marketable on arrival)."""

    maker_fee: float | None = Field(None, ge=-0.01, lt=0.1, description="resting limit fills; None: = fee")
    latency_bars: int = Field(0, ge=0, description="bars between a decision and its order becoming active")
    participation: float | None = Field(None, gt=0, le=1, description="max fraction of a bar's volume filled")
    funding_interval_bars: int | None = Field(None, ge=1, description="charge funding every N bars (perps)")


@dataclass(frozen=True)
class BarContext:
    """What a strategy sees at a bar's close."""

    index: int
    ts: np.datetime64
    open: float
    high: float
    low: float
    close: float
    volume: float
    position: float
    cash: float
    equity: float
    working: tuple[Order, ...]


@dataclass(frozen=True)
class StrategyDecision:
    """Orders to submit at this close; ``cancel_working`` cancels the strategy's working orders first."""

    orders: Sequence[OrderRequest] = ()
    cancel_working: bool = False


@runtime_checkable
class EventStrategy(Protocol):
    """A strategy for the event-driven path: called at every bar's close, returns what to do (or None)."""

    def on_bar(self, ctx: BarContext) -> StrategyDecision | None: ...


class TargetStrategy:
    """Drives orders from a target array (a registered strategy's signals): acts when the target changes.

    On a change it cancels working orders, closes the side it last asked for (a reduce-only market order:
    cancelled at the venue if there is nothing to close, e.g. after a stop exit) and opens the new side all-in
    (a market order, or a limit/stop order ``entry_offset`` away from the close; an all-in entry waits until
    the account is flat). Working from its own last intent rather than the position keeps it right under
    latency, when earlier decisions have not reached the venue yet. Acting on changes only means that after a
    stop exit the strategy waits for a fresh signal, as in the vectorised path.
    """

    def __init__(
        self,
        targets: npt.ArrayLike,
        *,
        direction: Direction = "long_only",
        entry_type: OrderType = OrderType.MARKET,
        entry_offset: float = 0.0,
    ) -> None:
        low, high = DIRECTION_BOUNDS[direction]
        self._targets: I8 = np.clip(np.asarray(targets), low, high).astype(np.int8)
        self._entry_type = entry_type
        self._offset = entry_offset
        self._last = 0

    def on_bar(self, ctx: BarContext) -> StrategyDecision | None:
        target = int(self._targets[ctx.index])
        if target == self._last:
            return None
        previous, self._last = self._last, target
        orders: list[OrderRequest] = []
        if previous != 0:
            orders.append(OrderRequest(side=-previous, reduce_only=True, tag="exit"))
        if target != 0:
            price = None
            if self._entry_type == OrderType.LIMIT:
                price = ctx.close * (1.0 - target * self._offset)
            elif self._entry_type == OrderType.STOP:
                price = ctx.close * (1.0 + target * self._offset)
            orders.append(OrderRequest(side=target, order_type=self._entry_type, price=price, tag="entry"))
        return StrategyDecision(orders=orders, cancel_working=True)


@dataclass
class _Trade:
    """A position from flat to flat; prices are volume-weighted over its fills (exact for a single fill)."""

    side: int = 0
    entry_idx: int = 0
    entry_qty: float = 0.0
    entry_notional: float = 0.0
    entry_fees: float = 0.0
    entry_fills: int = 0
    first_entry_px: float = 0.0
    exit_qty: float = 0.0
    exit_notional: float = 0.0
    exit_fees: float = 0.0
    exit_fills: int = 0
    first_exit_px: float = 0.0
    extreme: float = 0.0

    @property
    def entry_px(self) -> float:
        return self.first_entry_px if self.entry_fills == 1 else self.entry_notional / self.entry_qty

    @property
    def exit_px(self) -> float:
        return self.first_exit_px if self.exit_fills == 1 else self.exit_notional / self.exit_qty


@dataclass
class _Rejection:
    index: int
    request: OrderRequest
    reasons: list[str]


@dataclass
class EventEngine:
    """One event-driven run over ``bars``. Use :func:`run_event_backtest` unless you need the engine itself."""

    bars: Bars
    strategy: EventStrategy
    config: EventBacktestConfig
    funding_rates: npt.NDArray[np.float64] | None = None
    risk_check: PreTradeCheck = field(default_factory=AllowAll)

    def __post_init__(self) -> None:
        n = len(self.bars)
        self.cash = float(self.config.initial_cash)
        self.units = 0.0
        self.equity = np.empty(n, dtype=np.float64)
        self.positions = np.zeros(n, dtype=np.int8)
        self.orders: list[Order] = []
        self.working: list[Order] = []
        # decisions on their way to the venue: (due bar, cancel working orders first, accepted orders)
        self.in_flight: list[tuple[int, bool, list[Order]]] = []
        self.rejections: list[_Rejection] = []
        self.trade_rows: list[list[float]] = []
        self.fill_rows: list[list[float]] = []
        self.trade = _Trade()
        self.funding_paid = 0.0
        self.bust_at: int | None = None
        self._taker = float(self.config.fee)
        self._maker = self._taker if self.config.maker_fee is None else float(self.config.maker_fee)
        self._slip = float(self.config.slippage)
        self._lot = float(self.config.lot_size or 0.0)
        self._capacity = math.inf
        nan = math.nan
        self._sl = nan if self.config.stop_loss is None else self.config.stop_loss
        self._tp = nan if self.config.take_profit is None else self.config.take_profit
        self._ts = nan if self.config.trailing_stop is None else self.config.trailing_stop
        self._has_stops = not (math.isnan(self._sl) and math.isnan(self._tp) and math.isnan(self._ts))

    # ------------------------------------------------------------------ running

    def run(self) -> None:
        b = self.bars
        fill_close = self.config.fill_at == "close"
        cap = self.config.participation
        interval = self.config.funding_interval_bars
        for j in range(len(b)):
            if self.bust_at is not None:
                self.equity[j] = 0.0
                continue
            self._capacity = math.inf if cap is None else cap * b.volume[j]
            if not fill_close:
                self._arrive(j)
                self._fill_market(j, b.open[j])
            if self._has_stops and self.units != 0.0:
                self._protective(j)
            self._fill_resting(j)
            if interval is not None and self.funding_rates is not None and (j + 1) % interval == 0:
                payment = self.units * b.close[j] * self.funding_rates[j]
                self.cash -= payment
                self.funding_paid += payment
            self._decide(j)
            if fill_close:
                self._arrive(j)
                self._fill_market(j, b.close[j])
            if self.cash + self.units * b.close[j] <= 0.0:
                if self.units != 0.0:
                    self._apply(
                        j, -self.units, self._slipped(b.close[j], -self.units), self._taker, kernels.R_LIQUIDATION
                    )
                if self.cash < 0.0 and self.trade_rows and self.trade_rows[-1][kernels.T_EXIT_IDX] == j:
                    # as the vectorised kernel: the closing trade loses what was there, equity floors at zero
                    row = self.trade_rows[-1]
                    row[kernels.T_PNL] -= self.cash
                    row[kernels.T_RETURN] = row[kernels.T_PNL] / (self.trade.entry_notional + self.trade.entry_fees)
                self.cash = 0.0
                self.bust_at = j
                for order in self.working + [o for _, _, batch in self.in_flight for o in batch]:
                    order.status = OrderStatus.CANCELLED
                self.working.clear()
                self.in_flight.clear()
            self.equity[j] = self.cash + self.units * b.close[j]
            self.positions[j] = int(np.sign(self.units))

    def _decide(self, j: int) -> None:
        b = self.bars
        ctx = BarContext(
            index=j,
            ts=b.ts[j],
            open=b.open[j],
            high=b.high[j],
            low=b.low[j],
            close=b.close[j],
            volume=b.volume[j],
            position=self.units,
            cash=self.cash,
            equity=self.cash + self.units * b.close[j],
            working=tuple(self.working),
        )
        decision = self.strategy.on_bar(ctx)
        if decision is None:
            return
        portfolio = PortfolioState(
            cash=self.cash, position=self.units, equity=ctx.equity, working_orders=len(self.working)
        )
        market = MarketState(
            index=j,
            ts=pd.Timestamp(b.ts[j]).to_pydatetime(),
            open=b.open[j],
            high=b.high[j],
            low=b.low[j],
            close=b.close[j],
            volume=b.volume[j],
        )
        due = j + self.config.latency_bars + (0 if self.config.fill_at == "close" else 1)
        accepted: list[Order] = []
        for request in decision.orders:
            verdict = self.risk_check.check(request, portfolio, market)
            order = Order(id=len(self.orders), request=request, submitted_at=j, active_from=due)
            self.orders.append(order)
            if verdict.allowed:
                accepted.append(order)
            else:
                order.status = OrderStatus.REJECTED
                self.rejections.append(_Rejection(j, request, list(verdict.reasons)))
                log.debug("event_backtest.order_rejected", bar=j, reasons=verdict.reasons)
        if accepted or decision.cancel_working:
            self.in_flight.append((due, decision.cancel_working, accepted))

    def _arrive(self, j: int) -> None:
        """Decisions due at bar ``j`` reach the venue, in the order they were taken."""
        while self.in_flight and self.in_flight[0][0] <= j:
            _, cancel, batch = self.in_flight.pop(0)
            if cancel:
                for order in self.working:
                    order.status = OrderStatus.CANCELLED
                self.working.clear()
            for order in batch:
                if order.request.order_type != OrderType.MARKET and self.config.fill_at == "close":
                    order.active_from = j + 1  # arrives at the close: can rest from the next bar on
                self.working.append(order)

    # ------------------------------------------------------------------ fills

    def _slipped(self, price: float, side: float) -> float:
        return price * (1.0 + self._slip) if side > 0 else price * (1.0 - self._slip)

    def _fill_market(self, j: int, price: float) -> None:
        for order in list(self.working):
            if order.request.order_type == OrderType.MARKET and order.active_from <= j:
                self._fill(order, j, self._slipped(price, order.request.side), self._taker)

    def _fill_resting(self, j: int) -> None:
        b = self.bars
        o, h, lo = b.open[j], b.high[j], b.low[j]
        for order in list(self.working):
            req = order.request
            if req.order_type == OrderType.MARKET or order.active_from > j or req.price is None:
                continue
            level = req.price
            if req.order_type == OrderType.LIMIT:
                if (req.side > 0 and o <= level) or (req.side < 0 and o >= level):
                    self._fill(order, j, o, self._taker)  # marketable on arrival: takes at the open
                elif (req.side > 0 and lo <= level) or (req.side < 0 and h >= level):
                    self._fill(order, j, level, self._maker)
            elif (req.side > 0 and o >= level) or (req.side < 0 and o <= level):
                self._fill(order, j, self._slipped(o, req.side), self._taker)  # stop gapped through
            elif (req.side > 0 and h >= level) or (req.side < 0 and lo <= level):
                self._fill(order, j, self._slipped(level, req.side), self._taker)

    def _protective(self, j: int) -> None:
        """Stop-loss, take-profit and trailing stop of the open position, as the vectorised kernel does."""
        b = self.bars
        side = int(np.sign(self.units))
        price, why = kernels.stop_hit(
            side, self.trade.entry_px, self.trade.extreme, b.open[j], b.high[j], b.low[j], self._sl, self._tp, self._ts
        )
        if why < 0:
            self.trade.extreme = max(self.trade.extreme, b.high[j]) if side > 0 else min(self.trade.extreme, b.low[j])
            return
        if why == kernels.R_TAKE_PROFIT:
            self._apply(j, -self.units, price, self._maker, why)  # a resting take-profit limit: maker, no slippage
        else:
            self._apply(j, -self.units, self._slipped(price, -side), self._taker, why)

    def _fill(self, order: Order, j: int, px: float, fee_rate: float) -> None:
        req = order.request
        if order.total_qty is None:
            if req.reduce_only:
                if self.units == 0.0 or np.sign(self.units) == req.side:
                    order.status = OrderStatus.CANCELLED  # nothing left to reduce
                    self.working.remove(order)
                    return
                order.total_qty = abs(self.units) if req.qty is None else min(req.qty, abs(self.units))
            elif req.qty is None:
                if self.units != 0.0:
                    return  # an all-in entry waits until the account is flat
                if self.cash <= 0.0:
                    order.status = OrderStatus.CANCELLED
                    self.working.remove(order)
                    return
                qty = self.cash / (px * (1.0 + fee_rate))
                if self._lot > 0.0:
                    qty = math.floor(qty / self._lot) * self._lot
                if qty <= 0.0:
                    order.status = OrderStatus.CANCELLED
                    self.working.remove(order)
                    return
                order.total_qty = qty
            else:
                order.total_qty = req.qty
        qty = order.total_qty - order.filled_qty
        if req.reduce_only:
            qty = min(qty, abs(self.units)) if np.sign(self.units) == -req.side else 0.0
        qty = min(qty, self._capacity)
        if qty > 0.0:
            self._capacity -= qty
            order.filled_qty += qty
            order.fills.append(len(self.fill_rows))
            self._apply(j, req.side * qty, px, fee_rate, kernels.R_SIGNAL)
        done = order.total_qty - order.filled_qty <= _DUST * order.total_qty
        if done or (req.reduce_only and self.units == 0.0):
            order.status = OrderStatus.FILLED
            self.working.remove(order)

    def _apply(self, j: int, dq: float, px: float, fee_rate: float, reason: int) -> None:
        """Book a fill of signed quantity ``dq`` at ``px``: cash, position, and the trade it belongs to."""
        if self.units != 0.0 and np.sign(dq) != np.sign(self.units) and abs(dq) > abs(self.units):
            # crosses zero: close the position, then open the rest on the other side
            rest = dq + self.units
            self._apply(j, -self.units, px, fee_rate, reason)
            self._apply(j, rest, px, fee_rate, reason)
            return
        notional = abs(dq) * px
        fee_paid = notional * fee_rate
        self.cash -= dq * px + fee_paid
        self.fill_rows.append([j, dq, px, fee_paid, reason])
        t = self.trade
        if self.units == 0.0 or np.sign(dq) == np.sign(self.units):
            if self.units == 0.0:
                self.trade = t = _Trade(side=int(np.sign(dq)), entry_idx=j, extreme=px)
            if t.entry_fills == 0:
                t.first_entry_px = px
            t.entry_fills += 1
            t.entry_qty += abs(dq)
            t.entry_notional += notional
            t.entry_fees += fee_paid
            self.units += dq
            return
        if t.exit_fills == 0:
            t.first_exit_px = px
        t.exit_fills += 1
        t.exit_qty += abs(dq)
        t.exit_notional += notional
        t.exit_fees += fee_paid
        self.units += dq
        if abs(self.units) <= _DUST * t.entry_qty:
            self.units = 0.0
            self._close_trade(j, reason)

    def _close_trade(self, j: int, reason: int, *, still_open: bool = False, mark: float = 0.0) -> None:
        t = self.trade
        entry_px = t.entry_px
        if still_open:
            exit_px = mark
            pnl = t.side * t.entry_qty * (mark - entry_px) - t.entry_fees
            fees = t.entry_fees
        else:
            exit_px = t.exit_px
            if t.entry_fills == 1 and t.exit_fills == 1:
                # one fill each way: the vectorised kernel's expression, to the bit
                pnl = t.side * t.entry_qty * (exit_px - entry_px) - t.entry_fees - t.exit_fees
            else:
                pnl = t.side * (t.exit_notional - t.entry_notional) - t.entry_fees - t.exit_fees
            fees = t.entry_fees + t.exit_fees
        cost = t.entry_notional + t.entry_fees
        self.trade_rows.append(
            [
                t.entry_idx,
                j,
                t.side,
                t.entry_qty,
                entry_px,
                exit_px,
                pnl,
                pnl / cost,
                fees,
                reason,
                1.0 if still_open else 0.0,
            ]
        )

    # ------------------------------------------------------------------ result

    def result(self, name: str, params: dict[str, Any], metrics_config: MetricsConfig) -> BacktestResult:
        b = self.bars
        if self.units != 0.0:
            self._close_trade(len(b) - 1, kernels.R_END_OF_DATA, still_open=True, mark=float(b.close[-1]))
        trade_rows = np.array(self.trade_rows, dtype=np.float64).reshape(-1, kernels.N_TRADE_COLS)
        fill_rows = np.array(self.fill_rows, dtype=np.float64).reshape(-1, kernels.N_FILL_COLS)
        closed = trade_rows[trade_rows[:, kernels.T_OPEN] == 0.0]
        bpy = resolve_bars_per_year(b, metrics_config)
        metrics = compute_metrics(
            self.equity,
            initial_cash=self.config.initial_cash,
            bars_per_year=bpy,
            benchmark_return=b.buy_and_hold_return,
            position=self.positions,
            trade_pnl=closed[:, kernels.T_PNL],
            trade_return=closed[:, kernels.T_RETURN],
            fill_notional=np.abs(fill_rows[:, kernels.F_QTY]) * fill_rows[:, kernels.F_PX],
            risk_free_rate=metrics_config.risk_free_rate,
        )
        return BacktestResult(
            strategy=name,
            params=params,
            config=self.config,
            metrics=metrics,
            ts=b.ts,
            equity=self.equity,
            positions=self.positions,
            trade_rows=trade_rows,
            fill_rows=fill_rows,
            symbol=b.symbol,
            timeframe=b.timeframe,
            extras={
                "orders": self.orders,
                "rejections": [(r.index, r.request, r.reasons) for r in self.rejections],
                "funding_paid": self.funding_paid,
                "liquidated_at": self.bust_at,
            },
        )


def run_event_backtest(
    strategy: str | StrategySpec | EventStrategy,
    bars: Bars,
    params: ParamsLike = None,
    config: EventBacktestConfig | None = None,
    *,
    metrics_config: MetricsConfig | None = None,
    funding_rates: npt.ArrayLike | float | None = None,
    risk_check: PreTradeCheck | None = None,
    entry_type: OrderType = OrderType.MARKET,
    entry_offset: float = 0.0,
) -> BacktestResult:
    """Run the event-driven backtest.

    ``strategy`` is a registered strategy (name or spec; its targets drive a :class:`TargetStrategy` with
    ``entry_type``/``entry_offset``) or any :class:`EventStrategy`. ``funding_rates`` is one rate per bar (or a
    constant) charged every ``config.funding_interval_bars`` bars on the position's notional at the close
    (longs pay positive rates). ``risk_check`` defaults to :class:`AllowAll`. The result's ``extras`` hold the
    orders, the rejections with their reasons, the funding paid and the liquidation bar (if any).
    """
    config = config or EventBacktestConfig()
    metrics_config = metrics_config or MetricsConfig()
    params_out: dict[str, Any] = {}
    if isinstance(strategy, str | StrategySpec):
        spec = resolve_strategy(strategy)
        model = spec.validate_params(params)
        params_out = model.model_dump()
        targets = spec.signals(bars.open, bars.high, bars.low, bars.close, bars.volume, model)
        driver: EventStrategy = TargetStrategy(
            targets, direction=config.direction, entry_type=entry_type, entry_offset=entry_offset
        )
        name = spec.name
    elif isinstance(strategy, EventStrategy):
        driver = strategy
        name = type(strategy).__name__
    else:
        raise ValidationFailedError(f"not a strategy: {strategy!r}")
    rates: npt.NDArray[np.float64] | None = None
    if funding_rates is not None:
        rates = np.broadcast_to(np.asarray(funding_rates, dtype=np.float64), (len(bars),)).copy()
        if config.funding_interval_bars is None:
            raise ValidationFailedError("funding_rates given but funding_interval_bars is not set")
    engine = EventEngine(bars, driver, config, rates, risk_check or AllowAll())
    engine.run()
    return engine.result(name, params_out, metrics_config)
