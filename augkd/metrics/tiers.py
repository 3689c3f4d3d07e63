"""How sure a ranking is: an uncertainty for every value, and tiers of values it can tell apart.

Three steps, each a pure function on numbers (no models, no files):

1. **The error of one T. stddev measurement** (:func:`bootstrap_t_stddev_se`). A run's value
   comes from its ``G`` group means, a sample: resample the groups with replacement, recompute
   T. stddev, and take the standard deviation of the resampled values (percentile-free,
   ``n_boot`` resamples, seeded). It needs no second run.
2. **A DA's mean and standard error** (:func:`estimate`), from its per-seed values and the
   one-run errors of those runs:

   - one seed: the value and its bootstrap SE; the test statistic is treated as normal;
   - ``n >= 2`` seeds: the mean, and ``SE = sqrt(max(s^2, b^2) / n)`` with ``s`` the seed std
     and ``b`` the root mean square of the runs' one-run SEs. The seed-to-seed spread contains
     the one-run sampling error, so ``b`` is a floor: a std of 2 or 3 values can come out near 0
     by chance. The SE has ``n - 1`` degrees of freedom when ``s`` sets it, and counts as
     known (normal) when the floor ``b`` does (a bootstrap over hundreds of groups).
   - values without a one-run error (a student's test loss): ``SE = s / sqrt(n)`` with
     ``n - 1`` degrees of freedom; one seed gives no SE at all.
3. **Tiers** (:func:`leader_tiers`). Sort the DAs by their means and walk down the list: the
   first DA leads tier 1; every next DA is compared with the current tier's leader (its best
   DA) by Welch's t-test on ``d / sqrt(SE_a^2 + SE_b^2)`` (Welch-Satterthwaite degrees of
   freedom; normal when both SEs count as known), and starts a new tier, which it leads, when
   the difference is significant at ``alpha / (k - 1)`` (Bonferroni over the ``k - 1``
   comparisons the walk makes; ``alpha`` 0.05). So every DA of a tier is tied with the tier's
   best ("tied": not separated by the measurement, not "equal"), and tier 1 is the best DA with
   everything the measurement cannot tell from it. Comparing with the leader rather than with
   the previous DA keeps a slope of small steps from chaining into one long tier.

:func:`effect_vs_noise` is the one-way ANOVA of the per-seed values (is the spread of the DA
means larger than the seed-to-seed noise?), and :func:`accuracy_se` the binomial standard
error of an accuracy measured on ``n`` images.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

import numpy as np
from scipy import stats
from torch import Tensor

__all__ = [
    "ALPHA",
    "Estimate",
    "Gap",
    "Tiers",
    "accuracy_se",
    "bootstrap_t_stddev_se",
    "describe_tiers",
    "effect_vs_noise",
    "estimate",
    "leader_tiers",
]

#: The family-wise error rate of the tier boundaries (Bonferroni over the k - 1 comparisons).
ALPHA = 0.05
#: Bootstrap resamples of the groups of one T. stddev measurement.
N_BOOT = 1000


def bootstrap_t_stddev_se(
    group_means: Tensor | np.ndarray, *, n_boot: int = N_BOOT, seed: int = 0
) -> float:
    """Standard error of one run's T. stddev, from resampling its groups.

    Args:
        group_means: float ``[G, C]``, the run's group mean vectors (``TStddevResult
            .group_means``), ``G >= 2``.
        n_boot: resamples; each draws ``G`` groups with replacement.
        seed: seed of the resampling (numpy ``default_rng``): the same input gives the same SE.

    Returns:
        The standard deviation (ddof 1) of T. stddev over the resamples.

    Raises:
        ValueError: not ``[G, C]`` with ``G >= 2``, non-finite values, or ``n_boot < 2``.
    """
    means = np.asarray(group_means.cpu().numpy() if isinstance(group_means, Tensor)
                       else group_means, dtype=np.float64)
    if means.ndim != 2 or means.shape[0] < 2:
        raise ValueError(f"expected group means [G, C] with G >= 2, got shape {means.shape}")
    if not np.all(np.isfinite(means)):
        raise ValueError("group means must be finite")
    if int(n_boot) < 2:
        raise ValueError(f"n_boot must be at least 2, got {n_boot}")
    g = means.shape[0]
    centred = means - means.mean(axis=0)  # sums of squares without cancellation
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(g, np.full(g, 1.0 / g), size=int(n_boot)).astype(np.float64)
    s1, s2 = counts @ centred, counts @ (centred * centred)  # [n_boot, C]
    var = np.maximum(s2 - s1 * s1 / g, 0.0) / (g - 1)
    values = np.sqrt(var).mean(axis=1)
    return float(values.std(ddof=1))


@dataclasses.dataclass(frozen=True)
class Estimate:
    """One DA's value with its uncertainty.

    Attributes:
        mean: the mean over seeds.
        se: its standard error (NaN when nothing estimates it: one seed, no one-run error).
        std: the seed-to-seed standard deviation (NaN with one seed).
        n: seeds.
        df: degrees of freedom of ``se``; ``inf`` when it counts as known (a bootstrap).
        source: what set ``se``: ``"bootstrap"`` (one run's groups), ``"seeds"`` (the seed
            spread) or ``""`` (no SE).
    """

    mean: float
    se: float
    std: float
    n: int
    df: float
    source: str


def estimate(values: Sequence[float], run_ses: Sequence[float] | None = None) -> Estimate:
    """Mean and standard error of a DA's per-seed values (see the module docstring, step 2).

    Args:
        values: one finite value per seed (at least one).
        run_ses: the one-run SE of each value (a bootstrap), or None when there is none.
    """
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1 or len(x) == 0 or not np.all(np.isfinite(x)):
        raise ValueError(f"expected at least one finite value, got {list(values)}")
    n = len(x)
    std = float(x.std(ddof=1)) if n > 1 else math.nan
    floor = math.nan
    if run_ses is not None:
        b = np.asarray(run_ses, dtype=np.float64)
        if b.shape != x.shape or not np.all(np.isfinite(b)) or np.any(b < 0):
            raise ValueError(f"expected one finite SE >= 0 per value, got {list(run_ses)}")
        floor = float(math.sqrt(np.mean(b * b)))
    if n == 1:
        if math.isnan(floor):
            return Estimate(float(x[0]), math.nan, math.nan, 1, math.nan, "")
        return Estimate(float(x[0]), floor, math.nan, 1, math.inf, "bootstrap")
    if not math.isnan(floor) and floor >= std:
        return Estimate(float(x.mean()), floor / math.sqrt(n), std, n, math.inf, "bootstrap")
    return Estimate(float(x.mean()), std / math.sqrt(n), std, n, float(n - 1), "seeds")


@dataclasses.dataclass(frozen=True)
class Gap:
    """One comparison of the walk: a DA (``upper``) against its tier's leader (``lower``, the
    lower mean); ``p_adjusted`` is Bonferroni's ``min(1, (k - 1) p)``."""

    lower: str
    upper: str
    diff: float
    se: float
    statistic: float
    df: float
    p: float
    p_adjusted: float
    separated: bool


@dataclasses.dataclass(frozen=True)
class Tiers:
    """DAs grouped into tiers the measurement tells apart (see :func:`leader_tiers`).

    Attributes:
        order: the names, lowest mean first.
        groups: the tiers, best first; each a tuple of names in order.
        gaps: the ``k - 1`` comparisons of the walk, in order.
        alpha: the family-wise error rate of the boundaries.
        method: one line naming the procedure.
    """

    order: tuple[str, ...]
    groups: tuple[tuple[str, ...], ...]
    gaps: tuple[Gap, ...]
    alpha: float
    method: str

    def __repr__(self) -> str:
        return f"Tiers({self.describe()}; alpha {self.alpha:g})"

    def tier_of(self, name: str) -> int:
        """The 1-based tier of ``name``."""
        for i, group in enumerate(self.groups, start=1):
            if name in group:
                return i
        raise KeyError(name)

    @property
    def best(self) -> tuple[str, ...]:
        """The first tier: the recommendation and everything tied with it."""
        return self.groups[0]

    def describe(self) -> str:
        """``tier 1: a; tier 2: b; tier 3: c, d (tied)``."""
        return describe_tiers(self.groups)

    def as_json(self) -> dict:
        """A JSON-ready description: method, alpha, the tiers, and every gap's test."""
        return {
            "method": self.method,
            "alpha": self.alpha,
            "tiers": [list(g) for g in self.groups],
            "gaps": [dataclasses.asdict(g) for g in self.gaps],
        }


def describe_tiers(groups: Sequence[Sequence[str]]) -> str:
    """``tier 1: a; tier 2: b; tier 3: c, d (tied)`` for tiers given best first."""
    return "; ".join(f"tier {i}: {', '.join(g)}" + (" (tied)" if len(g) > 1 else "")
                     for i, g in enumerate(groups, start=1))


METHOD = ("sorted by mean; each DA compared with its tier's best by Welch's t-test on the "
          "difference of means over its standard error, and a new tier when p < alpha / (k - 1) "
          "(Bonferroni over the k - 1 comparisons)")


def leader_tiers(estimates: Mapping[str, Estimate], *, alpha: float = ALPHA) -> Tiers:
    """Tiers of ``estimates`` (name -> :class:`Estimate`), lowest mean first (see the module
    docstring, step 3).

    Every estimate needs a finite SE; an SE of 0 on both sides separates any difference
    (and ties an exact equality).

    Raises:
        ValueError: no estimates, an SE that is NaN, or ``alpha`` outside (0, 1).
    """
    if not estimates:
        raise ValueError("tiers need at least one estimate")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie strictly between 0 and 1, got {alpha}")
    missing = [name for name, e in estimates.items() if not math.isfinite(e.se)]
    if missing:
        raise ValueError(f"no standard error for {', '.join(missing)}: tiers need one per DA "
                         "(several seeds, or a one-run error)")
    order = sorted(estimates, key=lambda name: (estimates[name].mean, name))
    comparisons = max(1, len(order) - 1)
    groups: list[list[str]] = [[order[0]]]
    gaps = []
    for name in order[1:]:
        leader = groups[-1][0]
        diff, se, statistic, df, p = _welch(estimates[leader], estimates[name])
        adjusted = min(1.0, comparisons * p)
        gap = Gap(leader, name, diff, se, statistic, df, p, adjusted, adjusted < alpha)
        gaps.append(gap)
        if gap.separated:
            groups.append([])
        groups[-1].append(name)
    return Tiers(order=tuple(order), groups=tuple(tuple(g) for g in groups), gaps=tuple(gaps),
                 alpha=alpha, method=METHOD)


def _welch(a: Estimate, b: Estimate) -> tuple[float, float, float, float, float]:
    """``b - a``, its SE, the t statistic, Welch-Satterthwaite df (inf: normal) and two-sided p."""
    diff = b.mean - a.mean
    var = a.se ** 2 + b.se ** 2
    se = math.sqrt(var)
    if se == 0.0:
        return diff, 0.0, (math.inf if diff else 0.0), math.inf, float(diff == 0)
    statistic = diff / se
    tails = [e.se ** 4 / e.df for e in (a, b) if math.isfinite(e.df) and e.df > 0]
    df = var ** 2 / sum(tails) if tails else math.inf
    p = 2 * (stats.norm.sf(abs(statistic)) if math.isinf(df) else stats.t.sf(abs(statistic), df))
    return diff, se, statistic, df, float(p)


def effect_vs_noise(values: Mapping[str, Sequence[float]]) -> dict[str, float | int]:
    """Is the spread of the DA means larger than the seed-to-seed noise? A one-way ANOVA.

    Args:
        values: DA -> its per-seed values (at least 2 DAs with at least 2 seeds each).

    Returns:
        ``spread_std`` (std of the DA means), ``range`` (of the means), ``seed_noise_std``
        (pooled within-DA std), ``se_of_a_da_mean`` (that over sqrt of the fewest seeds),
        ``anova_f``, ``anova_p`` (scipy's ``f_oneway``), ``seeds`` (the fewest) and ``das``.

    Raises:
        ValueError: fewer than 2 DAs or a DA with fewer than 2 seeds.
    """
    groups = [np.asarray(v, dtype=np.float64) for v in values.values()]
    if len(groups) < 2 or min(len(g) for g in groups) < 2:
        raise ValueError("an ANOVA needs at least 2 DAs with at least 2 seeds each")
    means = np.array([g.mean() for g in groups])
    noise = math.sqrt(float(np.mean([g.var(ddof=1) for g in groups])))
    n = min(len(g) for g in groups)
    f, p = stats.f_oneway(*groups)
    return {"spread_std": float(means.std(ddof=1)), "range": float(np.ptp(means)),
            "seed_noise_std": noise, "se_of_a_da_mean": noise / math.sqrt(n),
            "anova_f": float(f), "anova_p": float(p), "seeds": int(n), "das": len(groups)}


def accuracy_se(top1_percent: float, n: int) -> float:
    """Binomial standard error, in percentage points, of an accuracy measured on ``n`` images:
    ``100 sqrt(p (1 - p) / n)`` (p clipped to [1/n, 1 - 1/n] so 0 % and 100 % get one)."""
    if n < 1:
        raise ValueError(f"an accuracy needs at least one image, got n = {n}")
    p = min(max(top1_percent / 100.0, 1.0 / n), 1.0 - 1.0 / n) if n > 1 else 0.5
    return 100.0 * math.sqrt(p * (1.0 - p) / n)
