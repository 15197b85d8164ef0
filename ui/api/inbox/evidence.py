"""What the inbox shows of the evidence a requester linked (backtest and study ids, notes, URLs).

``evidence_summary`` gives the key figures of a linked backtest run or study (total return, Sharpe, max
drawdown, trades...) as a flat ``{label: text}`` dict, shown under the evidence link; None for other kinds.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import BaseModel

from approvals.service import Evidence
from engine.store.database import Database


class EvidenceView(BaseModel):
    kind: str
    ref: str
    label: str | None
    href: str | None  # a link the page may follow (http(s) URLs only)
    summary: dict[str, str] | None


def evidence_summary(evidence: Evidence, db: Database | None = None) -> dict[str, str] | None:
    """Key figures of a linked backtest run or study (None without a database, for other kinds, or when the id
    names nothing stored: the page then shows the bare reference)."""
    if evidence.kind not in ("backtest", "study") or db is None:
        return None
    import math

    from engine.errors import NotFoundError

    def pct(value: float | None) -> str:
        return "-" if value is None or not math.isfinite(value) else f"{value:+.2%}"

    def num(value: float | None) -> str:
        return "-" if value is None or not math.isfinite(value) else f"{value:.2f}"

    try:
        if evidence.kind == "backtest":
            from engine.research.runs import get_run

            run = get_run(db, evidence.ref)
            m = run.metrics
            return {
                "strategy": f"{run.strategy} ({', '.join(f'{k}={v}' for k, v in run.params.items()) or 'defaults'})",
                "data": f"{run.symbol} {run.timeframe} {run.start:%Y-%m-%d} .. {run.end:%Y-%m-%d}",
                "total return": pct(m.total_return),
                "buy and hold": pct(m.benchmark_return),
                "Sharpe": num(m.sharpe),
                "max drawdown": f"{m.max_drawdown:.2%}",
                "trades": str(m.n_trades),
                "win rate": "-" if not math.isfinite(m.win_rate) else f"{m.win_rate:.0%}",
            }
        from engine.research.studies import get_study

        study = get_study(db, evidence.ref)
        summary = {
            "strategy": f"{study.strategy} on {study.symbol} {study.timeframe}",
            "objective": ", ".join(str(o) for o in study.objectives),
            "status": f"{study.status}, {study.n_trials} trials",
            "best": ", ".join(f"{k}={v}" for k, v in (study.best_params or {}).items()) or "-",
            "best value": num(study.best_value),
        }
        guards = (study.report or {}).get("overfitting") or {}
        if guards.get("dsr") is not None:
            summary["deflated Sharpe"] = num(guards["dsr"])
        wf = study.walk_forward or {}
        pbo = guards.get("pbo") if guards.get("pbo") is not None else wf.get("mean_pbo")
        if pbo is not None:
            summary["probability of backtest overfitting"] = f"{pbo:.0%}"
        if wf.get("mean_oos_sharpe") is not None or wf.get("mean_is_sharpe") is not None:
            summary["walk-forward Sharpe IS / OOS"] = (
                f"{num(wf.get('mean_is_sharpe'))} / {num(wf.get('mean_oos_sharpe'))}"
            )
        return summary
    except NotFoundError:
        return None


def evidence_href(evidence: Evidence) -> str | None:
    """Where the link points: only http(s) URLs given as ``url`` evidence (never javascript: or data:)."""
    if evidence.kind != "url":
        return None
    parts = urlsplit(evidence.ref)
    return evidence.ref if parts.scheme in ("http", "https") and parts.netloc else None


def evidence_views(items: list[Evidence], db: Database | None = None) -> list[EvidenceView]:
    return [
        EvidenceView(kind=e.kind, ref=e.ref, label=e.label, href=evidence_href(e), summary=evidence_summary(e, db))
        for e in items
    ]
