"""The risk benchmark runs and reports what it measured (timings themselves are not asserted: machines differ)."""

from __future__ import annotations

from bench.risk_bench import TARGET_P99_US, run_risk_bench


def test_the_bench_reports_percentiles_over_a_twenty_rule_policy() -> None:
    rows = run_risk_bench(iterations=400)
    overall = rows[-1]
    assert overall["case"] == "all orders"
    assert overall["rules"] == 20
    assert overall["iterations"] == 400
    assert 0 < overall["p50_us"] <= overall["p99_us"] <= overall["max_us"]
    assert overall["target_p99_us"] == TARGET_P99_US
    assert {r["allowed"] for r in rows[:-1]} == {True, False}
