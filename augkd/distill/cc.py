"""Correlation congruence (Peng et al. 2019), in the common framework's form (beta 0.02).

Both pooled embeddings go through a plain linear layer to ``feat_dim`` (128): RepDistiller's
``train_student.py`` builds ``LinearEmbed`` (models/util.py, no normalization) for
``correlation``. The loss is the mean over consecutive pairs of the batch of
``sum(|e_s - e_t|_i * |e_s - e_t|_{i+1})``. The hand-tuned beta 0.02 was tuned for these
unnormalized embeddings; ``cc(normalize=true)`` L2-normalizes them instead (what augkd did
before 2026-12; its loss is about 20x smaller on the same weights).
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
    """``x -> W x + b`` (``[B, D_in]`` to ``[B, D_out]``), L2-normalized per row when
    ``normalize`` (CRD's and MLKD's embeddings are; CC's, RepDistiller's ``LinearEmbed``, is not).
    """

    def __init__(self, dim_in: int, dim_out: int, normalize: bool = True) -> None:
        super().__init__()
        self.linear = nn.Linear(dim_in, dim_out)
        self.normalize = normalize

    def forward(self, x: Tensor) -> Tensor:
        e = self.linear(x.flatten(1))
        return F.normalize(e, dim=1) if self.normalize else e


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
    """Correlation congruence through trained linear embeddings of both networks.

    Options:
        feat_dim: the embeddings' size (128).
        normalize: L2-normalize the embeddings (False, as the reference).
    """

    weights: ClassVar[tuple[float, float]] = (1.0, 0.02)

    def __init__(self, setup: DistillSetup, *, feat_dim: int = 128,
                 normalize: bool = False) -> None:
        super().__init__(setup)
        check_option("cc", "feat_dim", feat_dim, 1 <= feat_dim <= 65536, "1..65536")
        self.feat_dim, self.normalize = feat_dim, normalize
        self.embed_student = LinearEmbedding(setup.student.feature_dim, feat_dim, normalize)
        self.embed_teacher = LinearEmbedding(setup.teacher.feature_dim, feat_dim, normalize)

    def forward(self, student: ModelOutput, teacher: ModelOutput, step: Step) -> dict[str, Tensor]:
        e_s = self.embed_student(student.pooled)
        e_t = self.embed_teacher(teacher.pooled)
        return {"loss": cc_loss(e_s, e_t)}
