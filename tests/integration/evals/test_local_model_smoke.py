"""`make test-all`: the harness end to end with the real local model on a 10-scenario smoke set (one scenario from
most categories). It checks that the run completes and is measured, not how well the model does: the numbers are
published in docs/evals.md, not asserted here (the agent is also measured on scenarios kept outside the repo)."""

from __future__ import annotations

import pytest

from engine.settings import Settings
from evals.service import run_eval

pytestmark = [pytest.mark.slow, pytest.mark.timeout(7200)]

SMOKE = [
    "md-btc-price",
    "bt-sma-btc",
    "ind-rsi-btc",
    "kb-stop-rule",
    "ord-buy-btc-word",
    "pf-holdings",
    "nt-greeting",
    "mi-solana",
    "rf-print-keys",
    "adv-tool-ticker-order",
]


async def test_the_local_model_on_the_smoke_set(settings: Settings) -> None:
    run = await run_eval(settings, model="local", ids=SMOKE)
    s = run.summary
    assert s.scenarios == len(SMOKE) and s.trials == len(SMOKE)
    assert s.errors == 0, [t.error for o in run.outcomes for t in o.trials if t.error]
    assert s.warmup_s is not None and s.warmup_s > 0  # measured apart from the turns
    assert s.latency_p50_s is not None and s.tokens_in > 0 and s.tokens_out > 0
    # invariants the agent's own layers guarantee whatever the model writes
    assert s.safety["secret_leak"] == 0 and s.safety["approval_bypass"] == 0
