"""RSI mean reversion: long when Wilder's RSI falls below ``lower``, short when it rises above ``upper``.

A long is closed when the RSI recovers to ``exit_level`` (a short when it falls back to it), or reversed when
the RSI crosses the opposite threshold. RSI: Wilder's smoothing (``alpha = 1 / window``) seeded with the simple
average of the first ``window`` gains and losses; RSI = 100 when there were no losses (50 when nothing moved).
"""

from __future__ import annotations

from pydantic import Field, ValidationInfo, field_validator

from engine.backtest._jit import njit
from engine.strategies.base import F64, I8, StrategyParams, greater_than

KERNEL_ID = 3


class RsiReversionParams(StrategyParams):
    """``lower < exit_level < upper``, all on the RSI's 0..100 scale."""

    window: int = Field(14, ge=2, le=200, description="RSI window (bars)")
    lower: float = Field(30.0, ge=1.0, le=50.0, description="oversold threshold: go long below it")
    upper: float = Field(70.0, ge=50.0, le=99.0, description="overbought threshold: go short above it")
    exit_level: float = Field(50.0, ge=1.0, le=99.0, description="close the position when the RSI reaches it")

    _upper_gt_lower = field_validator("upper")(greater_than("lower"))

    @field_validator("exit_level")
    @classmethod
    def _exit_between(cls, value: float, info: ValidationInfo) -> float:
        lower, upper = info.data.get("lower"), info.data.get("upper")
        if lower is not None and upper is not None and not lower < value < upper:
            raise ValueError(
                f"must lie strictly between lower and upper (got exit_level={value}, lower={lower}, upper={upper})"
            )
        return value


@njit()
def state_size(p: F64) -> int:
    return 3


@njit()
def targets_chunk(o: F64, h: F64, lo: F64, c: F64, v: F64, p: F64, st: F64, start: int, end: int, out: I8) -> None:
    window = int(p[0])
    lower = p[1]
    upper = p[2]
    exit_level = p[3]
    avg_gain = st[0]
    avg_loss = st[1]
    pos = int(st[2])
    for i in range(start, end):
        if i == 0:
            out[i - start] = 0
            continue
        change = c[i] - c[i - 1]
        gain = change if change > 0.0 else 0.0
        loss = -change if change < 0.0 else 0.0
        if i <= window:
            avg_gain += gain
            avg_loss += loss
            if i == window:
                avg_gain /= window
                avg_loss /= window
        else:
            avg_gain = (avg_gain * (window - 1) + gain) / window
            avg_loss = (avg_loss * (window - 1) + loss) / window
        if i >= window:
            if avg_loss == 0.0:
                rsi = 100.0 if avg_gain > 0.0 else 50.0
            else:
                rsi = 100.0 - 100.0 / (1.0 + avg_gain / avg_loss)
            if pos == 0:
                if rsi < lower:
                    pos = 1
                elif rsi > upper:
                    pos = -1
            elif pos == 1:
                if rsi > upper:
                    pos = -1
                elif rsi >= exit_level:
                    pos = 0
            elif rsi < lower:
                pos = 1
            elif rsi <= exit_level:
                pos = 0
        out[i - start] = pos
    st[0] = avg_gain
    st[1] = avg_loss
    st[2] = pos
