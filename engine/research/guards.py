"""Overfitting guards: the probabilistic and deflated Sharpe ratios (Bailey & López de Prado).

Selecting the best of N backtests inflates its Sharpe ratio: even with no skill, the expected maximum of N
Sharpe estimates grows with N and with their dispersion. The deflated Sharpe ratio (DSR) is the probability
that the true Sharpe ratio exceeds that expected maximum, given the track record's length, skewness and
kurtosis:

- expected maximum (False Strategy theorem): ``SR0 = sqrt(V) * ((1 - g) * Z(1 - 1/N) + g * Z(1 - 1/(N e)))``
  with ``V`` the variance of the N trials' Sharpe estimates, ``g`` the Euler-Mascheroni constant and ``Z`` the
  standard normal quantile;
- probabilistic Sharpe ratio: ``PSR(SR0) = Phi((SR - SR0) * sqrt(T - 1) / sqrt(1 - s * SR + (k - 1) / 4 * SR^2))``
  with ``T`` returns of skewness ``s`` and (non-excess) kurtosis ``k``;
- ``DSR = PSR(SR0)``.

Sharpe ratios here are per bar (not annualised), as in the paper: annualised figures are divided by
``sqrt(bars per year)`` first. Reference: Bailey, D. H. and López de Prado, M. (2014), "The Deflated Sharpe
Ratio: Correcting for Selection Bias, Backtest Overfitting and Non-Normality", Journal of Portfolio Management
40 (5), 94-107. ``N`` counts every trial tried (infeasible, pruned and failed ones too: each was a look at the
data), the variance is taken over the trials that produced a Sharpe ratio.

The probability of backtest overfitting (PBO) is estimated by combinatorially symmetric cross-validation
(CSCV): the bars are cut into ``S`` blocks; for every way of choosing ``S/2`` of them as in-sample, the
configuration with the best in-sample Sharpe ratio is ranked among all configurations out of sample (the other
blocks); PBO is the share of splits where that rank is at or below the median (logit <= 0). Near 0: the
in-sample winner keeps winning; near 0.5 or above: selection is no better than chance. Reference: Bailey, D. H.,
Borwein, J., López de Prado, M. and Zhu, Q. J. (2015), "The Probability of Backtest Overfitting", Journal of
Computational Finance 20 (4), 39-69.
"""

from __future__ import annotations

import itertools
import math
from statistics import NormalDist

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, Field

EULER_GAMMA = 0.5772156649015329
_NORMAL = NormalDist()
DSR_THRESHOLD = 0.95
"""A selected strategy whose DSR is below this is flagged: its Sharpe ratio may be luck of the draw."""
PBO_THRESHOLD = 0.5
"""A selection whose PBO is above this is flagged: its in-sample winner is more often than not below the median
out of sample."""
PBO_BLOCKS = 16
"""CSCV blocks (C(16, 8) = 12,870 splits)."""


def expected_max_sharpe(n_trials: int, variance: float) -> float:
    """The expected maximum Sharpe ratio of ``n_trials`` unskilled trials whose estimates have ``variance``
    (same units as the variance's square root); 0 for a single trial (no selection)."""
    if n_trials <= 1 or variance <= 0.0:
        return 0.0
    z1 = _NORMAL.inv_cdf(1.0 - 1.0 / n_trials)
    z2 = _NORMAL.inv_cdf(1.0 - 1.0 / (n_trials * math.e))
    return math.sqrt(variance) * ((1.0 - EULER_GAMMA) * z1 + EULER_GAMMA * z2)


def probabilistic_sharpe_ratio(
    sharpe: float, benchmark: float, n_obs: int, skew: float = 0.0, kurtosis: float = 3.0
) -> float:
    """P(true Sharpe > ``benchmark``) for a per-bar Sharpe estimated from ``n_obs`` returns with the given
    skewness and (non-excess) kurtosis. NaN when undefined (too few returns, a non-positive variance term)."""
    if n_obs < 2 or not math.isfinite(sharpe):
        return math.nan
    denominator = 1.0 - skew * sharpe + (kurtosis - 1.0) / 4.0 * sharpe * sharpe
    if denominator <= 0.0:
        return math.nan
    return _NORMAL.cdf((sharpe - benchmark) * math.sqrt(n_obs - 1) / math.sqrt(denominator))


def deflated_sharpe_ratio(
    sharpe: float, n_trials: int, trials_variance: float, n_obs: int, skew: float = 0.0, kurtosis: float = 3.0
) -> float:
    """The DSR of a per-bar Sharpe selected as the best of ``n_trials`` whose per-bar Sharpe estimates have
    variance ``trials_variance``."""
    return probabilistic_sharpe_ratio(sharpe, expected_max_sharpe(n_trials, trials_variance), n_obs, skew, kurtosis)


def return_moments(returns: npt.ArrayLike) -> tuple[float, float]:
    """Skewness and (non-excess) kurtosis of a return series (population moments; 0 and 3 if constant)."""
    r = np.asarray(returns, dtype=np.float64)
    r = r[np.isfinite(r)]
    if len(r) < 2:
        return 0.0, 3.0
    centred = r - r.mean()
    var = float(np.mean(centred**2))
    if var <= 0.0:
        return 0.0, 3.0
    skew = float(np.mean(centred**3)) / var**1.5
    kurt = float(np.mean(centred**4)) / var**2
    return skew, kurt


def bar_returns(equity: npt.ArrayLike, initial_cash: float) -> npt.NDArray[np.float64]:
    """Per-bar returns of an equity curve (the first bar against the initial cash), as the metrics define them."""
    eq = np.asarray(equity, dtype=np.float64)
    previous = np.r_[initial_cash, eq[:-1]]
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(previous > 0.0, eq / previous - 1.0, 0.0)
    return np.asarray(out, dtype=np.float64)


class OverfittingReport(BaseModel):
    """How much of the selected trial's Sharpe ratio survives the selection (annualised figures unless named)."""

    n_trials: int = Field(description="trials tried for the selection (every state: feasible or not, pruned, failed)")
    n_obs: int = Field(description="returns in the selected trial's track record")
    sharpe: float | None = Field(description="the selected trial's annualised Sharpe ratio")
    trials_sharpe_std: float | None = Field(description="dispersion of the trials' annualised Sharpe ratios")
    expected_max_sharpe: float | None = Field(
        description="annualised Sharpe ratio the best of n_trials unskilled trials would show on average"
    )
    skew: float = Field(description="skewness of the selected trial's bar returns")
    kurtosis: float = Field(description="kurtosis (not excess) of the selected trial's bar returns")
    psr: float | None = Field(description="probabilistic Sharpe ratio: P(true Sharpe > 0)")
    dsr: float | None = Field(description="deflated Sharpe ratio: P(true Sharpe > expected max of the trials)")
    pbo: float | None = Field(None, description="probability of backtest overfitting (CSCV) of the selection")
    pbo_configs: int = Field(0, description="configurations the PBO was estimated over")
    warnings: list[str] = Field(default_factory=list)


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def overfitting_report(
    selected_sharpe: float,
    trial_sharpes: npt.ArrayLike,
    returns: npt.ArrayLike,
    bars_per_year: float,
    *,
    n_tried: int | None = None,
    config_returns: npt.ArrayLike | None = None,
) -> OverfittingReport:
    """Guards for a selection: ``selected_sharpe`` and ``trial_sharpes`` annualised (NaN trials are ignored),
    ``returns`` the selected trial's bar returns; ``n_tried`` every trial tried (default: the finite Sharpes);
    ``config_returns`` (bars x configurations) adds the PBO."""
    sharpes = np.asarray(trial_sharpes, dtype=np.float64)
    sharpes = sharpes[np.isfinite(sharpes)]
    r = np.asarray(returns, dtype=np.float64)
    n_trials = max(len(sharpes), n_tried or 0, 1)
    scale = math.sqrt(bars_per_year)
    variance = float(np.var(sharpes, ddof=1)) / bars_per_year if len(sharpes) > 1 else 0.0
    skew, kurt = return_moments(r)
    sr = selected_sharpe / scale if math.isfinite(selected_sharpe) else math.nan
    sr0 = expected_max_sharpe(n_trials, variance)
    psr = probabilistic_sharpe_ratio(sr, 0.0, len(r), skew, kurt)
    dsr = probabilistic_sharpe_ratio(sr, sr0, len(r), skew, kurt)
    warnings = []
    if math.isfinite(dsr) and dsr < DSR_THRESHOLD:
        warnings.append(
            f"deflated Sharpe ratio {dsr:.2f} < {DSR_THRESHOLD}: after {n_trials} trials the best Sharpe "
            f"({selected_sharpe:.2f}) is not clearly above what luck alone would give ({sr0 * scale:.2f})"
        )
    if not math.isfinite(dsr):
        warnings.append("deflated Sharpe ratio undefined (too few returns or no trades)")
    pbo, n_configs = math.nan, 0
    if config_returns is not None:
        matrix = np.asarray(config_returns, dtype=np.float64)
        n_configs = matrix.shape[1] if matrix.ndim == 2 else 0
        pbo = probability_of_backtest_overfitting(matrix)
    if math.isfinite(pbo) and pbo > PBO_THRESHOLD:
        warnings.append(
            f"probability of backtest overfitting {pbo:.2f} > {PBO_THRESHOLD}: over {n_configs} configurations the "
            "in-sample winner ranks below the median out of sample more often than not"
        )
    return OverfittingReport(
        n_trials=n_trials,
        n_obs=len(r),
        sharpe=_finite(selected_sharpe),
        trials_sharpe_std=_finite(math.sqrt(variance) * scale) if len(sharpes) > 1 else None,
        expected_max_sharpe=_finite(sr0 * scale),
        skew=skew,
        kurtosis=kurt,
        psr=_finite(psr),
        dsr=_finite(dsr),
        pbo=_finite(pbo),
        pbo_configs=n_configs,
        warnings=warnings,
    )


def _block_sharpes(
    sums: npt.NDArray[np.float64], squares: npt.NDArray[np.float64], counts: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    mean = sums / counts[:, None]
    var = np.maximum(squares / counts[:, None] - mean * mean, 0.0)
    std = np.sqrt(var)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(std > 0.0, mean / std, 0.0)
    return np.asarray(out, dtype=np.float64)


def probability_of_backtest_overfitting(returns: npt.ArrayLike, n_blocks: int = PBO_BLOCKS) -> float:
    """PBO by CSCV of choosing the best Sharpe ratio among the columns of ``returns`` (bars x configurations).

    NaN with fewer than two configurations or fewer than two bars per block. ``n_blocks`` is made even."""
    r = np.nan_to_num(np.asarray(returns, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    if r.ndim != 2 or r.shape[1] < 2:
        return math.nan
    n_bars, n_configs = r.shape
    blocks = n_blocks - n_blocks % 2
    if blocks < 2 or n_bars < 2 * blocks:
        return math.nan
    parts = np.array_split(np.arange(n_bars), blocks)
    sums = np.stack([r[p].sum(axis=0) for p in parts])  # blocks x configs
    squares = np.stack([(r[p] ** 2).sum(axis=0) for p in parts])
    lengths = np.array([len(p) for p in parts], dtype=np.float64)
    splits = np.array(
        [[b in chosen for b in range(blocks)] for chosen in itertools.combinations(range(blocks), blocks // 2)],
        dtype=np.float64,
    )  # splits x blocks: 1 = in sample
    outside = 1.0 - splits
    is_sharpe = _block_sharpes(splits @ sums, splits @ squares, splits @ lengths)
    oos_sharpe = _block_sharpes(outside @ sums, outside @ squares, outside @ lengths)
    best = np.argmax(is_sharpe, axis=1)
    chosen = oos_sharpe[np.arange(len(best)), best]
    below = (oos_sharpe < chosen[:, None]).sum(axis=1)
    ties = (oos_sharpe == chosen[:, None]).sum(axis=1)
    omega = (below + (ties + 1) / 2.0) / (n_configs + 1)  # the winner's relative OOS rank, ties averaged
    logits = np.log(omega / (1.0 - omega))
    return float(np.mean(logits <= 0.0))
