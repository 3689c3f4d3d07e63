"""Oracles the tests compare augkd against: short, literal restatements of a definition.

``kd_terms`` is the two-view KD step of docs/protocol.md section 1 written as one function;
augkd's trainer composes the same terms from the ``kd`` distiller and the step.
"""

from __future__ import annotations

from torch import Tensor

from augkd.distill import kd_loss, task_loss


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
