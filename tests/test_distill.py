"""Tests of the distillation loss terms (augkd.distill)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from augkd.distill import kd_loss, task_loss
from tests.oracles import kd_terms

STUDENT = torch.tensor([[1.0, 2.0, 3.0], [0.5, -1.0, 0.0]])
TEACHER = torch.tensor([[3.0, 1.0, -2.0], [0.0, 0.0, 2.0]])


def _softmax(row: list[float], temperature: float) -> list[float]:
    exps = [math.exp(v / temperature) for v in row]
    return [e / sum(exps) for e in exps]


def _kd_by_hand(
    student: list[list[float]], teacher: list[list[float]], temperature: float
) -> float:
    total = 0.0
    for s_row, t_row in zip(student, teacher, strict=True):
        p_s, p_t = _softmax(s_row, temperature), _softmax(t_row, temperature)
        total += sum(pt * math.log(pt / ps) for pt, ps in zip(p_t, p_s, strict=True))
    return temperature**2 * total / len(student)


@pytest.mark.parametrize("temperature", [1.0, 2.0, 4.0])
def test_kd_loss_matches_hand_computation(temperature: float) -> None:
    got = kd_loss(STUDENT, TEACHER, temperature)
    expected = _kd_by_hand(STUDENT.tolist(), TEACHER.tolist(), temperature)
    assert got.dim() == 0 and got.dtype == torch.float32
    assert got.item() == pytest.approx(expected, rel=1e-5)


def test_kd_loss_is_zero_for_equal_logits_and_positive_otherwise() -> None:
    logits = torch.randn(8, 10, generator=torch.Generator().manual_seed(0))
    assert kd_loss(logits, logits.clone()).item() == pytest.approx(0.0, abs=1e-6)
    # softmax is shift-invariant: a per-row constant changes nothing
    assert kd_loss(logits, logits + 3.0).item() == pytest.approx(0.0, abs=1e-6)
    assert kd_loss(logits, logits.flip(1)).item() > 1e-3


def test_kd_loss_scales_with_temperature_squared() -> None:
    logits_s = torch.randn(16, 5, generator=torch.Generator().manual_seed(1))
    logits_t = torch.randn(16, 5, generator=torch.Generator().manual_seed(2))
    for temperature in (2.0, 4.0, 8.0):
        scaled = kd_loss(logits_s, logits_t, temperature)
        unscaled = kd_loss(logits_s / temperature, logits_t / temperature, 1.0)
        torch.testing.assert_close(scaled, temperature**2 * unscaled)


def test_kd_loss_gradient_points_from_teacher_to_student() -> None:
    temperature = 4.0
    student = STUDENT.clone().requires_grad_(True)
    loss = kd_loss(student, TEACHER, temperature)
    (grad,) = torch.autograd.grad(loss, student)
    # d/ds [T^2 KL(p_t || p_s)] = T (p_s - p_t) / B
    p_s = F.softmax(STUDENT / temperature, dim=1)
    p_t = F.softmax(TEACHER / temperature, dim=1)
    torch.testing.assert_close(grad, temperature * (p_s - p_t) / STUDENT.shape[0])
    # a small step against the gradient lowers the loss; along it raises it
    with torch.no_grad():
        assert kd_loss(student - 0.1 * grad, TEACHER, temperature) < loss
        assert kd_loss(student + 0.1 * grad, TEACHER, temperature) > loss


def test_kd_loss_runs_in_float32_under_bf16_autocast() -> None:
    student = STUDENT.to(torch.bfloat16)
    teacher = TEACHER.to(torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = kd_loss(student, teacher)
        ce = task_loss(student, torch.tensor([2, 0]))
    assert got.dtype == torch.float32 and ce.dtype == torch.float32
    expected = kd_loss(student.float(), teacher.float())
    torch.testing.assert_close(got, expected)


def test_kd_loss_rejects_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="shape"):
        kd_loss(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="temperature"):
        kd_loss(torch.zeros(2, 3), torch.zeros(2, 3), temperature=0.0)


def test_task_loss_is_cross_entropy() -> None:
    labels = torch.tensor([2, 0])
    rows = zip(STUDENT.tolist(), labels.tolist(), strict=True)
    expected = -sum(math.log(_softmax(row, 1.0)[y]) for row, y in rows) / 2
    assert task_loss(STUDENT, labels).item() == pytest.approx(expected, rel=1e-6)


def test_kd_terms_with_and_without_augmented_view() -> None:
    gen = torch.Generator().manual_seed(3)
    s_x, t_x, s_aug, t_aug = (torch.randn(6, 7, generator=gen) for _ in range(4))
    labels = torch.randint(0, 7, (6,), generator=gen)
    s_x.requires_grad_(True)
    s_aug.requires_grad_(True)
    t_x.requires_grad_(True)  # the teacher must still get no gradient

    terms = kd_terms(s_x, t_x, labels, s_aug, t_aug, temperature=4.0)
    torch.testing.assert_close(terms["task"], F.cross_entropy(s_x, labels))
    kd_x, kd_aug = kd_loss(s_x, t_x, 4.0), kd_loss(s_aug, t_aug, 4.0)
    torch.testing.assert_close(terms["distill"], kd_x + kd_aug)
    torch.testing.assert_close(terms["kd_original"], kd_x)
    torch.testing.assert_close(terms["kd_augmented"], kd_aug)
    assert not terms["kd_original"].requires_grad and not terms["kd_augmented"].requires_grad
    grad_s_x, grad_s_aug, grad_t_x = torch.autograd.grad(
        terms["distill"], [s_x, s_aug, t_x], allow_unused=True
    )
    assert grad_t_x is None
    assert grad_s_x.abs().sum() > 0 and grad_s_aug.abs().sum() > 0

    plain = kd_terms(s_x, t_x, labels, temperature=2.0)
    torch.testing.assert_close(plain["distill"], kd_loss(s_x, t_x, 2.0))
    assert "kd_augmented" not in plain

    with pytest.raises(ValueError, match="together"):
        kd_terms(s_x, t_x, labels, student_aug=s_aug)
