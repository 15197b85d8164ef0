"""MCP prompts: a few research workflows a client can start from."""

from __future__ import annotations

from typing import Any

from mcp.server.fastmcp import FastMCP


def register(server: FastMCP[Any]) -> None:
    @server.prompt(name="research-strategy", title="Research a strategy on a symbol")
    def research_strategy(strategy: str = "sma_cross", symbol: str = "BTC/USD", timeframe: str = "1h") -> str:
        """Backtest, optimise with walk-forward validation, and compare with buy-and-hold."""
        return (
            f"Research the {strategy} strategy on {symbol} {timeframe}. 1) data_coverage for {symbol} to check the "
            f"history. 2) run_backtest with default parameters and buy_and_hold as benchmark; compare_runs. "
            f"3) walk_forward to optimise out of sample; report in-sample vs out-of-sample degradation and the "
            f"deflated Sharpe ratio. 4) search_knowledge for my notes on {strategy}. Cite run ids and notes. "
            f"Do not propose any order."
        )

    @server.prompt(name="pre-trade-review", title="Review an order before proposing it")
    def pre_trade_review(symbol: str = "BTC/USD", side: str = "buy", quantity: str = "0.01") -> str:
        """Check an order against risk and context, then propose it for human approval."""
        return (
            f"I want to {side} {quantity} {symbol}. 1) get_ticker and get_portfolio. 2) check_order and explain each "
            f"failing rule. 3) search_knowledge for my risk policy notes. 4) If every rule passes, propose_order with "
            f"a short rationale citing figures from the tool results only, and give me the inbox link."
        )

    @server.prompt(name="risk-check-in", title="Daily risk check-in")
    def risk_check_in() -> str:
        """Portfolio, risk measures, open approvals."""
        return (
            "Give me today's risk picture: get_portfolio, get_risk_status (kill switch, breakers, VaR/ES), "
            "list_approvals with status pending. Flag anything near a limit."
        )
