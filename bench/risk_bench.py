"""Pre-trade risk check latency: p50/p99 of ``engine.risk.check`` over a 20-rule policy (target p99 < 50 µs).

Run: ``uv run python -m bench.risk_bench [--json] [--iterations N]``.

Each call is timed on its own with ``time.perf_counter_ns``. The garbage collector stays enabled (its pauses are
part of the p99); the objects built during setup are moved out of its way with ``gc.freeze()``, as a long-running
worker would do after start-up.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Final

from engine.execution.models import Fill, Liquidity, OrderIntent, OrderSide, OrderType
from engine.portfolio import Ledger
from engine.risk import MarketSnapshot, RiskPolicy, TradingControls, Verdict, check
from engine.telemetry import configure_logging

TARGET_P99_US: Final = 50.0
DEFAULT_ITERATIONS: Final = 50_000
WARMUP: Final = 2_000
NS_PER_US: Final = 1_000

POLICY_YAML: Final = """
version: bench-20
defaults:
  allowed_modes: [dry-run, sandbox]
  allowed_symbols: [BTC/USDT, ETH/USDT, BTC/USD, ETH/USD]
  allowed_order_types: [market, limit, stop_limit]
  trading_windows: ["mon-fri 00:00-24:00", "sat,sun 06:00-22:00"]
  max_quote_age_seconds: 30
  price_collar_pct: 5
  max_order_qty: 5
  min_order_notional: 10
  max_order_notional: 50000
  max_position_notional: 150000
  allow_short: false
  max_open_positions: 4
  max_gross_exposure: 400000
  max_leverage: 3
  max_orders_per_minute: 30
  max_daily_loss: 10000
  max_drawdown: 0.2
accounts:
  main:
    max_order_notional: 60000
    symbols:
      BTC/USDT:
        max_position_qty: 2
        price_collar_pct: 3
"""


def _setup(now: datetime) -> tuple[RiskPolicy, Any, MarketSnapshot, TradingControls, list[OrderIntent]]:
    policy = RiskPolicy.from_yaml(POLICY_YAML, source="bench policy")
    ledger = Ledger()
    ledger.open_account("main", cash={"USDT": Decimal(250_000)})
    fills = [
        ("BTC/USDT", OrderSide.BUY, Decimal("0.8"), Decimal(60_000)),
        ("ETH/USDT", OrderSide.BUY, Decimal(10), Decimal(3_000)),
    ]
    for i, (symbol, side, qty, price) in enumerate(fills):
        fill = Fill(
            order_id=f"bench-{i}",
            symbol=symbol,
            side=side,
            quantity=qty,
            price=price,
            fee=qty * price / 1000,
            fee_currency="USDT",
            ts=now - timedelta(hours=1),
            liquidity=Liquidity.TAKER,
        )
        ledger.apply_fill(fill, "main", "bench")
    for seconds in (50, 40, 20, 5):
        ledger.record_order("main", "BTC/USDT", now - timedelta(seconds=seconds))
    prices = {"BTC/USDT": Decimal("61234.5"), "ETH/USDT": Decimal("3050.25")}
    portfolio = ledger.snapshot(prices, now)
    market = MarketSnapshot(
        last_prices=prices,
        price_times={symbol: now - timedelta(seconds=2) for symbol in prices},
    )
    controls = TradingControls(kill_switch_engaged=False)
    orders = [
        OrderIntent(
            account="main",
            symbol="BTC/USDT",
            side=OrderSide.BUY,
            type=OrderType.LIMIT,
            quantity=Decimal("0.25"),
            price=Decimal("61000"),
        ),
        OrderIntent(
            account="main", symbol="BTC/USDT", side=OrderSide.SELL, type=OrderType.MARKET, quantity=Decimal("0.3")
        ),
        OrderIntent(
            account="main",
            symbol="ETH/USDT",
            side=OrderSide.BUY,
            type=OrderType.STOP_LIMIT,
            quantity=Decimal(2),
            price=Decimal("3100"),
            stop_price=Decimal("3080"),
        ),
        # rejected by several rules at once (notional, collar, position qty)
        OrderIntent(
            account="main",
            symbol="BTC/USDT",
            side=OrderSide.BUY,
            type=OrderType.LIMIT,
            quantity=Decimal(3),
            price=Decimal("70000"),
        ),
    ]
    return policy, portfolio, market, controls, orders


def _percentile(sorted_ns: list[int], fraction: float) -> float:
    index = min(len(sorted_ns) - 1, int(fraction * len(sorted_ns)))
    return sorted_ns[index] / NS_PER_US


def run_risk_bench(iterations: int = DEFAULT_ITERATIONS) -> list[dict[str, Any]]:
    """Time ``check`` per call; one row per order kind and one over all of them."""
    now = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)  # a Wednesday, inside the trading windows
    policy, portfolio, market, controls, orders = _setup(now)
    verdicts: list[Verdict] = []
    for order in orders:  # compile and warm up every (account, symbol)
        verdicts.append(check(order, portfolio, market, policy=policy, controls=controls, now=now))
    for i in range(WARMUP):
        check(orders[i % len(orders)], portfolio, market, policy=policy, controls=controls, now=now)
    rule_count = max(len(v.results) for v in verdicts)
    gc.collect()
    gc.freeze()
    samples: list[list[int]] = [[] for _ in orders]
    clock = time.perf_counter_ns
    try:
        for i in range(iterations):
            k = i % len(orders)
            order = orders[k]
            start = clock()
            check(order, portfolio, market, policy=policy, controls=controls, now=now)
            samples[k].append(clock() - start)
    finally:
        gc.unfreeze()

    def row(name: str, ns: list[int], rules: int, allowed: bool | None) -> dict[str, Any]:
        ordered = sorted(ns)
        p99 = _percentile(ordered, 0.99)
        return {
            "bench": "risk.check",
            "case": name,
            "rules": rules,
            "allowed": allowed,
            "iterations": len(ordered),
            "mean_us": round(statistics.fmean(ordered) / NS_PER_US, 2),
            "p50_us": round(_percentile(ordered, 0.50), 2),
            "p90_us": round(_percentile(ordered, 0.90), 2),
            "p99_us": round(p99, 2),
            "p999_us": round(_percentile(ordered, 0.999), 2),
            "max_us": round(ordered[-1] / NS_PER_US, 2),
            "target_p99_us": TARGET_P99_US,
            "ratio_to_target": round(p99 / TARGET_P99_US, 3),
            "meets_target": p99 < TARGET_P99_US,
        }

    rows = [
        row(f"{o.side.value} {o.type.value} {o.symbol}", s, len(v.results), v.allowed)
        for o, s, v in zip(orders, samples, verdicts, strict=True)
    ]
    rows.append(row("all orders", [ns for s in samples for ns in s], rule_count, None))
    return rows


def _print_table(rows: list[dict[str, Any]]) -> None:
    header = (
        f"{'case':36} {'rules':>5} {'verdict':>8} {'p50 µs':>8} {'p90 µs':>8} {'p99 µs':>8} {'max µs':>9} "
        f"{'p99/target':>10}"
    )
    print("risk.check latency (target: p99 < 50 µs for a 20-rule policy)")
    print(header)
    print("-" * len(header))
    for r in rows:
        verdict = "-" if r["allowed"] is None else ("allowed" if r["allowed"] else "rejected")
        mark = "ok" if r["meets_target"] else "MISSED"
        print(
            f"{r['case']:36} {r['rules']:>5} {verdict:>8} {r['p50_us']:>8.2f} {r['p90_us']:>8.2f} "
            f"{r['p99_us']:>8.2f} {r['max_us']:>9.2f} {r['ratio_to_target']:>9.2f}x {mark}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    parser.add_argument("--iterations", type=int, default=DEFAULT_ITERATIONS)
    args = parser.parse_args(argv)
    configure_logging(level="WARNING")  # keep stdout for the figures
    rows = run_risk_bench(args.iterations)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        _print_table(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
