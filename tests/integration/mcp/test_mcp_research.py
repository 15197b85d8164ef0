"""The research tools through the mcp SDK's client over streamable HTTP, on the real sample."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from engine.research.runs import get_run
from engine.runtime import Runtime
from tests.integration.mcp.test_mcp_http import session, structured

RESEARCH_TOOLS = (
    "list_strategies",
    "run_backtest",
    "get_backtest",
    "optimize_strategy",
    "walk_forward",
    "compare_runs",
    "list_runs",
    "compute_indicators",
)
YEAR_2018 = {"start": "2018-01-01T00:00:00Z", "end": "2019-01-01T00:00:00Z"}


async def test_research_tools_publish_schemas_and_annotations(mcp_api: tuple[str, Runtime], viewer_token: str) -> None:
    url, _ = mcp_api
    async with session(url, viewer_token) as s:
        tools = {t.name: t for t in (await s.list_tools()).tools}
        strategies = structured(await s.call_tool("list_strategies", {}))["strategies"]
    for name in RESEARCH_TOOLS:
        assert tools[name].outputSchema is not None, name
        assert tools[name].annotations is not None, name
    for name in ("list_strategies", "get_backtest", "compare_runs", "list_runs", "compute_indicators"):
        assert tools[name].annotations.readOnlyHint, name  # type: ignore[union-attr]
    for name in ("run_backtest", "optimize_strategy", "walk_forward"):
        assert not tools[name].annotations.readOnlyHint, name  # type: ignore[union-attr]
    sma = next(s for s in strategies if s["name"] == "sma_cross")
    assert {p["name"]: (p["low"], p["high"]) for p in sma["parameters"]} == {"fast": (2, 400), "slow": (3, 1000)}


async def test_backtest_get_and_compare(mcp_api: tuple[str, Runtime], trader_token: str) -> None:
    url, runtime = mcp_api
    async with session(url, trader_token) as s:
        first = structured(
            await s.call_tool(
                "run_backtest",
                {"strategy": "sma_cross", "symbol": "BTC/USD", "timeframe": "1h", "params": {"fast": 10, "slow": 50}}
                | YEAR_2018,
            )
        )
        second = structured(
            await s.call_tool(
                "run_backtest",
                {"strategy": "ema_cross", "symbol": "BTC/USD", "timeframe": "1h", "fee": 0.0005} | YEAR_2018,
            )
        )
        fetched = structured(await s.call_tool("get_backtest", {"run_id": first["run_id"]}))
        compared = structured(await s.call_tool("compare_runs", {"run_ids": [first["run_id"], second["run_id"]]}))
        recent = await s.read_resource("iqts://recent-runs")  # type: ignore[arg-type]

    record = get_run(runtime.db, first["run_id"])
    assert first["run_id"].startswith("bt_") and first["params"] == {"fast": 10, "slow": 50}
    assert first["n_bars"] == 8760 and first["created_by"].startswith("mcp:")
    assert first["metrics"]["sharpe"] == record.metrics.sharpe
    assert first["benchmark_return"] == record.metrics.benchmark_return
    assert first["benchmark_return"] == pytest.approx(3742.03 / 13800.01 - 1, abs=1e-3)  # BTC fell in 2018
    curve = first["equity_curve"]
    assert 2 <= len(curve) <= 200
    assert curve[0]["ts"].startswith("2018-01-01T00:00") and curve[-1]["ts"].startswith("2018-12-31T23:00")
    assert curve[-1]["equity"] == pytest.approx(record.metrics.final_equity)
    assert fetched["metrics"] == first["metrics"] and fetched["trades"] and len(fetched["trades"]) <= 100
    assert {r["run_id"] for r in compared["runs"]} == {first["run_id"], second["run_id"]}
    assert compared["same_data"] is True
    assert compared["best"]["sharpe"] in (first["run_id"], second["run_id"])
    assert second["config"]["fee"] == 0.0005
    listed = json.loads(recent.contents[0].text)  # type: ignore[union-attr]
    assert first["run_id"] in [r["id"] for r in listed]


async def test_list_runs_finds_run_ids_and_unknown_ids_name_real_ones(
    mcp_api: tuple[str, Runtime], trader_token: str, viewer_token: str
) -> None:
    url, runtime = mcp_api
    async with session(url, trader_token) as s:
        btc = structured(
            await s.call_tool("run_backtest", {"strategy": "SMA cross", "symbol": "btc", "timeframe": "1h"} | YEAR_2018)
        )
        eth = structured(await s.call_tool("run_backtest", {"strategy": "buy and hold", "symbol": "ETH/USD"}))
    async with session(url, viewer_token) as s:
        tools = {t.name: t for t in (await s.list_tools()).tools}
        newest = structured(await s.call_tool("list_runs", {"limit": 2}))
        everything = structured(await s.call_tool("list_runs", {}))
        of_btc = structured(await s.call_tool("list_runs", {"symbol": "btc/usdt", "strategy": "sma-cross"}))
        of_eth = structured(await s.call_tool("list_runs", {"symbol": "ETH"}))
        gone = await s.call_tool("get_backtest", {"run_id": "bt_gone"})
        compared = await s.call_tool("compare_runs", {"run_ids": [btc["run_id"], "bt_gone"]})
        too_many = await s.call_tool("list_runs", {"limit": 101})

    assert "newest first" in (tools["list_runs"].description or "")
    assert set(tools["list_runs"].inputSchema["properties"]) == {"strategy", "symbol", "limit"}
    assert btc["strategy"] == "sma_cross" and get_run(runtime.db, btc["run_id"]).strategy == "sma_cross"
    assert eth["strategy"] == "buy_and_hold"
    assert [r["run_id"] for r in newest["runs"]] == [eth["run_id"], btc["run_id"]]
    row = newest["runs"][1]
    assert (row["strategy"], row["symbol"], row["timeframe"]) == ("sma_cross", "BTC/USD", "1h")
    assert row["metrics"]["sharpe"] == btc["metrics"]["sharpe"] and row["params"] == btc["params"]
    assert 2 <= len(everything["runs"]) <= 20
    assert btc["run_id"] in [r["run_id"] for r in of_btc["runs"]]
    assert {(r["strategy"], r["symbol"]) for r in of_btc["runs"]} == {("sma_cross", "BTC/USD")}
    assert eth["run_id"] in [r["run_id"] for r in of_eth["runs"]]
    assert {r["symbol"] for r in of_eth["runs"]} == {"ETH/USD"}
    for result in (gone, compared):
        assert result.isError
        text = " ".join(c.text for c in result.content if hasattr(c, "text"))
        assert "no backtest run 'bt_gone'; the " in text and "(list_runs or" in text
        assert f"{eth['run_id']} (buy_and_hold ETH/USD 1d)" in text
        assert f"{btc['run_id']} (sma_cross BTC/USD 1h)" in text
    assert too_many.isError and "limit" in " ".join(c.text for c in too_many.content if hasattr(c, "text"))


async def test_optimize_and_walk_forward_report_progress(mcp_api: tuple[str, Runtime], trader_token: str) -> None:
    url, _ = mcp_api
    seen: list[tuple[float, float | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total))

    async with session(url, trader_token) as s:
        study = structured(
            await s.call_tool(
                "optimize_strategy",
                {"strategy": "sma_cross", "symbol": "BTC/USD", "timeframe": "1h", "trials": 24, "seed": 2} | YEAR_2018,
                progress_callback=on_progress,
            )
        )
        wf = structured(
            await s.call_tool(
                "walk_forward",
                {
                    "strategy": "ema_cross",
                    "symbol": "BTC/USD",
                    "timeframe": "1h",
                    "windows": 2,
                    "trials_per_window": 8,
                    "seed": 2,
                },
            )
        )
    assert study["study_id"].startswith("st_") and study["n_trials"] == 24
    assert study["best_params"]["slow"] > study["best_params"]["fast"]
    assert 1 <= len(study["top_trials"]) <= 5 and study["top_trials"][0]["values"][0] == study["best_value"]
    assert (
        study["best_run_id"].startswith("bt_") and study["overfitting"]["n_trials"] == study["n_trials"]
    )  # every trial tried
    assert seen and seen[-1] == (24, 24)
    report = wf["report"]
    assert wf["study_id"].startswith("st_") and len(report["windows"]) == 2
    assert report["windows"][1]["test_end"] == 20_111
    assert {"mean_is_sharpe", "mean_oos_sharpe", "degradation_ratio", "oos_combined"} <= set(report)


async def test_compute_indicators_latest_and_window(mcp_api: tuple[str, Runtime], viewer_token: str) -> None:
    url, _ = mcp_api
    names = ["rsi", "sma:50", "bollinger:20,2", "macd", "donchian:20", "atr", "returns:24", "volatility", "ema:12"]
    async with session(url, viewer_token) as s:
        out = structured(
            await s.call_tool(
                "compute_indicators", {"symbol": "BTC/USD", "timeframe": "1h", "indicators": names, "window": 3}
            )
        )
        latest = structured(await s.call_tool("compute_indicators", {"symbol": "BTC/USD", "indicators": ["rsi"]}))
        bars = structured(await s.call_tool("get_ohlcv", {"symbol": "BTC/USD", "timeframe": "1h", "limit": 50}))
    closes = np.array([b["close"] for b in bars["bars"]])
    rows = out["rows"]
    assert len(rows) == 3 and rows[-1]["ts"].startswith("2019-10-17T09:00")
    last = rows[-1]["values"]
    assert last["sma(50)"] == pytest.approx(closes.mean(), rel=1e-12)
    assert 0 <= last["rsi(14)"] <= 100
    assert last["bollinger(20,2).lower"] < last["bollinger(20,2).middle"] < last["bollinger(20,2).upper"]
    assert last["bollinger(20,2).middle"] == pytest.approx(closes[-20:].mean(), rel=1e-12)
    assert last["macd(12,26,9).histogram"] == pytest.approx(last["macd(12,26,9)"] - last["macd(12,26,9).signal"])
    assert last["returns(24)"] is not None and last["volatility(20)"] > 0 and last["atr(14)"] > 0
    assert last["donchian(20).upper"] >= last["donchian(20).lower"]
    assert len(latest["rows"]) == 1 and latest["timeframe"] == "1h" and latest["indicators"] == ["rsi(14)"]


@pytest.mark.parametrize(
    ("tool", "args", "expected"),
    [
        ("run_backtest", {"strategy": "nope", "symbol": "BTC/USD"}, "unknown strategy 'nope'"),
        (
            "run_backtest",
            {"strategy": "breakout", "symbol": "BTC/USD"},
            "unknown strategy 'breakout': it could mean bollinger_breakout or donchian_breakout (available:",
        ),
        ("run_backtest", {"strategy": "ichimoku", "symbol": "BTC/USD"}, "unknown strategy 'ichimoku' (available:"),
        ("walk_forward", {"strategy": "reversion", "symbol": "BTC/USD"}, "could mean bollinger_reversion or rsi"),
        ("list_runs", {"strategy": "ichimoku"}, "unknown strategy 'ichimoku'"),
        ("list_runs", {"symbol": "not a market!"}, "is not a market"),
        ("list_runs", {"limit": 0}, "limit"),
        ("run_backtest", {"strategy": "sma_cross", "symbol": "BTC/USD", "params": {"fast": 1000}}, "parameter 'fast'"),
        (
            "run_backtest",
            {"strategy": "sma_cross", "symbol": "BTC/USD", "params": {"fast": 60, "slow": 50}},
            "parameter 'slow' must be greater than fast",
        ),
        ("run_backtest", {"strategy": "sma_cross", "symbol": "BTC/USD", "params": {"fast": "many"}}, "fast"),
        ("run_backtest", {"strategy": "sma_cross", "symbol": "BTC/USD", "fee": 0.5}, "fee"),
        ("run_backtest", {"strategy": "sma_cross", "symbol": "DOGE/EUR"}, "no stored data for DOGE/EUR"),
        (
            "run_backtest",
            {"strategy": "sma_cross", "symbol": "BTC/USD", "start": "2030-01-01T00:00:00Z"},
            "empty data range",
        ),
        ("get_backtest", {"run_id": "bt_nope"}, "no backtest run 'bt_nope'"),
        ("compare_runs", {"run_ids": ["bt_one"]}, "run_ids"),
        ("optimize_strategy", {"strategy": "sma_cross", "symbol": "BTC/USD", "trials": 0}, "trials"),
        (
            "optimize_strategy",
            {"strategy": "sma_cross", "symbol": "BTC/USD", "objectives": ["sharp"]},
            "unknown metric 'sharp'",
        ),
        ("optimize_strategy", {"strategy": "buy_and_hold", "symbol": "BTC/USD"}, "no free parameters"),
        ("compute_indicators", {"symbol": "BTC/USD", "indicators": ["vwap"]}, "unknown indicator 'vwap'"),
        ("compute_indicators", {"symbol": "BTC/USD", "indicators": ["sma:0"]}, "parameter 'window'"),
        ("compute_indicators", {"symbol": "BTC/USD", "indicators": ["rsi"], "window": 501}, "window"),
    ],
)
async def test_bad_research_input_is_a_clear_tool_error(
    mcp_api: tuple[str, Runtime], trader_token: str, tool: str, args: dict[str, Any], expected: str
) -> None:
    url, _ = mcp_api
    async with session(url, trader_token) as s:
        result = await s.call_tool(tool, args)
    assert result.isError
    text = " ".join(c.text for c in result.content if hasattr(c, "text"))
    assert expected in text
    assert "Traceback" not in text


async def test_a_viewer_cannot_run_backtests(mcp_api: tuple[str, Runtime], viewer_token: str) -> None:
    url, _ = mcp_api
    async with session(url, viewer_token) as s:
        result = await s.call_tool("run_backtest", {"strategy": "sma_cross", "symbol": "BTC/USD"})
    assert result.isError and "needs trader" in result.content[0].text  # type: ignore[union-attr]
