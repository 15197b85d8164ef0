"""Overfitting guards on hand-checked numbers (Bailey & López de Prado 2014, section 'A numerical example')."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.research.guards import (
    deflated_sharpe_ratio,
    expected_max_sharpe,
    overfitting_report,
    probabilistic_sharpe_ratio,
    probability_of_backtest_overfitting,
    return_moments,
)


def test_the_papers_numerical_example() -> None:
    # 100 trials, annualised Sharpe variance 0.5, best annualised Sharpe 2.5, 5 years of daily returns (1,250),
    # skewness -3, kurtosis 10. The paper: SR0 = 0.1132 per day, DSR = 0.9004.
    per_day = math.sqrt(250)
    sr0 = expected_max_sharpe(100, 0.5 / 250)
    assert sr0 == pytest.approx(0.1132, abs=5e-5)
    # by hand: sqrt(0.5/250) * ((1 - 0.5772) * Z(0.99) + 0.5772 * Z(1 - 1/(100 e))) = 0.04472 * 2.5307
    assert sr0 == pytest.approx(math.sqrt(0.5 / 250) * (0.42278 * 2.32635 + 0.57722 * 2.68021), rel=1e-4)
    dsr = deflated_sharpe_ratio(2.5 / per_day, 100, 0.5 / 250, 1250, skew=-3.0, kurtosis=10.0)
    assert dsr == pytest.approx(0.9004, abs=5e-4)


def test_psr_and_expected_maximum_behave() -> None:
    assert probabilistic_sharpe_ratio(0.1, 0.1, 500) == pytest.approx(0.5)
    # normal returns: Phi(SR * sqrt(T - 1) / sqrt(1 + SR^2 / 2)) = Phi(0.1 * sqrt(99) / sqrt(1.005)) = Phi(0.99247)
    assert probabilistic_sharpe_ratio(0.1, 0.0, 100) == pytest.approx(0.83952, abs=1e-4)
    assert expected_max_sharpe(1, 0.01) == 0.0
    grows = [expected_max_sharpe(n, 0.01) for n in (2, 10, 100, 1000)]
    assert grows == sorted(grows) and grows[0] > 0
    assert math.isnan(probabilistic_sharpe_ratio(math.nan, 0.0, 100))


def test_return_moments() -> None:
    assert return_moments([0.01, -0.01, 0.01, -0.01]) == pytest.approx((0.0, 1.0))
    skew, kurt = return_moments([0.0, 0.0, 0.0, 0.3])
    # three zeros and one 0.3: mean 0.075, m2 = 0.016875, m3 = 0.002531, m4 = 0.000664
    assert skew == pytest.approx(1.1547, abs=1e-4) and kurt == pytest.approx(2.3333, abs=1e-4)
    assert return_moments([0.02, 0.02]) == (0.0, 3.0)


def test_a_lucky_selection_is_flagged() -> None:
    rng = np.random.default_rng(4)
    returns = rng.normal(0.0002, 0.01, 2_000)  # about 0.3 annualised on 8,760 bars a year: near nothing
    trials = rng.normal(0.0, 1.0, 200)
    report = overfitting_report(1.2, trials, returns, 8_760)
    assert report.n_trials == 200 and report.n_obs == 2_000
    assert report.expected_max_sharpe is not None and report.expected_max_sharpe > 2.0
    # per bar: SR = 1.2 / sqrt(8760) = 0.0128 against SR0 = 2.74 / sqrt(8760) = 0.0293 over 2,000 returns
    assert report.dsr is not None and report.dsr == pytest.approx(0.231, abs=0.01)
    assert report.warnings and "deflated Sharpe ratio" in report.warnings[0]
    single = overfitting_report(1.2, [1.2], returns, 8_760)
    assert single.expected_max_sharpe == 0.0 and single.dsr == single.psr


def test_every_trial_tried_counts_for_the_deflated_sharpe() -> None:
    rng = np.random.default_rng(4)
    returns = rng.normal(0.0002, 0.01, 2_000)
    finite = rng.normal(0.0, 1.0, 20)
    few = overfitting_report(1.2, finite, returns, 8_760)
    # 20 trials gave a Sharpe, 180 more were tried (pruned, failed, infeasible): the bar is higher
    many = overfitting_report(1.2, finite, returns, 8_760, n_tried=200)
    assert few.n_trials == 20 and many.n_trials == 200
    assert many.expected_max_sharpe is not None and few.expected_max_sharpe is not None
    assert many.expected_max_sharpe > few.expected_max_sharpe
    assert many.dsr is not None and few.dsr is not None and many.dsr < few.dsr


def test_pbo_is_near_a_half_for_noise_and_near_zero_for_a_dominant_configuration() -> None:
    noise = [
        probability_of_backtest_overfitting(np.random.default_rng(s).normal(0, 0.01, (640, 16))) for s in range(16)
    ]
    assert abs(float(np.mean(noise)) - 0.5) < 0.15  # per seed it scatters (sd about 0.2); the mean does not
    dominant = np.random.default_rng(3).normal(0, 0.01, (640, 16))
    dominant[:, 5] += 0.004  # a real edge in one configuration
    assert probability_of_backtest_overfitting(dominant) < 0.05
    # the best in sample is the worst out of sample, by construction: every split overfits
    flip = np.zeros((640, 2))
    flip[:320, 0], flip[320:, 0] = 0.01, -0.01
    flip[:, 1] = np.random.default_rng(5).normal(0, 1e-4, 640)
    assert probability_of_backtest_overfitting(flip, n_blocks=2) == 1.0
    assert math.isnan(probability_of_backtest_overfitting(np.zeros((640, 1))))


def test_the_report_carries_the_pbo_and_warns_above_a_half() -> None:
    rng = np.random.default_rng(4)
    configs = rng.normal(0, 0.01, (640, 16))
    report = overfitting_report(1.0, rng.normal(0, 1, 16), configs[:, 0], 8_760, config_returns=configs)
    assert report.pbo is not None and report.pbo_configs == 16
    assert any("probability of backtest overfitting" in w for w in report.warnings) == (report.pbo > 0.5)
