"""The strategy registry: parameter validation, optimisation space, and each kernel's targets checked against
an independent pandas/Python implementation of its documented rule on real BTC bars, plus no look-ahead."""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.backtest.bars import Bars
from engine.backtest.config import BacktestConfig
from engine.backtest.vectorized import run_backtest, run_grid, run_targets
from engine.errors import NotFoundError, ValidationFailedError
from engine.strategies import (
    EXTERNAL_TARGETS_KERNEL,
    StrategySpec,
    get_strategy,
    list_strategies,
    register,
    resolve_strategy_name,
)
from engine.strategies.base import StrategyParams

BUILTINS = {
    "sma_cross",
    "ema_cross",
    "rsi_reversion",
    "bollinger_breakout",
    "bollinger_reversion",
    "donchian_breakout",
    "macd",
    "buy_and_hold",
}


def targets_of(bars: Bars, name: str, params: Mapping[str, object] | None = None) -> np.ndarray:
    return get_strategy(name).signals(bars.open, bars.high, bars.low, bars.close, bars.volume, params)


# ---------------------------------------------------------------------------------------------- registry


def test_registry_lists_the_builtins() -> None:
    registered = {spec.name for spec in list_strategies()}
    assert registered >= BUILTINS


def test_unknown_strategy_names_the_available_ones() -> None:
    with pytest.raises(NotFoundError) as error:
        get_strategy("sma_crossover")
    message = str(error.value)
    assert "sma_crossover" in message
    assert "sma_cross" in message and "buy_and_hold" in message


@pytest.mark.parametrize(
    ("written", "name"),
    [
        ("sma_cross", "sma_cross"),
        ("  sma_cross ", "sma_cross"),
        ("SMA_CROSS", "sma_cross"),
        ("SMA cross", "sma_cross"),
        ("sma-cross", "sma_cross"),
        ("SMACross", "sma_cross"),
        ("SMA crossover", "sma_cross"),
        ("sma cross strategy", "sma_cross"),
        ("sma", "sma_cross"),
        ("EMA", "ema_cross"),
        ("ema crossover", "ema_cross"),
        ("macd", "macd"),
        ("MACD", "macd"),
        ("macd_cross", "macd"),
        ("MACD crossover", "macd"),
        ("macd signal line", "macd"),
        ("rsi", "rsi_reversion"),
        ("RSI reversion", "rsi_reversion"),
        ("bollinger breakout", "bollinger_breakout"),
        ("Bollinger-Reversion", "bollinger_reversion"),
        ("bollinger bands breakout", "bollinger_breakout"),
        ("donchian", "donchian_breakout"),
        ("Donchian channel", "donchian_breakout"),
        ("buy and hold", "buy_and_hold"),
        ("Buy & Hold", "buy_and_hold"),
        ("BuyAndHold", "buy_and_hold"),
        ("buy-and-hold", "buy_and_hold"),
        ("hold", "buy_and_hold"),
    ],
)
def test_strategy_names_resolve_as_people_write_them(written: str, name: str) -> None:
    assert resolve_strategy_name(written, BUILTINS) == name
    assert resolve_strategy_name(written) == name  # the registry's own names (a test may have added one)


def test_every_registered_name_resolves_to_itself() -> None:
    for spec in list_strategies():
        assert resolve_strategy_name(spec.name) == spec.name
        assert resolve_strategy_name(spec.name.upper().replace("_", " ")) == spec.name


@pytest.mark.parametrize(
    ("written", "could_mean"),
    [
        ("breakout", "bollinger_breakout or donchian_breakout"),
        ("bollinger", "bollinger_breakout or bollinger_reversion"),
        ("Bollinger bands", "bollinger_breakout or bollinger_reversion"),
        ("reversion", "bollinger_reversion or rsi_reversion"),
        ("cross", "ema_cross or sma_cross"),
    ],
)
def test_an_ambiguous_name_says_what_it_could_mean(written: str, could_mean: str) -> None:
    with pytest.raises(NotFoundError) as error:
        resolve_strategy_name(written, BUILTINS)
    message = str(error.value)
    assert message.startswith(f"unknown strategy '{written}': it could mean {could_mean} (available: ")
    assert "sma_cross" in message and "buy_and_hold" in message


@pytest.mark.parametrize(
    "written",
    [
        "ichimoku",
        "sma_corss",  # no spelling correction
        "sma_crossover_fast",
        "macd divergence",  # a different strategy, not macd
        "sma cross 10 50",
        "rsi_momentum",
        "strategy",
        "and",
        "",
        "   ",
    ],
)
def test_an_unknown_name_stays_an_error(written: str) -> None:
    with pytest.raises(NotFoundError) as error:
        resolve_strategy_name(written, BUILTINS)
    assert str(error.value) == (f"unknown strategy '{written.strip()}' (available: {', '.join(sorted(BUILTINS))})")


def test_resolution_chooses_among_the_names_given() -> None:
    assert resolve_strategy_name("macd", ["macd", "macd_fast"]) == "macd"  # the exact name wins
    assert resolve_strategy_name("macd cross", ["macd", "macd_fast"]) == "macd"
    assert resolve_strategy_name("macd fast", ["macd", "macd_fast"]) == "macd_fast"
    with pytest.raises(NotFoundError, match="it could mean macd_fast or macd_slow"):
        resolve_strategy_name("macd", ["macd_fast", "macd_slow"])
    with pytest.raises(NotFoundError, match=r"unknown strategy 'sma_cross' \(available: macd\)"):
        resolve_strategy_name("sma_cross", ["macd"])


_VOCABULARY = {word for name in BUILTINS for word in name.split("_")}


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=12), max_size=4))
def test_text_sharing_no_word_with_a_name_never_resolves(words: list[str]) -> None:
    text = " ".join(words)
    if {w.lower() for w in words} & _VOCABULARY or "".join(words) in {n.replace("_", "") for n in BUILTINS}:
        return
    with pytest.raises(NotFoundError, match="unknown strategy"):
        resolve_strategy_name(text, BUILTINS)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_any_text_resolves_to_a_given_name_or_fails_clearly(text: str) -> None:
    try:
        outcome = resolve_strategy_name(text, BUILTINS)
    except NotFoundError as error:
        outcome = str(error)
    assert outcome in BUILTINS or (outcome.startswith("unknown strategy ") and "(available: " in outcome)


@pytest.mark.parametrize(
    ("name", "params", "needle"),
    [
        ("sma_cross", {"fast": 1}, "'fast'"),
        ("sma_cross", {"fast": 10, "slow": 5000}, "'slow'"),
        ("sma_cross", {"fast": 20, "slow": 20}, "'slow' must be greater than fast"),
        ("sma_cross", {"fast": 30, "slow": 20}, "'slow' must be greater than fast"),
        ("sma_cross", {"fats": 10}, "unknown parameter 'fats'"),
        ("sma_cross", {"fast": "ten"}, "'fast'"),
        ("ema_cross", {"fast": 26, "slow": 12}, "'slow'"),
        ("macd", {"fast": 30, "slow": 26}, "'slow'"),
        ("rsi_reversion", {"lower": 40, "upper": 60, "exit_level": 70}, "'exit_level'"),
        ("bollinger_breakout", {"k": 9.0}, "'k'"),
        ("donchian_breakout", {"window": 10, "exit_window": 20}, "'exit_window' must not exceed window"),
    ],
)
def test_bad_parameters_name_the_parameter(name: str, params: dict[str, object], needle: str) -> None:
    with pytest.raises(ValidationFailedError) as error:
        get_strategy(name).validate_params(params)
    assert needle in str(error.value)
    assert str(error.value).startswith(f"{name}: ")


def test_parameters_coerce_and_default() -> None:
    spec = get_strategy("sma_cross")
    model = spec.validate_params({"fast": "12"})
    assert model.model_dump() == {"fast": 12, "slow": 50}
    assert spec.validate_params(model) is model
    assert list(spec.param_vector(model)) == [12.0, 50.0]


def test_search_space_reads_the_bounds() -> None:
    space = {dim.name: dim for dim in get_strategy("bollinger_breakout").search_space()}
    assert space["window"].kind == "int" and space["window"].step == 1
    assert (space["window"].low, space["window"].high) == (5, 500)
    assert space["k"].kind == "float" and space["k"].step is None
    assert (space["k"].low, space["k"].high, space["k"].default) == (0.5, 4.0, 2.0)
    for spec in list_strategies():
        for dim in spec.search_space():
            assert dim.low <= dim.default <= dim.high, (spec.name, dim)


def test_signals_reject_empty_and_ragged_input() -> None:
    spec = get_strategy("sma_cross")
    with pytest.raises(ValidationFailedError, match="empty data range"):
        spec.signals([], [], [], [], [])
    with pytest.raises(ValidationFailedError, match="differ in length"):
        spec.signals([1.0, 2.0], [1.0], [1.0, 2.0], [1.0, 2.0], [1.0, 2.0])


def test_custom_strategy_registration(btc_2k: Bars) -> None:
    class AboveFirstClose(StrategyParams):
        pass

    def above_first(o, h, lo, c, v, p):
        return np.where(c > c[0], 1, -1).astype(np.int8)

    spec = register(
        StrategySpec(
            "test_above_first", "long above the first close", AboveFirstClose, EXTERNAL_TARGETS_KERNEL, above_first
        ),
        replace=True,
    )
    assert get_strategy("test_above_first") is spec
    with pytest.raises(ValidationFailedError, match="already registered"):
        register(spec)
    targets = targets_of(btc_2k, "test_above_first")
    assert set(np.unique(targets)) <= {-1, 1}
    config = BacktestConfig(direction="long_short")
    result = run_backtest("test_above_first", btc_2k, None, config)
    np.testing.assert_array_equal(result.equity, run_targets(btc_2k, targets, config).equity)
    with pytest.raises(ValidationFailedError, match="grid mode needs a built-in"):
        run_grid("test_above_first", btc_2k, [{}])


# ------------------------------------------------------------------- kernels vs independent references


def _sign(diff: np.ndarray, valid: np.ndarray) -> np.ndarray:
    out: np.ndarray = np.sign(np.nan_to_num(diff)).astype(np.int8)
    out[~valid] = 0
    return out


def _assert_same_or_tie(ours: np.ndarray, reference: np.ndarray, gap: np.ndarray, scale: np.ndarray) -> None:
    """Equal, except where the two compared quantities tie to within float rounding."""
    differ = ours != reference
    assert not (differ & (np.abs(gap) > 1e-9 * scale)).any(), np.flatnonzero(differ)[:10]


@pytest.mark.parametrize(("fast", "slow"), [(10, 50), (5, 20), (50, 200)])
def test_sma_cross_matches_pandas(btc_1h: Bars, fast: int, slow: int) -> None:
    close = pd.Series(btc_1h.close)
    gap = (close.rolling(fast).mean() - close.rolling(slow).mean()).to_numpy()
    reference = _sign(gap, ~np.isnan(gap))
    _assert_same_or_tie(targets_of(btc_1h, "sma_cross", {"fast": fast, "slow": slow}), reference, gap, btc_1h.close)


def _exact_sma_targets(close: list[float], fast: int, slow: int) -> np.ndarray:
    """sign(mean(fast window) - mean(slow window)) in exact rational arithmetic (0 until the slow window fills)."""
    exact = [Fraction(x) for x in close]
    out = np.zeros(len(close), dtype=np.int8)
    for i in range(slow - 1, len(close)):
        diff = sum(exact[i - fast + 1 : i + 1]) / fast - sum(exact[i - slow + 1 : i + 1]) / slow
        out[i] = (diff > 0) - (diff < 0)
    return out


def test_sma_cross_is_exact_when_the_averages_tie(btc_1h: Bars) -> None:
    # at fast=2/slow=3 the bundled hourly closes tie (flat hours); running-sum residue used to call ties crosses
    bars = btc_1h.slice(0, 6000)
    ours = targets_of(bars, "sma_cross", {"fast": 2, "slow": 3})
    reference = _exact_sma_targets(bars.close.tolist(), 2, 3)
    assert (reference[2:] == 0).sum() > 0  # the case is really there
    np.testing.assert_array_equal(ours, reference)


# plateaus of a few cent prices after a noisy history: equal averages with residue in the running sums
_PLATEAUS = st.lists(st.tuples(st.integers(1, 400), st.integers(1, 8)), min_size=2, max_size=40).map(
    lambda runs: [cents / 100 for cents, times in runs for _ in range(times)]
)
_ANY_PRICES = st.lists(st.floats(1e-3, 1e7, allow_nan=False, allow_infinity=False), min_size=3, max_size=120)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    closes=st.one_of(_PLATEAUS, _ANY_PRICES),
    fast=st.integers(2, 8),
    extra=st.integers(1, 12),
    chunk=st.integers(1, 50),
    scale=st.sampled_from([1.0, 1e-6, 3.7e5]),
)
def test_sma_cross_agrees_with_exact_fractions(
    closes: list[float], fast: int, extra: int, chunk: int, scale: float
) -> None:
    slow = fast + extra
    close = np.asarray(closes, dtype=np.float64) * scale
    if len(close) < slow:
        return
    reference = _exact_sma_targets(close.tolist(), fast, slow)
    np.testing.assert_array_equal(sma_cross_in_chunks(close, fast, slow, len(close)), reference)
    np.testing.assert_array_equal(sma_cross_in_chunks(close, fast, slow, chunk), reference)


def sma_cross_in_chunks(close: np.ndarray, fast: int, slow: int, chunk: int) -> np.ndarray:
    """The streaming kernel fed ``chunk`` bars at a time, as the fused backtest feeds it."""
    from engine.strategies import kernels, sma_cross

    p = np.array([fast, slow], dtype=np.float64)
    state = kernels.new_state(sma_cross.KERNEL_ID, p)
    out = np.zeros(len(close), dtype=np.int8)
    for start in range(0, len(close), chunk):
        end = min(start + chunk, len(close))
        sma_cross.targets_chunk(close, close, close, close, close, p, state, start, end, out[start:end])
    return out


@pytest.mark.parametrize(("fast", "slow"), [(12, 26), (5, 100)])
def test_ema_cross_matches_pandas(btc_1h: Bars, fast: int, slow: int) -> None:
    close = pd.Series(btc_1h.close)
    gap = (close.ewm(span=fast, adjust=False).mean() - close.ewm(span=slow, adjust=False).mean()).to_numpy()
    reference = _sign(gap, np.arange(len(gap)) >= slow - 1)
    _assert_same_or_tie(targets_of(btc_1h, "ema_cross", {"fast": fast, "slow": slow}), reference, gap, btc_1h.close)


def test_macd_matches_pandas(btc_1h: Bars) -> None:
    close = pd.Series(btc_1h.close)
    line = close.ewm(span=12, adjust=False).mean() - close.ewm(span=26, adjust=False).mean()
    gap = (line - line.ewm(span=9, adjust=False).mean()).to_numpy()
    reference = _sign(gap, np.arange(len(gap)) >= 26 + 9 - 2)
    _assert_same_or_tie(targets_of(btc_1h, "macd"), reference, gap, btc_1h.close * 1e-3)


def _state_machine(enter_long, enter_short, exit_long, exit_short, valid) -> np.ndarray:
    """The documented position rule: opposite signal reverses, exit signal flattens, otherwise hold."""
    pos, out = 0, np.zeros(len(valid), dtype=np.int8)
    for i in range(len(valid)):
        if valid[i]:
            if pos == 0:
                pos = 1 if enter_long[i] else (-1 if enter_short[i] else 0)
            elif pos == 1:
                pos = -1 if enter_short[i] else (0 if exit_long[i] else 1)
            else:
                pos = 1 if enter_long[i] else (0 if exit_short[i] else -1)
        out[i] = pos
    return out


def test_rsi_reversion_matches_a_plain_wilder_rsi(btc_1h: Bars) -> None:
    close = btc_1h.close
    window, lower, upper, exit_level = 14, 30.0, 70.0, 50.0
    change = np.diff(close)
    gains, losses = np.maximum(change, 0), np.maximum(-change, 0)
    rsi = np.full(len(close), np.nan)
    avg_gain, avg_loss = gains[:window].mean(), losses[:window].mean()
    for i in range(window, len(close)):
        if i > window:
            avg_gain = (avg_gain * (window - 1) + gains[i - 1]) / window
            avg_loss = (avg_loss * (window - 1) + losses[i - 1]) / window
        rsi[i] = 100.0 if avg_loss == 0 else 100.0 - 100.0 / (1.0 + avg_gain / avg_loss)
    reference = _state_machine(rsi < lower, rsi > upper, rsi >= exit_level, rsi <= exit_level, ~np.isnan(rsi))
    assert np.array_equal(targets_of(btc_1h, "rsi_reversion"), reference)


@pytest.mark.parametrize("name", ["bollinger_breakout", "bollinger_reversion"])
def test_bollinger_matches_pandas(btc_1h: Bars, name: str) -> None:
    close = pd.Series(btc_1h.close)
    mid = close.rolling(20).mean()
    sd = close.rolling(20).std(ddof=0)
    up, dn, x = (mid + 2 * sd).to_numpy(), (mid - 2 * sd).to_numpy(), close.to_numpy()
    mid_, valid = mid.to_numpy(), ~np.isnan(mid.to_numpy())
    if name == "bollinger_breakout":
        reference = _state_machine(x > up, x < dn, x < mid_, x > mid_, valid)
    else:
        reference = _state_machine(x < dn, x > up, x >= mid_, x <= mid_, valid)
    assert np.array_equal(targets_of(btc_1h, name, {"window": 20, "k": 2.0}), reference)


@pytest.mark.parametrize(("window", "exit_window"), [(20, 10), (55, 20), (10, 10)])
def test_donchian_matches_pandas(btc_1h: Bars, window: int, exit_window: int) -> None:
    high, low, x = pd.Series(btc_1h.high), pd.Series(btc_1h.low), btc_1h.close
    upper = high.rolling(window).max().shift(1).to_numpy()
    lower = low.rolling(window).min().shift(1).to_numpy()
    exit_upper = high.rolling(exit_window).max().shift(1).to_numpy()
    exit_lower = low.rolling(exit_window).min().shift(1).to_numpy()
    reference = _state_machine(x > upper, x < lower, x < exit_lower, x > exit_upper, ~np.isnan(upper))
    params = {"window": window, "exit_window": exit_window}
    assert np.array_equal(targets_of(btc_1h, "donchian_breakout", params), reference)


def test_buy_and_hold_is_always_long(btc_2k: Bars) -> None:
    assert (targets_of(btc_2k, "buy_and_hold") == 1).all()


# ------------------------------------------------------------------------------------ no look-ahead

_SMALL_PARAMS = {
    "sma_cross": st.fixed_dictionaries({"fast": st.integers(2, 30), "slow": st.integers(31, 120)}),
    "ema_cross": st.fixed_dictionaries({"fast": st.integers(2, 30), "slow": st.integers(31, 120)}),
    "macd": st.fixed_dictionaries(
        {"fast": st.integers(2, 20), "slow": st.integers(21, 60), "signal": st.integers(2, 20)}
    ),
    "rsi_reversion": st.fixed_dictionaries({"window": st.integers(2, 50)}),
    "bollinger_breakout": st.fixed_dictionaries({"window": st.integers(5, 100), "k": st.floats(0.5, 3.0)}),
    "bollinger_reversion": st.fixed_dictionaries({"window": st.integers(5, 100), "k": st.floats(0.5, 3.0)}),
    "donchian_breakout": st.integers(2, 80).flatmap(
        lambda w: st.fixed_dictionaries({"window": st.just(w), "exit_window": st.integers(1, w)})
    ),
    "buy_and_hold": st.just({}),
}


@st.composite
def strategy_and_params(draw: st.DrawFn) -> tuple[str, Any]:
    name = draw(st.sampled_from(sorted(_SMALL_PARAMS)))
    return name, draw(_SMALL_PARAMS[name])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    choice=strategy_and_params(),
    k=st.integers(0, 1999),
    factor=st.floats(0.5, 2.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_targets_never_look_ahead(btc_2k: Bars, choice, k: int, factor: float, seed: int) -> None:
    """Changing every price after bar k (scaled, shifted, scrambled) leaves the targets up to k unchanged."""
    name, params = choice
    rng = np.random.default_rng(seed)
    before = targets_of(btc_2k, name, params)
    arrays = [getattr(btc_2k, c).copy() for c in ("open", "high", "low", "close", "volume")]
    for a in arrays:
        a[k + 1 :] = a[k + 1 :] * factor * rng.uniform(0.9, 1.1, len(a) - k - 1)
    o, h, lo, c, v = arrays
    after = get_strategy(name).signals(o, h, lo, c, v, params)
    assert np.array_equal(before[: k + 1], after[: k + 1])


def test_sma_cross_kernel_runs_as_plain_python_too(btc_2k: Bars) -> None:
    """Coverage measures the kernels with NUMBA_DISABLE_JIT=1: the exact-tie path must run there as well."""
    import json
    import os
    import subprocess
    import sys

    script = (
        "import json, sys, numpy as np\n"
        "from engine.strategies import kernels, sma_cross\n"
        "c = np.asarray(json.load(sys.stdin), dtype=np.float64)\n"
        "p = np.array([2.0, 3.0])\n"
        "out = np.zeros(len(c), dtype=np.int8)\n"
        "sma_cross.targets_chunk(c, c, c, c, c, p, kernels.new_state(1, p), 0, len(c), out)\n"
        "print(json.dumps(out.tolist()))\n"
    )
    close = btc_2k.close[:400]
    done = subprocess.run(
        [sys.executable, "-c", script],
        input=json.dumps(close.tolist()),
        env=os.environ | {"NUMBA_DISABLE_JIT": "1"},
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    np.testing.assert_array_equal(np.array(json.loads(done.stdout)), _exact_sma_targets(close.tolist(), 2, 3))
