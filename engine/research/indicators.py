"""Technical indicators and simple factors over bar arrays, vectorised (numpy; the recursive averages through
pandas' C ``ewm``), defined as the strategies define them:

- ``sma`` (window), ``ema`` (span; ``alpha = 2 / (span + 1)`` seeded with the first close, as ``ema_cross``)
- ``rsi`` (window; Wilder's smoothing seeded with the simple mean of the first ``window`` changes, as
  ``rsi_reversion``: 100 with no losses, 50 when nothing moved)
- ``bollinger`` (window, k; mean +- k population standard deviations: ``middle``, ``upper``, ``lower``,
  ``width`` = (upper - lower) / middle)
- ``macd`` (fast, slow, signal spans: ``macd``, ``signal``, ``histogram``)
- ``donchian`` (window; highest high and lowest low of the previous ``window`` bars, excluding the current one
  as ``donchian_breakout``: ``upper``, ``lower``, ``middle``)
- ``atr`` (window; Wilder's average of the true range, seeded with the simple mean of the first ``window``)
- ``returns`` (window; close over the close ``window`` bars earlier, minus one)
- ``volatility`` (window; sample standard deviation of one-bar log returns over ``window`` bars, annualised
  with the bars per year of the timeframe)

Values before an indicator has enough bars are NaN.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view
from pydantic import BaseModel, ConfigDict, Field, model_validator

from engine.backtest.bars import Bars, bars_per_year
from engine.errors import ValidationFailedError

F64 = npt.NDArray[np.float64]
IndicatorName = Literal["sma", "ema", "rsi", "bollinger", "macd", "donchian", "atr", "returns", "volatility"]
INDICATORS: tuple[str, ...] = ("sma", "ema", "rsi", "bollinger", "macd", "donchian", "atr", "returns", "volatility")
MAX_WINDOW = 5000

# name -> parameter -> (default, lowest, highest)
_PARAMS: dict[str, dict[str, tuple[float, float, float]]] = {
    "sma": {"window": (20, 1, MAX_WINDOW)},
    "ema": {"window": (20, 1, MAX_WINDOW)},
    "rsi": {"window": (14, 2, MAX_WINDOW)},
    "bollinger": {"window": (20, 2, MAX_WINDOW), "k": (2.0, 0.1, 10.0)},
    "macd": {"fast": (12, 1, MAX_WINDOW), "slow": (26, 2, MAX_WINDOW), "signal": (9, 1, MAX_WINDOW)},
    "donchian": {"window": (20, 1, MAX_WINDOW)},
    "atr": {"window": (14, 1, MAX_WINDOW)},
    "returns": {"window": (1, 1, MAX_WINDOW)},
    "volatility": {"window": (20, 2, MAX_WINDOW)},
}
_INT_PARAMS = {"window", "fast", "slow", "signal"}


class IndicatorRequest(BaseModel):
    """One indicator and its parameters (defaults as in :data:`_PARAMS`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: IndicatorName
    window: int | None = Field(
        None, description="bars (sma, ema span, rsi, bollinger, donchian, atr, returns, volatility)"
    )
    k: float | None = Field(None, description="bollinger: band half-width in standard deviations")
    fast: int | None = Field(None, description="macd: fast EMA span")
    slow: int | None = Field(None, description="macd: slow EMA span")
    signal: int | None = Field(None, description="macd: signal EMA span")

    @model_validator(mode="after")
    def _check(self) -> IndicatorRequest:
        allowed = _PARAMS[self.name]
        for param in ("window", "k", "fast", "slow", "signal"):
            value = getattr(self, param)
            if value is None:
                continue
            if param not in allowed:
                raise ValueError(f"{self.name}: takes no parameter '{param}' (takes: {', '.join(allowed)})")
            _, low, high = allowed[param]
            if not low <= value <= high:
                raise ValueError(f"{self.name}: parameter '{param}' must be between {low:g} and {high:g} (got {value})")
        if self.name == "macd" and self.param("slow") <= self.param("fast"):
            raise ValueError(f"macd: parameter 'slow' must be greater than fast (got slow={self.param('slow')})")
        return self

    def param(self, name: str) -> float:
        value = getattr(self, name)
        if value is None:
            value = _PARAMS[self.name][name][0]
        return int(value) if name in _INT_PARAMS else float(value)

    @property
    def label(self) -> str:
        args = ",".join(f"{p:g}" for p in (self.param(n) for n in _PARAMS[self.name]))
        return f"{self.name}({args})"


def sma(x: F64, window: int) -> F64:
    out = np.full(len(x), np.nan)
    if window <= len(x):
        c = np.cumsum(np.r_[0.0, x])
        out[window - 1 :] = (c[window:] - c[:-window]) / window
    return out


def ema(x: F64, span: int) -> F64:
    """``alpha = 2 / (span + 1)``, seeded with the first value (pandas ``adjust=False``)."""
    return np.asarray(pd.Series(x).ewm(span=span, adjust=False).mean().to_numpy(), dtype=np.float64)


def wilder(x: F64, window: int, start: int) -> F64:
    """Wilder's average (``alpha = 1 / window``) of ``x[start:]``, seeded with the mean of its first ``window``
    values (placed at ``start + window - 1``); NaN before."""
    out = np.full(len(x), np.nan)
    first = start + window - 1
    if first >= len(x):
        return out
    seeded = x[first:].copy()
    seeded[0] = x[start : first + 1].mean()
    out[first:] = pd.Series(seeded).ewm(alpha=1.0 / window, adjust=False).mean().to_numpy()
    return out


def rsi(close: F64, window: int) -> F64:
    change = np.r_[np.nan, np.diff(close)]
    gains = np.where(change > 0, change, 0.0)
    losses = np.where(change < 0, -change, 0.0)
    avg_gain = wilder(gains, window, 1)
    avg_loss = wilder(losses, window, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = 100.0 - 100.0 / (1.0 + avg_gain / avg_loss)
    value = np.where(avg_loss == 0.0, np.where(avg_gain == 0.0, 50.0, 100.0), value)
    return np.where(np.isnan(avg_gain), np.nan, value)


def rolling_std(x: F64, window: int, ddof: int = 0) -> F64:
    out = np.full(len(x), np.nan)
    if window <= len(x):
        out[window - 1 :] = sliding_window_view(x, window).std(axis=1, ddof=ddof)
    return out


def previous_extreme(x: F64, window: int, *, highest: bool) -> F64:
    """Highest (lowest) of the ``window`` values before each bar (excluding it)."""
    out = np.full(len(x), np.nan)
    if window < len(x):
        view = sliding_window_view(x[:-1], window)
        out[window:] = view.max(axis=1) if highest else view.min(axis=1)
    return out


def true_range(high: F64, low: F64, close: F64) -> F64:
    previous = np.r_[np.nan, close[:-1]]
    spans = np.vstack([high - low, np.abs(high - previous), np.abs(low - previous)])
    tr: F64 = np.nanmax(spans, axis=0)
    return tr


def compute(bars: Bars, request: IndicatorRequest, days_per_year: float = 365.0) -> dict[str, F64]:
    """The indicator's output series (one or several, named) over all ``bars``."""
    c, h, lo = bars.close, bars.high, bars.low
    name = request.name
    if name == "sma":
        return {"sma": sma(c, int(request.param("window")))}
    if name == "ema":
        return {"ema": ema(c, int(request.param("window")))}
    if name == "rsi":
        return {"rsi": rsi(c, int(request.param("window")))}
    if name == "bollinger":
        window, k = int(request.param("window")), request.param("k")
        middle = sma(c, window)
        sd = rolling_std(c, window)
        upper, lower = middle + k * sd, middle - k * sd
        with np.errstate(divide="ignore", invalid="ignore"):
            width = (upper - lower) / middle
        return {"middle": middle, "upper": upper, "lower": lower, "width": width}
    if name == "macd":
        fast, slow, signal = (int(request.param(p)) for p in ("fast", "slow", "signal"))
        line = ema(c, fast) - ema(c, slow)
        sig = ema(line, signal)
        return {"macd": line, "signal": sig, "histogram": line - sig}
    if name == "donchian":
        window = int(request.param("window"))
        upper = previous_extreme(h, window, highest=True)
        lower = previous_extreme(lo, window, highest=False)
        return {"upper": upper, "lower": lower, "middle": (upper + lower) / 2.0}
    if name == "atr":
        return {"atr": wilder(true_range(h, lo, c), int(request.param("window")), 1)}
    if name == "returns":
        window = int(request.param("window"))
        out = np.full(len(c), np.nan)
        if window < len(c):
            out[window:] = c[window:] / c[:-window] - 1.0
        return {"returns": out}
    if name == "volatility":
        window = int(request.param("window"))
        log_returns = np.r_[np.nan, np.diff(np.log(c))]
        out = np.full(len(c), np.nan)
        if window < len(c):
            out[window:] = sliding_window_view(log_returns[1:], window).std(axis=1, ddof=1)
        return {"volatility": out * math.sqrt(bars_per_year(bars.timeframe, days_per_year))}
    raise ValidationFailedError(f"unknown indicator '{name}' (known: {', '.join(INDICATORS)})")


def parse_request(spec: str | dict[str, Any] | IndicatorRequest) -> IndicatorRequest:
    """``"rsi"``, ``"sma:50"``, ``"bollinger:20,2"`` or a mapping -> a request (ValidationFailedError naming it)."""
    from pydantic import ValidationError

    if isinstance(spec, IndicatorRequest):
        return spec
    try:
        if isinstance(spec, str):
            name, _, args = spec.strip().lower().partition(":")
            if name not in _PARAMS:
                raise ValidationFailedError(f"unknown indicator '{name}' (known: {', '.join(INDICATORS)})")
            values = [a for a in args.split(",") if a.strip()]
            names = list(_PARAMS[name])
            if len(values) > len(names):
                raise ValidationFailedError(f"{name}: takes {len(names)} parameter(s) ({', '.join(names)})")
            return IndicatorRequest.model_validate({"name": name, **dict(zip(names, values, strict=False))})
        return IndicatorRequest.model_validate(spec)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        message = first["msg"].removeprefix("Value error, ")
        raise ValidationFailedError(f"indicator {where + ': ' if where else ''}{message}") from None
