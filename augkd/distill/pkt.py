"""Probabilistic knowledge transfer (Passalis & Tefas 2018) on ``feat[-1]`` (beta 30000).

KL between the row-normalized ``(cos + 1) / 2`` similarity matrices of the two embeddings.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from augkd.distill.base import Distiller, Step, float32, register_distiller
from augkd.models.base import ModelOutput


def _conditional_probabilities(f: Tensor, eps: float) -> Tensor:
    """``[B, B]`` rows of ``(cos + 1) / 2`` similarities, each summing to 1."""
    unit = f / (f.norm(dim=1, keepdim=True) + eps)
    unit = torch.nan_to_num(unit, nan=0.0)
    similarity = (unit @ unit.t() + 1.0) / 2.0
    return similarity / similarity.sum(dim=1, keepdim=True)


@float32
def pkt_loss(f_s: Tensor, f_t: Tensor, eps: float = 1e-7) -> Tensor:
    """PKT loss of one pair of embeddings.

    Args:
        f_s: ``[B, D_s]`` student embeddings.
        f_t: ``[B, D_t]`` teacher embeddings (dimensions may differ).
        eps: the framework's guard in the norms and the logarithm.

    Returns:
        0-d float32: ``mean(p_t * log((p_t + eps) / (p_s + eps)))`` over all ``B x B`` entries.
    """
    p_s = _conditional_probabilities(f_s.flatten(1), eps)
    p_t = _conditional_probabilities(f_t.flatten(1), eps)
    return (p_t * torch.log((p_t + eps) / (p_s + eps))).mean()


@register_distiller("pkt")
class PKT(Distiller):
    """Matching the embeddings' probability distributions of pairwise similarities."""

    weights: ClassVar[tuple[float, float]] = (1.0, 30000.0)

    def forward(self, student: ModelOutput, teacher: ModelOutput, step: Step) -> dict[str, Tensor]:
        return {"loss": pkt_loss(student.pooled, teacher.pooled)}
