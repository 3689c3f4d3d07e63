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


def kd_terms(
    student_x: Tensor,
    teacher_x: Tensor,
    labels: Tensor,
    student_aug: Tensor | None = None,
    teacher_aug: Tensor | None = None,
    temperature: float = 4.0,
) -> dict[str, Tensor]:
    """The named loss terms of one KD step (docs/protocol.md §1).

    The teacher's logits are detached: the teacher is frozen and never receives a gradient.

    Args:
        student_x: (B, C) student logits on the original batch x.
        teacher_x: (B, C) teacher logits on x.
        labels: (B,) int64 labels of x.
        student_aug: (B', C) student logits on the augmented view x~, or None when the step has
            no augmented view; given together with ``teacher_aug``.
        teacher_aug: (B', C) teacher logits on x~, or None.
        temperature: the KD temperature T.

    Returns:
        A dict of 0-d float32 tensors:

        - ``task``: ``CE(S(x), y)``;
        - ``distill``: ``KD(S(x), T(x)) + KD(S(x~), T(x~))``, or only ``KD(S(x), T(x))``
          without an augmented view;
        - ``kd_original``: ``KD(S(x), T(x))``, detached, for logging;
        - ``kd_augmented``: ``KD(S(x~), T(x~))``, detached, for logging; present only when
          the augmented view is given.

        ``task`` and ``distill`` carry the graph; balancers read only these two keys.
    """
    if (student_aug is None) != (teacher_aug is None):
        raise ValueError(
            "student_aug and teacher_aug must be given together (both logits of the augmented "
            f"view) or not at all; got student_aug={'set' if student_aug is not None else None}, "
            f"teacher_aug={'set' if teacher_aug is not None else None}"
        )
    kd_original = kd_loss(student_x, teacher_x.detach(), temperature)
    terms = {"task": task_loss(student_x, labels)}
    if student_aug is None:
        terms["distill"] = kd_original
    else:
        kd_augmented = kd_loss(student_aug, teacher_aug.detach(), temperature)
        terms["distill"] = kd_original + kd_augmented
        terms["kd_augmented"] = kd_augmented.detach()
    terms["kd_original"] = kd_original.detach()
    return terms
