"""Metrics of augkd: T. stddev (teacher-only), test-set evaluation, correlations."""

from augkd.metrics.correlation import correlations, seed_bootstrap_correlations
from augkd.metrics.evaluate import EvalResult, evaluate
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
    "EvalResult",
    "GroupMeans",
    "TStddevResult",
    "correlations",
    "seed_bootstrap_correlations",
    "evaluate",
    "group_means",
    "mark_trained",
    "measure_t_stddev",
    "t_stddev",
    "t_stddev_from_group_means",
]
