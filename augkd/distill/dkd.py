"""Decoupled KD (Zhao et al. 2022): target-class and non-target-class KD terms.

``alpha TCKD + beta NCKD`` at temperature T, both scaled by T^2, with the loss weight warmed
up linearly over the first ``warmup`` epochs (20 of 240 in the recipe; by default scaled with
the run's epochs). Defaults alpha 1, T the run's ``--temperature`` (4), and beta as mdistiller
chooses it per CIFAR-100 pair (:data:`PAIR_BETA`, from its ``configs/cifar100/dkd/*.yaml`` at
commit a08d46f): 2 or 6 for the pairs listed there, 8 (``CFG.DKD.BETA``) for every other pair.
``dkd(beta=X)`` fixes it; the value a run used is in its summary.json (``distill_resolved``).
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

#: Logit offset that removes the target class from the non-target softmax (the reference's).
_MASK_OFFSET = 1000.0

#: mdistiller's per-pair beta (configs/cifar100/dkd/*.yaml), by (teacher, student) zoo names.
PAIR_BETA: dict[tuple[str, str], float] = {
    ("resnet56", "resnet20"): 2.0,
    ("resnet110", "resnet32"): 2.0,
    ("vgg13", "vgg8"): 6.0,
    ("vgg13", "MobileNetV2"): 6.0,
    ("wrn_40_2", "wrn_16_2"): 6.0,
    ("wrn_40_2", "wrn_40_1"): 6.0,
}
DEFAULT_BETA = 8.0
"""mdistiller's ``CFG.DKD.BETA``: every pair without a config of its own."""


def pair_beta(teacher: str, student: str) -> float:
    """DKD's beta for a teacher -> student pair, as mdistiller's configs set it."""
    return PAIR_BETA.get((teacher, student), DEFAULT_BETA)


@float32
def dkd_terms(s: Tensor, t: Tensor, labels: Tensor, temperature: float) -> tuple[Tensor, Tensor]:
    """``(TCKD, NCKD)`` of one batch of logits ``[B, C]`` with labels ``[B]``, each x T^2.

    TCKD is the KL between the binary (target, rest) distributions; NCKD the KL between the
    distributions over the non-target classes alone.
    """
    target = F.one_hot(labels, s.shape[1]).to(s.dtype)
    p_s = F.softmax(s / temperature, dim=1)
    p_t = F.softmax(t / temperature, dim=1)
    binary_s = torch.stack([(p_s * target).sum(1), (p_s * (1 - target)).sum(1)], dim=1)
    binary_t = torch.stack([(p_t * target).sum(1), (p_t * (1 - target)).sum(1)], dim=1)
    scale = temperature**2 / s.shape[0]
    tckd = F.kl_div(torch.log(binary_s), binary_t, reduction="sum") * scale
    log_rest_s = F.log_softmax(s / temperature - _MASK_OFFSET * target, dim=1)
    rest_t = F.softmax(t / temperature - _MASK_OFFSET * target, dim=1)
    nckd = F.kl_div(log_rest_s, rest_t, reduction="sum") * scale
    return tckd, nckd


def dkd_loss(s: Tensor, t: Tensor, labels: Tensor, alpha: float = 1.0, beta: float = 8.0,
             temperature: float = 4.0) -> Tensor:
    """``alpha TCKD + beta NCKD`` (see :func:`dkd_terms`), a 0-d float32 tensor."""
    tckd, nckd = dkd_terms(s, t, labels, temperature)
    return alpha * tckd + beta * nckd


@register_distiller("dkd")
class DKD(Distiller):
    """Decoupled KD with its linear warm-up of the loss weight."""

    weights: ClassVar[tuple[float, float]] = (1.0, 1.0)
    reads_features: ClassVar[bool] = False

    def __init__(self, setup: DistillSetup, *, alpha: float = 1.0, beta: float | None = None,
                 warmup: int | None = None) -> None:
        super().__init__(setup)
        if beta is None:
            beta = pair_beta(setup.teacher_name, setup.student_name)
        for name, value in (("alpha", alpha), ("beta", beta)):
            check_option("dkd", name, value, value >= 0, ">= 0")
        if warmup is not None:
            check_option("dkd", "warmup", warmup, warmup >= 0, "an integer >= 0 (epochs)")
        self.alpha, self.beta, self.warmup = alpha, beta, warmup
        self.temperature = setup.temperature
        self.warmup_epochs = (warmup if warmup is not None
                              else max(1, round(20 * setup.epochs / 240)))

    def forward(self, student: ModelOutput, teacher: ModelOutput, step: Step) -> dict[str, Tensor]:
        tckd, nckd = dkd_terms(student.logits, teacher.logits, step.labels, self.temperature)
        ramp = min(step.epoch / self.warmup_epochs, 1.0) if self.warmup_epochs > 0 else 1.0
        loss = ramp * (self.alpha * tckd + self.beta * nckd)
        return {"loss": loss, "tckd": tckd.detach(), "nckd": nckd.detach()}
