"""Research on top of the backtest engine: stored, reproducible runs; Optuna studies shared through PostgreSQL;
walk-forward validation; overfitting guards; indicators; HTML reports.

- :mod:`engine.research.service`: one function per use case (backtest, optimise, walk-forward, list/compare
  runs, indicators) with pydantic requests and results: what the MCP tools, the CLI, the chat and REST call
- :mod:`engine.research.runs`: ``save_run``, ``get_run``, ``recent_runs``, ``reproduce`` (bit-identical check)
- :mod:`engine.research.backtests`: ``backtest`` (stored data in, stored run out)
- :mod:`engine.research.optimize`: ``optimize``, ``create_study``, ``run_study`` (workers), ``finish_study``
- :mod:`engine.research.walkforward`: ``walk_forward``, ``optimize_with_walk_forward``
- :mod:`engine.research.guards`: probabilistic and deflated Sharpe ratios, probability of backtest overfitting
- :mod:`engine.research.indicators`: SMA, EMA, RSI, Bollinger, MACD, Donchian, ATR, returns, volatility
- :mod:`engine.research.report`: the self-contained HTML report of a run

Modules are imported by name (nothing here): listing runs must not load Optuna or numba.
"""
