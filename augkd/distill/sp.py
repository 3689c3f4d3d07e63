"""Similarity-preserving KD (Tung & Mori 2019) on ``feat[-2]`` (docs/protocol.md §8: beta 3000).

``G = normalize_rows(F F^T)`` per batch for each network; ``sum((G_t - G_s)^2) / B^2``.
"""

from __future__ import annotations

from typing import ClassVar

import torch.nn.functional as F
from torch import Tensor

from augkd.distill.base import Distiller, Step, float32, register_distiller
from augkd.models.base import ModelOutput


def similarity_matrix(f: Tensor) -> Tensor:
    """Row-normalized ``[B, B]`` Gram matrix of the flattened features ``[B, ...]``."""
    flat = f.flatten(1)
    return F.normalize(flat @ flat.t(), dim=1)


@float32
def sp_loss(f_s: Tensor, f_t: Tensor) -> Tensor:
    """Similarity-preserving loss of one pair of features.

    Args:
        f_s: ``[B, ...]`` student features (any shape after the batch dimension).
        f_t: ``[B, ...]`` teacher features.

    Returns:
        0-d float32: ``sum((G_t - G_s)^2) / B^2``.
    """
    b = f_s.shape[0]
    diff = similarity_matrix(f_t) - similarity_matrix(f_s)
    return diff.pow(2).sum() / (b * b)


@register_distiller("sp")
class SP(Distiller):
    """Similarity preservation on the last stage map."""

    weights: ClassVar[tuple[float, float]] = (1.0, 3000.0)

    def forward(self, student: ModelOutput, teacher: ModelOutput, step: Step) -> dict[str, Tensor]:
        return {"loss": sp_loss(student.stages[-1], teacher.stages[-1])}
