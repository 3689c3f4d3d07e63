"""Metrics of augkd: T. stddev (teacher-only), test-set evaluation, correlations."""

from augkd.metrics.correlation import correlations
from augkd.metrics.evaluate import EvalResult, evaluate
from augkd.metrics.tstddev import (
    GroupMeans,
    TStddevResult,
    group_means,
    measure_t_stddev,
    t_stddev,
    t_stddev_from_group_means,
)

__all__ = [
    "EvalResult",
    "GroupMeans",
    "TStddevResult",
    "correlations",
    "evaluate",
    "group_means",
    "measure_t_stddev",
    "t_stddev",
    "t_stddev_from_group_means",
]
