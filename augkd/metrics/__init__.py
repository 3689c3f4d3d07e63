"""Metrics of augkd: T. stddev (teacher-only), test-set evaluation, correlations, and how sure a
ranking is (one-run and seed errors, tiers, ANOVA: :mod:`augkd.metrics.tiers`)."""

from augkd.metrics.correlation import correlations, seed_bootstrap_correlations
from augkd.metrics.evaluate import EvalResult, evaluate
from augkd.metrics.tiers import (
    Estimate,
    Tiers,
    bootstrap_t_stddev_se,
    effect_vs_noise,
    estimate,
    leader_tiers,
)
from augkd.metrics.tstddev import (
    GroupMeans,
    TStddevResult,
    group_means,
    mark_trained,
    measure_t_stddev,
    t_stddev,
    t_stddev_from_group_means,
)

__all__ = [
    "Estimate",
    "EvalResult",
    "GroupMeans",
    "TStddevResult",
    "Tiers",
    "bootstrap_t_stddev_se",
    "correlations",
    "effect_vs_noise",
    "estimate",
    "seed_bootstrap_correlations",
    "evaluate",
    "group_means",
    "leader_tiers",
    "mark_trained",
    "measure_t_stddev",
    "t_stddev",
    "t_stddev_from_group_means",
]
