"""Correlation congruence (Peng et al. 2019), in the common framework's form (beta 0.02).

Both pooled embeddings are linearly embedded to ``feat_dim`` (128) and L2-normalized; the loss
is the mean over consecutive pairs of the batch of ``sum(|e_s - e_t|_i * |e_s - e_t|_{i+1})``.
"""

from __future__ import annotations

from typing import ClassVar

import torch.nn.functional as F
from torch import Tensor, nn

from augkd.distill.base import (
    Distiller,
    DistillSetup,
    Step,
    check_option,
    float32,
    register_distiller,
)
from augkd.models.base import ModelOutput


class LinearEmbedding(nn.Module):
    """``x -> normalize(W x + b)``: ``[B, D_in]`` to unit ``[B, D_out]``."""

    def __init__(self, dim_in: int, dim_out: int) -> None:
        super().__init__()
        self.linear = nn.Linear(dim_in, dim_out)

    def forward(self, x: Tensor) -> Tensor:
        return F.normalize(self.linear(x.flatten(1)), dim=1)


@float32
def cc_loss(e_s: Tensor, e_t: Tensor) -> Tensor:
    """The framework's correlation loss of two embeddings ``[B, D]`` (B >= 2).

    Returns:
        0-d float32: ``mean_i sum_d(|e_s - e_t|[i, d] * |e_s - e_t|[i + 1, d])``.
    """
    delta = (e_s - e_t).abs()
    return (delta[:-1] * delta[1:]).sum(1).mean()


@register_distiller("cc")
class CC(Distiller):
    """Correlation congruence through trained linear embeddings of both networks."""

    weights: ClassVar[tuple[float, float]] = (1.0, 0.02)

    def __init__(self, setup: DistillSetup, *, feat_dim: int = 128) -> None:
        super().__init__(setup)
        check_option("cc", "feat_dim", feat_dim, 1 <= feat_dim <= 65536, "1..65536")
        self.feat_dim = feat_dim
        self.embed_student = LinearEmbedding(setup.student.feature_dim, feat_dim)
        self.embed_teacher = LinearEmbedding(setup.teacher.feature_dim, feat_dim)

    def forward(self, student: ModelOutput, teacher: ModelOutput, step: Step) -> dict[str, Tensor]:
        e_s = self.embed_student(student.pooled)
        e_t = self.embed_teacher(teacher.pooled)
        return {"loss": cc_loss(e_s, e_t)}
