"""Data-quality checks on a bar frame, and the report per (exchange, symbol, timeframe).

The checks take a frame with the bar columns (see ``engine.data.frame``) but, unlike
``validate_bar_frame``, do not require it to be in order: disorder and duplicates are findings.

* gaps: missing bars between the first and last ts, given the timeframe (on the distinct, sorted ts);
  each gap is reported as (first missing bar, last missing bar, how many);
* duplicates: rows sharing a ts (identical rows and conflicting ones are told apart);
* out of order: rows whose ts is below the previous row's;
* misaligned: ts that are not the open time of a bucket of the timeframe;
* bad rows: NaN or infinite values, high < low, open or close outside [low, high], a price <= 0,
  volume < 0;
* spikes: close-to-close log returns whose distance from the rolling median exceeds ``spike_k`` robust
  standard deviations (1.4826 x the rolling median absolute deviation over a centred window of
  ``spike_window`` returns), and whose size is at least ``spike_min_abs_log_return`` (so that a run of flat
  bars, whose MAD is zero, does not turn every tick into a spike). A spike is a suspect, not proof of a
  bad print: real crashes qualify too. One bad print gives two spikes (there and back).

Zero-volume bars are counted for information only; they do not make a report fail.

Everything runs as numpy/pandas column operations; Python loops only touch the few examples kept.
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, computed_field

from engine.data.frame import PRICE_COLUMNS, VALUE_COLUMNS, check_bar_columns
from engine.data.timeframes import Timeframe, floor_ts_array, timeframe_ms, validate_timeframe
from engine.errors import ValidationFailedError

DEFAULT_SPIKE_WINDOW: Final = 51
"""Returns in the centred rolling window (odd, so the window is symmetric)."""
DEFAULT_SPIKE_K: Final = 10.0
"""Robust standard deviations from the rolling median that make a spike."""
DEFAULT_SPIKE_MIN_ABS_LOG_RETURN: Final = 0.05
"""Log returns smaller than this (about 5 %) are never spikes."""
DEFAULT_MAX_EXAMPLES: Final = 5
MAD_TO_SIGMA: Final = 1.4826
"""Scale that turns a median absolute deviation into a standard deviation for normal data."""

BAD_ROW_RULES: Final[tuple[str, ...]] = (
    "nan",
    "high_below_low",
    "open_outside_range",
    "close_outside_range",
    "nonpositive_price",
    "negative_volume",
)


class QualityConfig(BaseModel):
    """Knobs of the checks."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    spike_window: int = Field(DEFAULT_SPIKE_WINDOW, ge=3)
    spike_k: float = Field(DEFAULT_SPIKE_K, gt=0)
    spike_min_abs_log_return: float = Field(DEFAULT_SPIKE_MIN_ABS_LOG_RETURN, ge=0)
    max_examples: int = Field(DEFAULT_MAX_EXAMPLES, ge=0)


class Gap(BaseModel):
    """A run of missing bars: ``from_ts`` and ``to_ts`` are the first and last missing bar (inclusive)."""

    model_config = ConfigDict(frozen=True)

    from_ts: int
    to_ts: int
    missing: int


class DuplicateExample(BaseModel):
    model_config = ConfigDict(frozen=True)

    ts: int
    rows: int
    identical: bool
    """All rows with this ts carry the same values."""


class OutOfOrderExample(BaseModel):
    model_config = ConfigDict(frozen=True)

    row: int
    ts: int
    previous_ts: int


class BadRowExample(BaseModel):
    model_config = ConfigDict(frozen=True)

    row: int
    ts: int
    problems: list[str]
    open: float | None
    high: float | None
    low: float | None
    close: float | None
    volume: float | None


class SpikeExample(BaseModel):
    model_config = ConfigDict(frozen=True)

    ts: int
    """The bar whose close made the move."""
    log_return: float
    threshold: float
    """The size of move from the rolling median that counted as a spike here."""


class QualityReport(BaseModel):
    """Findings for one (exchange, symbol, timeframe) series; ``ok`` when nothing but information was found."""

    model_config = ConfigDict(frozen=True)

    exchange: str
    symbol: str
    timeframe: Timeframe
    rows: int
    first_ts: int | None
    last_ts: int | None
    expected_rows: int
    """Bars from first_ts to last_ts at this timeframe (what a complete series would hold)."""

    missing_bars: int
    gaps: list[Gap]
    """Every gap, oldest first (needed in full for repair)."""

    duplicate_rows: int
    """Rows beyond the first for each ts."""
    duplicate_ts: int
    conflicting_duplicate_ts: int
    """Timestamps whose rows disagree in value."""
    duplicate_examples: list[DuplicateExample]

    out_of_order_rows: int
    out_of_order_examples: list[OutOfOrderExample]

    misaligned_rows: int
    misaligned_examples: list[int]

    bad_rows: int
    bad_row_counts: dict[str, int]
    """Rows breaking each rule (a row can break several)."""
    bad_row_examples: list[BadRowExample]

    spikes: int
    spike_examples: list[SpikeExample]

    zero_volume_rows: int
    """Information only."""

    config: QualityConfig

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ok(self) -> bool:
        return not (
            self.missing_bars
            or self.duplicate_rows
            or self.out_of_order_rows
            or self.misaligned_rows
            or self.bad_rows
            or self.spikes
        )

    def problems(self) -> list[str]:
        """One short line per kind of finding (empty when ``ok``)."""
        lines: list[str] = []
        if self.missing_bars:
            lines.append(f"{self.missing_bars} missing bars in {len(self.gaps)} gaps")
        if self.duplicate_rows:
            lines.append(
                f"{self.duplicate_rows} duplicate rows over {self.duplicate_ts} timestamps "
                f"({self.conflicting_duplicate_ts} conflicting)"
            )
        if self.out_of_order_rows:
            lines.append(f"{self.out_of_order_rows} rows out of order")
        if self.misaligned_rows:
            lines.append(f"{self.misaligned_rows} timestamps not aligned to {self.timeframe}")
        if self.bad_rows:
            detail = ", ".join(f"{k} {v}" for k, v in self.bad_row_counts.items() if v)
            lines.append(f"{self.bad_rows} bad rows ({detail})")
        if self.spikes:
            lines.append(f"{self.spikes} spikes")
        return lines


# --- the individual checks (numpy in, numpy out) -------------------------------------------------


def find_gaps(ts: npt.ArrayLike, timeframe: str) -> list[Gap]:
    """Gaps in a set of timestamps (any order, duplicates allowed) at ``timeframe``."""
    step = timeframe_ms(timeframe)
    u = np.unique(np.asarray(ts, dtype=np.int64))
    if u.size < 2:
        return []
    d = np.diff(u)
    at = np.flatnonzero(d > step)
    missing = d[at] // step - (d[at] % step == 0)
    keep = missing > 0
    at, missing = at[keep], missing[keep]
    starts = u[at] + step
    return [
        Gap(from_ts=int(s), to_ts=int(s + (m - 1) * step), missing=int(m))
        for s, m in zip(starts.tolist(), missing.tolist(), strict=True)
    ]


def out_of_order_mask(ts: npt.ArrayLike) -> npt.NDArray[np.bool_]:
    """True at each row whose ts is strictly below the previous row's."""
    t = np.asarray(ts, dtype=np.int64)
    mask = np.zeros(t.size, dtype=bool)
    if t.size > 1:
        mask[1:] = t[1:] < t[:-1]
    return mask


def misaligned_mask(ts: npt.ArrayLike, timeframe: str) -> npt.NDArray[np.bool_]:
    """True at each ts that is not a bucket open time of ``timeframe``."""
    t = np.asarray(ts, dtype=np.int64)
    result: npt.NDArray[np.bool_] = floor_ts_array(t, timeframe) != t
    return result


def bad_row_masks(frame: pd.DataFrame) -> dict[str, npt.NDArray[np.bool_]]:
    """One boolean mask per rule in :data:`BAD_ROW_RULES` (OHLC rules only judge finite rows)."""
    v = {c: frame[c].to_numpy(dtype=np.float64) for c in VALUE_COLUMNS}
    finite = np.logical_and.reduce([np.isfinite(v[c]) for c in VALUE_COLUMNS])
    o, h, lo, c, vol = v["open"], v["high"], v["low"], v["close"], v["volume"]
    with np.errstate(invalid="ignore"):
        masks = {
            "nan": ~finite,
            "high_below_low": finite & (h < lo),
            "open_outside_range": finite & ((o < lo) | (o > h)),
            "close_outside_range": finite & ((c < lo) | (c > h)),
            "nonpositive_price": finite & np.logical_or.reduce([v[p] <= 0 for p in PRICE_COLUMNS]),
            "negative_volume": finite & (vol < 0),
        }
    return masks


def spike_scores(
    close: npt.ArrayLike, config: QualityConfig | None = None
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """For closes in time order: (log returns, thresholds, spike mask), each of length ``len(close) - 1``.

    Entry i describes the move from close i to close i + 1. Non-finite or non-positive closes give NaN
    returns, which are never spikes.
    """
    cfg = config or QualityConfig()
    c = np.asarray(close, dtype=np.float64)
    if c.size < 2:
        empty = np.empty(0, dtype=np.float64)
        return empty, empty, np.zeros(0, dtype=bool)
    with np.errstate(invalid="ignore", divide="ignore"):
        logc = np.where(np.isfinite(c) & (c > 0), np.log(c), np.nan)
    r = np.diff(logc)
    min_periods = cfg.spike_window // 2 + 1
    rs = pd.Series(r)
    med = rs.rolling(cfg.spike_window, center=True, min_periods=min_periods).median()
    dev = (rs - med).abs()
    mad = dev.rolling(cfg.spike_window, center=True, min_periods=min_periods).median()
    threshold = (cfg.spike_k * MAD_TO_SIGMA * mad).to_numpy(dtype=np.float64)
    devn = dev.to_numpy(dtype=np.float64)
    with np.errstate(invalid="ignore"):
        spike = (devn > threshold) & (np.abs(r) >= cfg.spike_min_abs_log_return)
    return r, threshold, np.asarray(spike, dtype=bool)


# --- the report ---------------------------------------------------------------------------------


def _opt(x: float) -> float | None:
    return x if math.isfinite(x) else None


def check_bars(
    frame: pd.DataFrame,
    *,
    exchange: str,
    symbol: str,
    timeframe: str,
    config: QualityConfig | None = None,
) -> QualityReport:
    """Run every check on ``frame`` (bar columns, any row order) and return the report."""
    cfg = config or QualityConfig()
    tf = validate_timeframe(timeframe)
    step = timeframe_ms(tf)
    check_bar_columns(frame)
    n_ex = cfg.max_examples
    ts = frame["ts"].to_numpy(dtype=np.int64)
    rows = int(ts.size)

    # order and duplicates
    ooo = out_of_order_mask(ts)
    ooo_rows = np.flatnonzero(ooo)
    ooo_examples = [OutOfOrderExample(row=int(i), ts=int(ts[i]), previous_ts=int(ts[i - 1])) for i in ooo_rows[:n_ex]]
    values = frame.loc[:, ["ts", *VALUE_COLUMNS]].reset_index(drop=True)
    dup_any = values["ts"].duplicated(keep=False).to_numpy()
    dup_extra = int(values["ts"].duplicated(keep="first").sum())
    dup_examples: list[DuplicateExample] = []
    dup_ts_count = conflicting = 0
    if dup_extra:
        dups = values.loc[dup_any]
        distinct_rows = dups.drop_duplicates().groupby("ts").size()  # NaN equals NaN here
        counts = dups.groupby("ts").size()
        dup_ts_count = int(counts.size)
        conflicting = int((distinct_rows > 1).sum())
        dup_examples = [
            DuplicateExample(ts=int(t), rows=int(counts[t]), identical=bool(distinct_rows[t] == 1))
            for t in counts.index[:n_ex]
        ]

    # alignment
    mis = misaligned_mask(ts, tf)
    mis_examples = [int(t) for t in ts[mis][:n_ex]]

    # bad rows
    masks = bad_row_masks(frame)
    any_bad = np.logical_or.reduce(list(masks.values())) if rows else np.zeros(0, dtype=bool)
    bad_idx = np.flatnonzero(any_bad)
    vals = {c: frame[c].to_numpy(dtype=np.float64) for c in VALUE_COLUMNS}
    bad_examples = [
        BadRowExample(
            row=int(i),
            ts=int(ts[i]),
            problems=[rule for rule in BAD_ROW_RULES if masks[rule][i]],
            open=_opt(float(vals["open"][i])),
            high=_opt(float(vals["high"][i])),
            low=_opt(float(vals["low"][i])),
            close=_opt(float(vals["close"][i])),
            volume=_opt(float(vals["volume"][i])),
        )
        for i in bad_idx[:n_ex]
    ]

    # gaps and spikes look at the series in time order, one row per ts
    order = np.argsort(ts, kind="stable")
    first_of_ts = np.r_[True, ts[order][1:] != ts[order][:-1]] if rows else np.zeros(0, dtype=bool)
    series_idx = order[first_of_ts]
    sts = ts[series_idx]
    gaps = find_gaps(sts, tf)
    r, thr, spike = spike_scores(vals["close"][series_idx], cfg)
    spike_at = np.flatnonzero(spike)
    spike_examples = [
        SpikeExample(ts=int(sts[i + 1]), log_return=float(r[i]), threshold=float(thr[i])) for i in spike_at[:n_ex]
    ]

    first = int(sts[0]) if rows else None
    last = int(sts[-1]) if rows else None
    expected = 0 if first is None or last is None else (last - first) // step + 1
    with np.errstate(invalid="ignore"):
        zero_vol = int((vals["volume"] == 0).sum())

    return QualityReport(
        exchange=exchange,
        symbol=symbol,
        timeframe=tf,
        rows=rows,
        first_ts=first,
        last_ts=last,
        expected_rows=int(expected),
        missing_bars=sum(g.missing for g in gaps),
        gaps=gaps,
        duplicate_rows=dup_extra,
        duplicate_ts=dup_ts_count,
        conflicting_duplicate_ts=conflicting,
        duplicate_examples=dup_examples,
        out_of_order_rows=int(ooo_rows.size),
        out_of_order_examples=ooo_examples,
        misaligned_rows=int(mis.sum()),
        misaligned_examples=mis_examples,
        bad_rows=int(bad_idx.size),
        bad_row_counts={rule: int(m.sum()) for rule, m in masks.items()},
        bad_row_examples=bad_examples,
        spikes=int(spike_at.size),
        spike_examples=spike_examples,
        zero_volume_rows=zero_vol,
        config=cfg,
    )


def gap_ranges_for_repair(report: QualityReport, *, merge_within_bars: int = 0) -> list[tuple[int, int]]:
    """Half-open ``[since_ms, until_ms)`` ranges covering every gap in ``report``, for targeted backfill.

    Gaps separated by at most ``merge_within_bars`` present bars are merged into one range (fewer requests,
    a few bars fetched again; an idempotent upsert makes that harmless).
    """
    if merge_within_bars < 0:
        raise ValidationFailedError("merge_within_bars must be >= 0")
    step = timeframe_ms(report.timeframe)
    ranges: list[tuple[int, int]] = []
    for g in report.gaps:
        since, until = g.from_ts, g.to_ts + step
        if ranges and since - ranges[-1][1] <= merge_within_bars * step:
            ranges[-1] = (ranges[-1][0], until)
        else:
            ranges.append((since, until))
    return ranges
