"""Correlation between T. stddev and S. test loss across DAs, with bootstrap intervals.

``r`` and ``p`` come from :mod:`scipy.stats` (``pearsonr``, ``spearmanr``, ``kendalltau``,
two-sided). The confidence intervals are percentile bootstraps over the points: resample the
``(x, y)`` pairs with replacement, recompute the coefficient, take the quantiles. Resamples in
which ``x`` or ``y`` is constant have no defined coefficient and are skipped.

The bootstrap coefficients are computed vectorized in numpy with the same definitions scipy
uses: Pearson's r; Spearman's rho = Pearson's r of the average ranks; Kendall's tau-b =
``sum sgn(dx) sgn(dy) / sqrt(sum sgn(dx)^2 * sum sgn(dy)^2)`` over all pairs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats

__all__ = ["correlations", "seed_bootstrap_correlations"]

_MAX_PAIR_CELLS = 4_000_000  # bootstrap rows x n x n per Kendall block: bounded memory


def _as_points(values: Sequence[float] | np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        bad = [i for i, v in enumerate(arr) if not math.isfinite(v)]
        raise ValueError(f"{name} has non-finite values at positions {bad}")
    return arr


def _pearson_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson's r of each row pair of ``x``, ``y`` ``[m, n]`` -> ``[m]``."""
    xc = x - x.mean(axis=1, keepdims=True)
    yc = y - y.mean(axis=1, keepdims=True)
    return (xc * yc).sum(axis=1) / np.sqrt((xc * xc).sum(axis=1) * (yc * yc).sum(axis=1))


def _kendall_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Kendall's tau-b of each row pair of ``x``, ``y`` ``[m, n]`` -> ``[m]``."""
    n = x.shape[1]
    step = max(1, _MAX_PAIR_CELLS // (n * n))
    out = np.empty(x.shape[0])
    for lo in range(0, x.shape[0], step):
        sx = np.sign(x[lo:lo + step, :, None] - x[lo:lo + step, None, :])
        sy = np.sign(y[lo:lo + step, :, None] - y[lo:lo + step, None, :])
        # Every unordered pair appears twice in the full matrix; the factor cancels.
        num = (sx * sy).sum(axis=(1, 2))
        out[lo:lo + step] = num / np.sqrt((sx * sx).sum(axis=(1, 2)) * (sy * sy).sum(axis=(1, 2)))
    return out


def correlations(
    x: Sequence[float] | np.ndarray,
    y: Sequence[float] | np.ndarray,
    *,
    n_boot: int = 2000,
    seed: int = 0,
    ci: float = 0.95,
) -> dict[str, dict[str, float | int]]:
    """Pearson, Spearman and Kendall correlation of ``x`` and ``y`` with bootstrap CIs.

    Args:
        x: ``n`` finite values (e.g. T. stddev per DA).
        y: ``n`` finite values (e.g. S. test loss per DA), paired with ``x``.
        n_boot: bootstrap resamples of the ``n`` pairs (drawn with replacement).
        seed: seed of the resampling (numpy ``default_rng``), for reproducible intervals.
        ci: confidence level of the percentile interval, in (0, 1).

    Returns:
        ``{"pearson": d, "spearman": d, "kendall": d}`` where each ``d`` holds ``r`` and the
        two-sided ``p`` from scipy, the interval ``ci_low``/``ci_high``, ``n`` (points) and
        ``n_boot`` (resamples actually used after skipping degenerate ones), all plain
        Python numbers (JSON-ready). The interval is NaN if every resample was degenerate.

    Raises:
        ValueError: different lengths, fewer than 3 points, non-finite values, a constant
            input, or bad ``n_boot``/``ci``.
    """
    xs, ys = _as_points(x, "x"), _as_points(y, "y")
    if xs.shape[0] != ys.shape[0]:
        raise ValueError(f"x and y must have the same length, got {xs.shape[0]} and {ys.shape[0]}")
    n = xs.shape[0]
    if n < 3:
        raise ValueError(f"correlations need at least 3 points, got {n}")
    for name, arr in (("x", xs), ("y", ys)):
        if np.ptp(arr) == 0:
            raise ValueError(f"{name} is constant; its correlation is undefined")
    if int(n_boot) < 1:
        raise ValueError(f"n_boot must be a positive integer, got {n_boot}")
    if not 0.0 < ci < 1.0:
        raise ValueError(f"ci must lie strictly between 0 and 1, got {ci}")

    point = {
        "pearson": stats.pearsonr(xs, ys),
        "spearman": stats.spearmanr(xs, ys),
        "kendall": stats.kendalltau(xs, ys),
    }

    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(int(n_boot), n))
    bx, by = xs[idx], ys[idx]
    valid = (np.ptp(bx, axis=1) > 0) & (np.ptp(by, axis=1) > 0)
    bx, by = bx[valid], by[valid]
    boot = {
        "pearson": _pearson_rows(bx, by),
        "spearman": _pearson_rows(
            stats.rankdata(bx, axis=1), stats.rankdata(by, axis=1)
        ) if len(bx) else np.empty(0),
        "kendall": _kendall_rows(bx, by),
    }

    alpha = (1.0 - ci) / 2.0
    out: dict[str, dict[str, float | int]] = {}
    for name, res in point.items():
        r, p = float(res[0]), float(res[1])
        if len(boot[name]):
            low, high = np.quantile(boot[name], [alpha, 1.0 - alpha])
        else:
            low = high = math.nan
        out[name] = {
            "r": r,
            "p": p,
            "ci_low": float(low),
            "ci_high": float(high),
            "n": int(n),
            "n_boot": int(len(boot[name])),
        }
    return out


def seed_bootstrap_correlations(
    x_seeds: np.ndarray,
    y_seeds: np.ndarray,
    *,
    n_boot: int = 2000,
    seed: int = 0,
    ci: float = 0.95,
) -> dict[str, dict[str, float | int]]:
    """Correlations of per-DA means, with percentile intervals from resampling the seeds.

    The across-DA intervals of :func:`correlations` ask "what if other DAs had been studied";
    this asks "what if the runs had drawn other seeds": each resample draws ``n_seeds`` seed
    indices with replacement (the same draw for every DA, so a seed's runs stay together),
    averages ``x`` and ``y`` over them per DA and recomputes the coefficient.

    Args:
        x_seeds: float ``[n_da, n_seeds]``, e.g. T. stddev of each DA and seed.
        y_seeds: float ``[n_da, n_seeds]``, e.g. S. test loss of each DA and seed.

    Returns:
        ``{"pearson": d, "spearman": d, "kendall": d}``, each ``d`` with ``r`` (of the means),
        ``ci_low``, ``ci_high``, ``n`` (DAs), ``n_seeds`` and ``n_boot`` (non-degenerate
        resamples).

    Raises:
        ValueError: shapes that differ or are not 2-D, fewer than 3 DAs or 2 seeds,
            non-finite values.
    """
    xs, ys = np.asarray(x_seeds, dtype=np.float64), np.asarray(y_seeds, dtype=np.float64)
    if xs.ndim != 2 or xs.shape != ys.shape:
        raise ValueError(f"x_seeds and y_seeds must both be [n_da, n_seeds], got {xs.shape} "
                         f"and {ys.shape}")
    n_da, n_seeds = xs.shape
    if n_da < 3 or n_seeds < 2:
        raise ValueError(f"need at least 3 DAs and 2 seeds, got {n_da} and {n_seeds}")
    if not (np.all(np.isfinite(xs)) and np.all(np.isfinite(ys))):
        raise ValueError("x_seeds and y_seeds must be finite")
    if not 0.0 < ci < 1.0:
        raise ValueError(f"ci must lie strictly between 0 and 1, got {ci}")
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_seeds, size=(int(n_boot), n_seeds))
    bx = xs[:, draws].mean(axis=2).T  # [n_boot, n_da]
    by = ys[:, draws].mean(axis=2).T
    valid = (np.ptp(bx, axis=1) > 0) & (np.ptp(by, axis=1) > 0)
    bx, by = bx[valid], by[valid]
    boot = {
        "pearson": _pearson_rows(bx, by),
        "spearman": _pearson_rows(stats.rankdata(bx, axis=1), stats.rankdata(by, axis=1)),
        "kendall": _kendall_rows(bx, by),
    }
    mx, my = xs.mean(axis=1), ys.mean(axis=1)
    point = {"pearson": stats.pearsonr(mx, my)[0], "spearman": stats.spearmanr(mx, my)[0],
             "kendall": stats.kendalltau(mx, my)[0]}
    alpha = (1.0 - ci) / 2.0
    out: dict[str, dict[str, float | int]] = {}
    for name, r in point.items():
        values = boot[name][np.isfinite(boot[name])]
        low, high = (np.quantile(values, [alpha, 1.0 - alpha]) if len(values)
                     else (math.nan, math.nan))
        out[name] = {"r": float(r), "ci_low": float(low), "ci_high": float(high),
                     "n": int(n_da), "n_seeds": int(n_seeds), "n_boot": int(len(values))}
    return out
