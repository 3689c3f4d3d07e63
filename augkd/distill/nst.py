"""Neuron selectivity transfer (Huang & Wang 2017) on ``feat[1:-1]`` (beta 50).

Per stage: squared MMD with the polynomial kernel ``k(a, b) = (a . b)^2`` between the
spatially L2-normalized channels of the two maps (pooled to the smaller size); summed.
"""

from __future__ import annotations

from typing import ClassVar

import torch.nn.functional as F
from torch import Tensor

from augkd.distill.base import (
    Distiller,
    Step,
    float32,
    paired_stages,
    pool_to_common,
    register_distiller,
)
from augkd.models.base import ModelOutput


def _poly_kernel(a: Tensor, b: Tensor) -> Tensor:
    """``[B, C_b, C_a]``: ``(a_i . b_j)^2`` of every pair of channel vectors."""
    return (a.unsqueeze(1) * b.unsqueeze(2)).sum(-1).pow(2)


@float32
def nst_loss(f_s: Tensor, f_t: Tensor) -> Tensor:
    """NST loss of one pair of feature maps.

    Args:
        f_s: ``[B, C_s, H_s, W_s]`` student map.
        f_t: ``[B, C_t, H_t, W_t]`` teacher map (the larger map is pooled to the smaller).

    Returns:
        0-d float32: ``mean k(t, t) + mean k(s, s) - 2 mean k(s, t)`` (the teacher part
        detached).
    """
    f_s, f_t = pool_to_common(f_s, f_t)
    s = F.normalize(f_s.flatten(2), dim=2)
    t = F.normalize(f_t.flatten(2), dim=2)
    return (_poly_kernel(t, t).mean().detach() + _poly_kernel(s, s).mean()
            - 2 * _poly_kernel(s, t).mean())


@register_distiller("nst")
class NST(Distiller):
    """MMD between the distributions of the networks' channel activation patterns."""

    weights: ClassVar[tuple[float, float]] = (1.0, 50.0)

    def forward(self, student: ModelOutput, teacher: ModelOutput, step: Step) -> dict[str, Tensor]:
        return {"loss": sum(nst_loss(s, t) for s, t in paired_stages(student, teacher))}
