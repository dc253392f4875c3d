"""How much of a backtest's performance is selection luck: deflated Sharpe ratio and PBO.

* Bailey & López de Prado (2014), "The Deflated Sharpe Ratio: Correcting for Selection Bias,
  Backtest Overfitting and Non-Normality", Journal of Portfolio Management 40(5).
* Bailey, Borwein, López de Prado & Zhu (2017), "The Probability of Backtest Overfitting",
  Journal of Computational Finance 20(4) (combinatorially symmetric cross-validation, CSCV).

Sharpe ratios here are per observation (not annualised): ``SR_annual = SR * sqrt(periods per year)``.
Kurtosis is Pearson's (3 for a normal distribution), not the excess kurtosis.
"""

from __future__ import annotations

import itertools
import math
from statistics import NormalDist

import numpy as np
import numpy.typing as npt

#: Euler–Mascheroni constant γ.
EULER_GAMMA = 0.5772156649015329
_NORMAL = NormalDist()


def probabilistic_sharpe_ratio(
    sharpe: float, n_obs: int, skew: float = 0.0, kurtosis: float = 3.0, sharpe_benchmark: float = 0.0
) -> float:
    """P(true SR > ``sharpe_benchmark``) given an observed per-period SR over ``n_obs`` returns::

        PSR = Φ( (SR - SR*) * sqrt(T - 1) / sqrt(1 - γ3 * SR + (γ4 - 1) / 4 * SR²) )

    with γ3 the skewness and γ4 the (Pearson) kurtosis of the returns.
    """
    if n_obs < 2:
        raise ValueError(f"n_obs must be at least 2, got {n_obs}")
    variance = 1.0 - skew * sharpe + (kurtosis - 1.0) / 4.0 * sharpe * sharpe
    if not variance > 0:
        raise ValueError(f"non-positive Sharpe variance term {variance} (skew={skew}, kurtosis={kurtosis})")
    z = (sharpe - sharpe_benchmark) * math.sqrt(n_obs - 1) / math.sqrt(variance)
    return _NORMAL.cdf(z)


def expected_max_sharpe(n_trials: int, sharpe_trials_std: float) -> float:
    """Expected maximum of ``n_trials`` independent Sharpe estimates with true SR 0 and standard
    deviation ``sharpe_trials_std`` (the "false strategy" theorem)::

        SR0 = σ_SR * ((1 - γ) * Φ⁻¹(1 - 1/N) + γ * Φ⁻¹(1 - 1/(N e)))

    ``γ`` is the Euler–Mascheroni constant; one trial gives ``SR0 = 0`` (nothing to select from).
    """
    if n_trials < 1:
        raise ValueError(f"n_trials must be at least 1, got {n_trials}")
    if sharpe_trials_std < 0:
        raise ValueError(f"sharpe_trials_std must not be negative, got {sharpe_trials_std}")
    if n_trials == 1:
        return 0.0
    return sharpe_trials_std * (
        (1.0 - EULER_GAMMA) * _NORMAL.inv_cdf(1.0 - 1.0 / n_trials)
        + EULER_GAMMA * _NORMAL.inv_cdf(1.0 - 1.0 / (n_trials * math.e))
    )


def deflated_sharpe_ratio(
    sharpe_observed: float,
    n_trials: int,
    n_obs: int,
    skew: float,
    kurtosis: float,
    sharpe_trials_std: float,
) -> float:
    """DSR: the PSR of the best of ``n_trials`` against the Sharpe that luck alone would produce::

        DSR = PSR(SR0),  SR0 = expected_max_sharpe(n_trials, sharpe_trials_std)

    ``sharpe_observed`` (per period, over ``n_obs`` returns with the given skew and Pearson kurtosis)
    is the selected strategy's; ``sharpe_trials_std`` the standard deviation of the Sharpe ratios of
    all trials. With one trial DSR equals PSR against 0; it falls as the number of trials grows.
    Paper example: SR 2.5/√250, T = 1250, skew -3, kurtosis 10, N = 100, σ_SR = √(0.5/250) → 0.9004.
    """
    sr0 = expected_max_sharpe(n_trials, sharpe_trials_std)
    return probabilistic_sharpe_ratio(sharpe_observed, n_obs, skew, kurtosis, sharpe_benchmark=sr0)


def _column_sharpes(
    total: npt.NDArray[np.float64], sq: npt.NDArray[np.float64], n: npt.NDArray[np.float64], mu: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """Per-row, per-column Sharpe from sums of centred returns (``total``, ``sq``) over ``n`` rows."""
    nn = n[:, None]
    mean = total / nn + mu[None, :]
    var = np.maximum(sq - total * total / nn, 0.0) / np.maximum(nn - 1.0, 1.0)
    std = np.sqrt(var)
    out = np.zeros_like(mean)
    np.divide(mean, std, out=out, where=std > 1e-300)
    return out


def cscv_logits(returns_matrix: npt.ArrayLike, n_splits: int = 16, *, chunk: int = 2048) -> npt.NDArray[np.float64]:
    """The CSCV logits ``λ_c``, one per combination of ``n_splits / 2`` of ``n_splits`` row blocks.

    The ``T × N`` matrix (rows: periods, columns: strategies) is split into ``S = n_splits``
    contiguous blocks (sizes differ by at most one row). For each of the ``C(S, S/2)`` choices of
    in-sample blocks (the rest is out of sample): ``n*`` = the column with the best in-sample Sharpe,
    ``ω`` = its out-of-sample rank (1 = worst, ties averaged) ``/ (N + 1)``, ``λ = ln(ω / (1 - ω))``.
    """
    m = np.asarray(returns_matrix, dtype=np.float64)
    if m.ndim != 2:
        raise ValueError(f"returns_matrix must be 2-D (T × N), got shape {m.shape}")
    t, n = m.shape
    if n < 2:
        raise ValueError("PBO needs at least two strategies (columns)")
    if n_splits < 2 or n_splits % 2:
        raise ValueError(f"n_splits must be an even number >= 2, got {n_splits}")
    if t < 2 * n_splits:
        raise ValueError(f"{t} rows are too few for {n_splits} blocks (need at least 2 rows per block)")
    if not np.all(np.isfinite(m)):
        raise ValueError("returns_matrix contains NaN or inf")
    mu = m.mean(axis=0)
    centred = m - mu
    starts = np.array([b[0] for b in np.array_split(np.arange(t), n_splits)], dtype=np.int64)
    block_sum = np.add.reduceat(centred, starts, axis=0)
    block_sq = np.add.reduceat(centred * centred, starts, axis=0)
    block_n = np.diff(np.append(starts, t)).astype(np.float64)
    all_sum, all_sq, all_n = block_sum.sum(axis=0), block_sq.sum(axis=0), block_n.sum()

    combos = np.array(list(itertools.combinations(range(n_splits), n_splits // 2)), dtype=np.int64)
    logits = np.empty(len(combos), dtype=np.float64)
    for lo in range(0, len(combos), chunk):
        sel = np.zeros((min(chunk, len(combos) - lo), n_splits), dtype=np.float64)
        np.put_along_axis(sel, combos[lo : lo + chunk], 1.0, axis=1)
        is_sum, is_sq, is_n = sel @ block_sum, sel @ block_sq, sel @ block_n
        is_sharpe = _column_sharpes(is_sum, is_sq, is_n, mu)
        oos_sharpe = _column_sharpes(all_sum - is_sum, all_sq - is_sq, all_n - is_n, mu)
        best = np.argmax(is_sharpe, axis=1)
        chosen = np.take_along_axis(oos_sharpe, best[:, None], axis=1)
        below = np.sum(oos_sharpe < chosen, axis=1)
        tied = np.sum(oos_sharpe == chosen, axis=1)  # includes the chosen column itself
        omega = (below + (tied + 1) / 2.0) / (n + 1)
        logits[lo : lo + len(sel)] = np.log(omega / (1.0 - omega))
    return logits


def probability_of_backtest_overfitting(returns_matrix: npt.ArrayLike, n_splits: int = 16) -> float:
    """PBO by CSCV: the fraction of in-sample/out-of-sample splits in which the in-sample winner
    ranks below the out-of-sample median, ``mean(λ_c < 0)`` (see :func:`cscv_logits`).

    ≈ 0.5 for strategies that are pure noise, near 1 when in-sample winners are systematically
    out-of-sample losers, near 0 when one strategy dominates in every period. λ = 0 (exactly the
    median, possible with an odd number of strategies) does not count as overfit.
    """
    return float(np.mean(cscv_logits(returns_matrix, n_splits) < 0.0))
