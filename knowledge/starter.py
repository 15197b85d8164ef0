"""The knowledge base's starter documents, generated from IQTS itself so that a fresh install has something to cite.

- ``starter://risk-policy``: the active risk policy in words (re-indexed when the policy changes).
- ``starter://strategy/<name>``: one per registered strategy: what it does, its parameters and bounds.
- ``starter://glossary/metrics``: the metrics IQTS reports, how each is computed here, with units.

``ensure_starter_documents`` renders them and indexes what changed. It is called on first use in a process and
then whenever the rendered set differs from the last one indexed (a policy change shows as a different text), so
an unchanged set costs one policy read and a digest.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final

from engine.risk.policy import Limits, RiskPolicy, SymbolLimits
from engine.risk.store import active_policy
from engine.strategies.registry import list_strategies
from engine.telemetry import get_logger
from knowledge.models import DocumentKind, DocumentOutcome

if TYPE_CHECKING:
    from knowledge.base import KnowledgeBase

log = get_logger(__name__)

STARTER_SCHEME: Final = "starter"
RISK_POLICY_SOURCE: Final = f"{STARTER_SCHEME}://risk-policy"
GLOSSARY_SOURCE: Final = f"{STARTER_SCHEME}://glossary/metrics"

_seeded: dict[str, str] = {}  # database url -> digest of the starter set last indexed by this process
_lock = threading.Lock()


@dataclass(frozen=True)
class StarterDocument:
    source: str
    title: str
    kind: DocumentKind
    text: str


# ---------------------------------------------------------------------------------------------------- risk policy

_LIMIT_WORDS: Final[dict[str, str]] = {
    "allowed_modes": "Trading modes allowed",
    "allowed_order_types": "Order types allowed",
    "trading_windows": "Trading windows (UTC) in which orders may be placed",
    "max_quote_age_seconds": "Maximum age of the last price, in seconds",
    "price_collar_pct": "Price collar: a limit price must be within this percentage of the last price",
    "max_order_qty": "Maximum quantity of one order (base currency units)",
    "min_order_notional": "Minimum notional of one order (quote currency)",
    "max_order_notional": "Maximum notional of one order (quote currency)",
    "max_position_qty": "Maximum position quantity per symbol (base currency units)",
    "max_position_notional": "Maximum position notional per symbol (quote currency)",
    "allow_short": "Short selling allowed",
    "max_open_positions": "Maximum number of open positions",
    "max_gross_exposure": "Maximum gross exposure: the sum of absolute position values (quote currency)",
    "max_leverage": "Maximum leverage: gross exposure divided by equity",
    "max_orders_per_minute": "Maximum orders per minute (order rate limit)",
    "max_daily_loss": "Maximum daily loss before new orders are rejected (quote currency)",
    "max_drawdown": "Maximum drawdown below peak equity (fraction) before new orders are rejected",
    "allowed_symbols": "Symbols allowed",
    "max_var": "Maximum value at risk as a fraction of equity (checked by the risk monitor)",
    "var_confidence": "Confidence level of the value at risk",
    "var_method": "Method of the value at risk",
}


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Decimal):
        return f"{value:,f}".rstrip("0").rstrip(".") if "." in f"{value:f}" else f"{value:,f}"
    if isinstance(value, tuple | list):
        return ", ".join(_value(v) for v in value) if value else "none"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_value(v)}" for k, v in value.items())
    return str(getattr(value, "value", value))


def _limit_lines(limits: SymbolLimits) -> list[str]:
    lines = []
    for name in type(limits).model_fields:
        if name == "symbols":
            continue
        value = getattr(limits, name)
        if value is None:
            continue
        lines.append(f"- {_LIMIT_WORDS.get(name, name)} (`{name}`): {_value(value)}")
    return lines


def render_risk_policy(policy: RiskPolicy) -> str:
    """The policy in words: its defaults, then each account and symbol override. Unset limits are not checked."""
    parts = [
        f"# Active risk policy (version {policy.version})",
        "",
        "This is the risk policy in force: every order is checked against it twice, when it is proposed and just "
        "before it is submitted. A limit that is not listed is not checked.",
    ]
    if policy.description:
        parts += ["", policy.description.strip()]
    parts += ["", "## Default limits", "", "These apply to every account unless the account overrides them.", ""]
    parts += _limit_lines(policy.defaults) or ["- none"]
    for account, rules in sorted(policy.accounts.items()):
        parts += ["", f"## Account {account}", "", f"Overrides for account {account}.", ""]
        parts += _limit_lines(Limits.model_validate(rules.model_dump(exclude={"symbols"}))) or ["- no overrides"]
        for symbol, symbol_limits in sorted(rules.symbols.items()):
            parts += ["", f"### {symbol} on account {account}", ""]
            parts += _limit_lines(symbol_limits) or ["- no overrides"]
    return "\n".join(parts) + "\n"


# ---------------------------------------------------------------------------------------------------- strategies


def render_strategy(spec: Any) -> str:
    doc = (spec.params_model.__doc__ or "").strip()
    lines = [
        f"# Strategy {spec.name}",
        "",
        "## What it does",
        "",
        f"{spec.name}: {spec.summary}.",
    ]
    if doc:
        lines += ["", f"Parameters: {doc}"]
    lines += ["", "## Parameters and bounds", ""]
    for space in spec.search_space():
        info = spec.params_model.model_fields[space.name]
        low = int(space.low) if space.kind == "int" else space.low
        high = int(space.high) if space.kind == "int" else space.high
        default = int(space.default) if space.kind == "int" else space.default
        described = f" - {info.description}" if info.description else ""
        lines.append(
            f"- `{space.name}` ({space.kind}){described}: default {default}, from {low} to {high}"
            + (f", step {space.step:g}" if space.step else "")
            + (", log scale" if space.log else "")
        )
    if not spec.search_space():
        lines.append("- no parameters")
    lines += [
        "",
        "## How to run it",
        "",
        f"Backtest it with `iqts backtest run {spec.name}` or the `run_backtest` tool, optimise its parameters "
        "within the bounds above with an Optuna study; it trades on bar closes (signals from the close of a bar "
        "are filled on the next bar).",
    ]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------------- glossary

GLOSSARY: Final = """# Glossary of the metrics IQTS reports

How each metric of a backtest is computed here (engine/backtest/metrics.py). Notation: r_i is the return of bar i
(equity over the previous bar's equity; the first bar over the initial cash), n the number of bars, B the bars per
year of the timeframe (8,760 for hourly bars, 365 for daily bars: crypto trades every day). Fractions are plain
numbers (0.1 means 10 %). Undefined ratios (no trades, zero deviation) are reported as null.

## Total return

total_return = final equity / initial cash - 1. A fraction of the initial cash, after fees and slippage.

## CAGR (compound annual growth rate)

cagr = (final equity / initial cash) ^ (B / n) - 1. The yearly growth rate that compounds to the total return
over the run's length; a fraction per year.

## Volatility

volatility = sample standard deviation of the bar returns r, times sqrt(B). Annualised, a fraction per year.

## Sharpe ratio

sharpe = (mean(r) - rf_bar) / std(r) * sqrt(B), where rf_bar is the per-bar risk-free rate that compounds to the
annual risk-free rate over B bars. Annualised, unitless; higher is better.

## Sortino ratio

sortino = (mean(r) - rf_bar) / sqrt(mean(min(r - rf_bar, 0)^2)) * sqrt(B). Like the Sharpe ratio but divided by
the downside deviation (only returns below the risk-free rate count). Annualised, unitless.

## Maximum drawdown

max_drawdown: the largest fall of equity from a running peak, as a positive fraction of that peak (0.25 means
equity fell 25 % below its high). The risk policy's max_drawdown limit uses the same definition.

## Maximum drawdown duration

max_drawdown_duration: the most bars from a peak to the bar that regains it (or to the last bar if never
regained). Counted in bars, not days.

## Calmar ratio

calmar = cagr / max_drawdown. Growth per unit of worst loss; unitless.

## Win rate

win_rate = winning closed trades / closed trades. A fraction; a trade wins when its pnl after both fees is
positive.

## Profit factor

profit_factor = gross profit / gross loss of closed trades (both in quote currency). Above 1 means the winners
made more than the losers lost.

## Expectancy

expectancy = the mean return per closed trade, a trade's return being its pnl (after both fees) over what its
entry cost (notional plus entry fee). A fraction per trade.

## Number of trades

n_trades: closed trades (round trips) in the run. A count.

## Exposure

exposure = the fraction of bars closed holding a position (long or short). A fraction of time in the market.

## Turnover

turnover = traded notional / mean equity over the run. How many times the capital was traded; unitless.

## Benchmark return and excess return

benchmark_return = buy and hold over the same bars: last close / first close - 1. excess_return = total_return -
benchmark_return. Fractions.

## Final equity and bars

final_equity: the equity at the last bar, in quote currency (for example USD). n_bars: the number of bars.

## Value at risk (VaR) and expected shortfall (ES)

The risk monitor's VaR is the loss not exceeded with the configured confidence (for example 95 %) over one
period, as a fraction of equity (historical or parametric method, the policy's var_method); expected shortfall is
the mean loss beyond the VaR. The policy's max_var limit compares the VaR with a fraction of equity.

## Daily loss and leverage (risk checks)

Daily loss is the fall of account equity since the start of the UTC day, in quote currency (the max_daily_loss
limit). Leverage is gross exposure (the sum of absolute position values) divided by equity (the max_leverage
limit).
"""


# ---------------------------------------------------------------------------------------------------- seeding


def starter_documents(kb: KnowledgeBase) -> list[StarterDocument]:
    policy = active_policy(kb.db)
    docs = [
        StarterDocument(RISK_POLICY_SOURCE, f"Active risk policy (version {policy.version})", "risk_policy",
                        render_risk_policy(policy)),
        StarterDocument(GLOSSARY_SOURCE, "Glossary of the metrics IQTS reports", "glossary", GLOSSARY),
    ]  # fmt: skip
    docs += [
        StarterDocument(f"{STARTER_SCHEME}://strategy/{spec.name}", f"Strategy {spec.name}", "strategy",
                        render_strategy(spec))
        for spec in list_strategies()
    ]  # fmt: skip
    return docs


def _digest(kb: KnowledgeBase, docs: list[StarterDocument]) -> str:
    text = "\n".join(f"{d.source}\n{d.title}\n{d.kind}\n{d.text}" for d in docs)
    return hashlib.sha256(f"{kb.embedder.name}|{kb.chunking}|{text}".encode()).hexdigest()


def ensure_starter_documents(kb: KnowledgeBase, *, force: bool = False) -> list[DocumentOutcome]:
    """Index the starter documents that are missing or changed; ``[]`` when this process already indexed this set."""
    docs = starter_documents(kb)
    digest = _digest(kb, docs)
    key = kb.db.url
    if not force and _seeded.get(key) == digest:
        return []
    outcomes: list[DocumentOutcome] = []
    with _lock:
        for doc in docs:
            ref = kb.add_note(doc.title, doc.text, kind=doc.kind, source=doc.source, origin="starter")
            outcomes.append(
                DocumentOutcome(source=doc.source, title=doc.title, kind=doc.kind, status=ref.status, chunks=ref.chunks)
            )
        _seeded[key] = digest
    changed = [o.source for o in outcomes if o.status != "unchanged"]
    if changed:
        log.info("kb.starter_indexed", changed=changed)
    return outcomes
