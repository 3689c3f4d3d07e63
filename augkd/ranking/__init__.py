"""Rank DAs for distilling a teacher, from the teacher alone: the library under
``python -m augkd.rank`` (whose module docstring describes the results folder).

- :mod:`augkd.ranking.config`: :class:`RankConfig` and the thresholds of the warnings.
- :mod:`augkd.ranking.measure`: the teacher, T. stddev per DA and seed (:func:`measure_aug`,
  the unit a sweep runs too), the students of ``--validate``.
- :mod:`augkd.ranking.judge`: estimates, tiers, the recommendation and the warnings.
- :mod:`augkd.ranking.table`: the text table.
- :mod:`augkd.ranking.run`: :func:`rank` and :func:`rank_augmentations` -> :class:`Ranking`.
"""

from augkd.ranking.config import MODES, RankConfig
from augkd.ranking.judge import aggregate, caveats, judge
from augkd.ranking.measure import measure_aug, needs_student_scorer
from augkd.ranking.run import Ranking, expand_augs, rank, rank_augmentations

__all__ = [
    "MODES",
    "RankConfig",
    "Ranking",
    "aggregate",
    "caveats",
    "expand_augs",
    "judge",
    "measure_aug",
    "needs_student_scorer",
    "rank",
    "rank_augmentations",
]
