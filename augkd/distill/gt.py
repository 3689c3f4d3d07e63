"""Ground truth as the soft target: Hinton's KD with the one-hot label in the teacher's place.

``D = T^2 KL(softmax(onehot(y) / T) || softmax(s / T))``: the label vector is softened by the
same temperature as the student's logits, exactly where KD puts the teacher's logits (seed 002's
"ground truth as both the soft and the hard target", the hard target being the usual CE). It is
the temperature study's control for what the teacher's soft targets add beyond the labels.
The teacher is still loaded (and its forwards run) so that the run is a student run like the
others; its outputs are not read.
"""

from __future__ import annotations

from typing import ClassVar

import torch.nn.functional as F
from torch import Tensor

from augkd.distill.base import Distiller, DistillSetup, Step, register_distiller
from augkd.distill.losses import kd_loss
from augkd.models.base import ModelOutput


def gt_soft_loss(s: Tensor, labels: Tensor, temperature: float) -> Tensor:
    """``kd_loss(s, onehot(labels), T)`` for logits ``[B, C]`` and labels ``[B]`` (0-d float32)."""
    onehot = F.one_hot(labels, s.shape[1]).to(s.dtype)
    return kd_loss(s, onehot, temperature)


@register_distiller("gt")
class GroundTruth(Distiller):
    """The one-hot labels as the teacher's logits, at the run's ``--temperature``, T^2 kept."""

    weights: ClassVar[tuple[float, float]] = (1.0, 1.0)
    reads_features: ClassVar[bool] = False

    def __init__(self, setup: DistillSetup) -> None:
        super().__init__(setup)
        self.temperature = setup.temperature

    def forward(self, student: ModelOutput, teacher: ModelOutput, step: Step) -> dict[str, Tensor]:
        return {"loss": gt_soft_loss(student.logits, step.labels, self.temperature)}
