"""Typed configuration of a backtest run: the simulated market (costs, fills, direction, stops) and metrics."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

FillAt = Literal["next_open", "close"]
Direction = Literal["long_only", "long_short", "short_only"]

DIRECTION_BOUNDS: dict[str, tuple[int, int]] = {
    "long_only": (0, 1),
    "long_short": (-1, 1),
    "short_only": (-1, 0),
}
"""Direction -> (lowest, highest) target the backtest trades: strategy targets are clipped into it."""

STOP_FIELDS = ("stop_loss", "take_profit", "trailing_stop")


class BacktestConfig(BaseModel):
    """How a run trades. Sizing is all-in: each entry commits the whole equity (no leverage).

    Fills: ``next_open`` (default) executes the target decided at bar ``i``'s close at bar ``i+1``'s open;
    ``close`` executes it at bar ``i``'s close. Fees are a fraction of traded notional per fill; slippage moves
    each market fill (signals, stops, liquidation) against the trade by a fraction; a take-profit is a limit
    order and fills at its level (or at a better open it gapped to) without slippage, in both backtest paths.
    Stops are fractions of the entry fill price, checked intrabar against high/low (a gap through the level fills
    at the open); when a stop and a take-profit are both touched in one bar the stop is assumed first. After a
    stop exit the strategy re-enters only on a fresh signal (its target must change first).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    initial_cash: float = Field(10_000.0, gt=0, description="starting equity (quote currency)")
    fee: float = Field(0.001, ge=0, lt=0.1, description="fee per fill, fraction of traded notional (taker)")
    slippage: float = Field(0.0, ge=0, lt=0.1, description="adverse price move per fill, fraction of price")
    fill_at: FillAt = Field("next_open", description="next_open: next bar's open; close: same bar's close")
    direction: Direction = Field("long_only", description="which legs of the strategy's targets are traded")
    stop_loss: float | None = Field(None, gt=0, lt=1, description="exit when price moves this fraction against")
    take_profit: float | None = Field(None, gt=0, description="exit when price moves this fraction in favour")
    trailing_stop: float | None = Field(None, gt=0, lt=1, description="exit this fraction off the best price")
    lot_size: float | None = Field(None, gt=0, description="quantity step; entries round down to it (None: any)")


class MetricsConfig(BaseModel):
    """How metrics annualise: crypto trades every day, so a year is 365 days of bars by default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    risk_free_rate: float = Field(0.0, ge=-1, lt=1, description="annual; Sharpe's excess and Sortino's target")
    days_per_year: float = Field(365.0, gt=0, description="trading days per year for the bar frequency")
    bars_per_year: float | None = Field(None, gt=0, description="override; default: from the bars' timeframe")


class KernelOptions(BaseModel):
    """Tuning of the numba kernels; never changes results (tests hold every chunk size to the same numbers)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    chunk_bars: int = Field(4096, ge=1, description="bars per fused chunk (targets, fills, metrics)")
    parallel: bool = Field(True, description="grid mode: spread combinations over numba's threads")
