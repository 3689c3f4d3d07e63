"""Hinton's KD: ``T^2 KL(softmax(t / T) || softmax(s / T))`` on the logits (docs/protocol.md §1).

The framework's weights are CE 0.1, KD 0.9, at T = 4 (``--temperature``).
"""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor

from augkd.distill.base import Distiller, DistillSetup, Step, register_distiller
from augkd.distill.losses import kd_loss
from augkd.models.base import ModelOutput


@register_distiller("kd")
class KD(Distiller):
    """Temperature-scaled KL between the teacher's and the student's softened logits."""

    weights: ClassVar[tuple[float, float]] = (0.1, 0.9)
    reads_features: ClassVar[bool] = False

    def __init__(self, setup: DistillSetup) -> None:
        super().__init__(setup)
        self.temperature = setup.temperature

    def forward(self, student: ModelOutput, teacher: ModelOutput, step: Step) -> dict[str, Tensor]:
        return {"loss": kd_loss(student.logits, teacher.logits, self.temperature)}
