"""Relational KD (Park et al. 2019) on ``feat[-1]`` (docs/protocol.md §8: beta 1).

``w_dist smoothL1(d_s / mean d_s, d_t / mean d_t) + w_angle smoothL1(angles_s, angles_t)``,
d the pairwise Euclidean distances, angles the cosines of every triplet's angle.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from augkd.distill.base import (
    Distiller,
    DistillSetup,
    Step,
    check_option,
    float32,
    register_distiller,
)
from augkd.models.base import ModelOutput


def pairwise_distances(e: Tensor, eps: float = 1e-12) -> Tensor:
    """``[B, B]`` Euclidean distances of the rows of ``e`` (``[B, D]``), zero diagonal.

    As the framework: squared distances clamped at ``eps`` before the square root.
    """
    sq = e.pow(2).sum(1)
    d = (sq.unsqueeze(1) + sq.unsqueeze(0) - 2 * e @ e.t()).clamp_min(eps).sqrt()
    return d * (1 - torch.eye(e.shape[0], device=e.device, dtype=e.dtype))


def _normalized_distances(e: Tensor) -> Tensor:
    d = pairwise_distances(e)
    positive = d > 0  # the mean over the nonzero distances, without a host sync
    return d / (d.sum() / positive.sum().clamp_min(1))


def _angles(e: Tensor) -> Tensor:
    """Cosines of the angle at j of every triplet (i, j, k): ``[B * B * B]``."""
    diff = F.normalize(e.unsqueeze(0) - e.unsqueeze(1), p=2, dim=2)
    return torch.bmm(diff, diff.transpose(1, 2)).flatten()


@float32
def rkd_terms(f_s: Tensor, f_t: Tensor) -> tuple[Tensor, Tensor]:
    """RKD's distance and angle terms (unweighted) of one pair of embeddings ``[B, D]``."""
    f_s, f_t = f_s.flatten(1), f_t.flatten(1)
    with torch.no_grad():
        t_dist, t_angle = _normalized_distances(f_t), _angles(f_t)
    distance = F.smooth_l1_loss(_normalized_distances(f_s), t_dist)
    angle = F.smooth_l1_loss(_angles(f_s), t_angle)
    return distance, angle


def rkd_loss(f_s: Tensor, f_t: Tensor, w_dist: float = 25.0, w_angle: float = 50.0) -> Tensor:
    """RKD loss of one pair of embeddings.

    Args:
        f_s: ``[B, D_s]`` student embeddings.
        f_t: ``[B, D_t]`` teacher embeddings (no gradient flows into them).
        w_dist, w_angle: the framework's weights of the two terms (25 and 50).

    Returns:
        0-d float32 ``w_dist * distance + w_angle * angle``.
    """
    distance, angle = rkd_terms(f_s, f_t)
    return w_dist * distance + w_angle * angle


@register_distiller("rkd")
class RKD(Distiller):
    """Distance- and angle-wise relations of the pooled embeddings."""

    weights: ClassVar[tuple[float, float]] = (1.0, 1.0)

    def __init__(self, setup: DistillSetup, *, w_dist: float = 25.0,
                 w_angle: float = 50.0) -> None:
        super().__init__(setup)
        for name, value in (("w_dist", w_dist), ("w_angle", w_angle)):
            check_option("rkd", name, value, value >= 0, ">= 0")
        self.w_dist, self.w_angle = w_dist, w_angle

    def forward(self, student: ModelOutput, teacher: ModelOutput, step: Step) -> dict[str, Tensor]:
        distance, angle = rkd_terms(student.pooled, teacher.pooled)
        loss = self.w_dist * distance + self.w_angle * angle
        return {"loss": loss, "distance": distance.detach(), "angle": angle.detach()}
