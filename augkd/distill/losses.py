"""The loss terms of a KD step: task (cross-entropy) and distill (temperature-scaled KL).

The recipe of docs/protocol.md §1 is::

    0.1 * CE(S(x), y) + 0.9 * [ KD(S(x), T(x)) + KD(S(x~), T(x~)) ]

This module computes the two *named* terms, ``task = CE(S(x), y)`` and
``distill = KD(S(x), T(x)) + KD(S(x~), T(x~))``; how they are weighted is the balancer's job
(:mod:`augkd.balance`). The target on the augmented view is the teacher's own output on it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _check_logits(name: str, logits: Tensor) -> None:
    if logits.dim() != 2:
        raise ValueError(f"{name} must be (batch, classes) logits, got shape {tuple(logits.shape)}")


def kd_loss(student_logits: Tensor, teacher_logits: Tensor, temperature: float = 4.0) -> Tensor:
    """Hinton's distillation loss ``T^2 * KL(softmax(t / T) || softmax(s / T))``.

    The KL divergence is summed over classes and averaged over the batch. The computation runs in
    float32 whatever the input dtype, also inside a bf16/fp16 autocast region. Gradients flow into
    both arguments; pass detached teacher logits (or compute them under ``torch.no_grad``) to keep
    the teacher frozen.

    Args:
        student_logits: (B, C) float tensor, any floating dtype.
        teacher_logits: (B, C) float tensor, same shape.
        temperature: the softening temperature T > 0.

    Returns:
        A 0-d float32 tensor.
    """
    _check_logits("student_logits", student_logits)
    if teacher_logits.shape != student_logits.shape:
        raise ValueError(
            f"teacher_logits shape {tuple(teacher_logits.shape)} differs from "
            f"student_logits shape {tuple(student_logits.shape)}"
        )
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    with torch.autocast(device_type=student_logits.device.type, enabled=False):
        log_p_student = F.log_softmax(student_logits.float() / temperature, dim=1)
        log_p_teacher = F.log_softmax(teacher_logits.float() / temperature, dim=1)
        # "batchmean": sum over classes and batch, divided by the batch size.
        kl = F.kl_div(log_p_student, log_p_teacher, reduction="batchmean", log_target=True)
    return kl * (temperature * temperature)


def task_loss(student_logits: Tensor, labels: Tensor) -> Tensor:
    """Mean cross-entropy of the student's logits with the hard labels, computed in float32.

    Args:
        student_logits: (B, C) float tensor.
        labels: (B,) int64 class indices.

    Returns:
        A 0-d float32 tensor.
    """
    _check_logits("student_logits", student_logits)
    with torch.autocast(device_type=student_logits.device.type, enabled=False):
        return F.cross_entropy(student_logits.float(), labels)
