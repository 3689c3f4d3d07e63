"""Tests of the loss balancers (augkd.balance): AGB's geometry, the balancer contract, and real
steps on a small conv + BatchNorm student."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from augkd.balance import (
    BALANCERS,
    AGBWeights,
    agb_weights,
    create_balancer,
)
from augkd.balance.agb import ANGLE_EPS
from augkd.registry import UnknownNameError
from tests.oracles import kd_terms

# ----------------------------------------------------------------------------- helpers


def _angle(a: Tensor, b: Tensor) -> float:
    """Angle between two vectors, accurate near 0 and pi (Kahan's formula)."""
    ua, ub = a / a.norm(), b / b.norm()
    return 2.0 * math.atan2((ua - ub).norm().item(), (ua + ub).norm().item())


def _weights_for(g_t: Tensor, g_d: Tensor, lam: float) -> AGBWeights:
    return agb_weights(g_t @ g_d, g_t @ g_t, g_d @ g_d, lam, return_info=True)


def _make_student(seed: int = 0, classes: int = 5) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1, bias=False),
        nn.BatchNorm2d(6),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(24, classes),
    )


def _make_teacher() -> nn.Sequential:
    teacher = _make_student(seed=123)
    return teacher.eval().requires_grad_(False)


def _batch(step: int, size: int = 8, classes: int = 5) -> tuple[Tensor, Tensor, Tensor]:
    gen = torch.Generator().manual_seed(1000 + step)
    x = torch.randn(size, 3, 8, 8, generator=gen)
    labels = torch.randint(0, classes, (size,), generator=gen)
    return x, x.flip(3) * 0.8, labels  # an "augmented view"


def _losses(student: nn.Module, teacher: nn.Module, step: int) -> dict[str, Tensor]:
    """The KD terms of one step, with ONE student forward over the original and augmented views."""
    x, x_aug, labels = _batch(step)
    both = torch.cat([x, x_aug])
    student_x, student_aug = student(both).split(len(x))
    with torch.no_grad():
        teacher_x, teacher_aug = teacher(both).split(len(x))
    return kd_terms(student_x, teacher_x, labels, student_aug, teacher_aug)


def _independent_grads(model: nn.Module, teacher: nn.Module, step: int, key: str) -> list[Tensor]:
    """Gradient of one loss term from a fresh forward on a deep copy of ``model``."""
    clone = copy.deepcopy(model)
    loss = _losses(clone, teacher, step)[key]
    return list(torch.autograd.grad(loss, list(clone.parameters())))


def _flat(tensors: list[Tensor]) -> Tensor:
    return torch.cat([t.reshape(-1) for t in tensors]).double()


# ----------------------------------------------------------------------------- agb_weights


def test_agb_weights_keep_norm_and_rotate_by_lambda_theta() -> None:
    gen = torch.Generator().manual_seed(0)
    dims = [2, 3, 8, 64, 1000]
    n_draws, n_degenerate = 300, 0
    for draw in range(n_draws):
        dim = dims[draw % len(dims)]
        lam = torch.rand((), generator=gen, dtype=torch.float64).item()
        scale_t, scale_d = 10.0 ** (6 * torch.rand(2, generator=gen, dtype=torch.float64) - 3)
        g_t = scale_t * torch.randn(dim, generator=gen, dtype=torch.float64)
        g_d = scale_d * torch.randn(dim, generator=gen, dtype=torch.float64)
        info = _weights_for(g_t, g_d, lam)
        if info.degenerate:
            n_degenerate += 1
            continue
        blended = info.alpha * g_t + info.beta * g_d
        theta = _angle(g_t, g_d)
        assert info.cos_theta.item() == pytest.approx(math.cos(theta), abs=1e-12)
        torch.testing.assert_close(blended.norm(), g_t.norm(), rtol=1e-6, atol=0.0)
        assert _angle(g_t, blended) == pytest.approx(lam * theta, abs=1e-7)
        # G lies on the arc from g_t to g_d
        assert _angle(blended, g_d) == pytest.approx((1 - lam) * theta, abs=1e-7)
    assert n_degenerate <= 3  # random directions are almost never (anti)parallel


def test_agb_weights_lambda_endpoints() -> None:
    gen = torch.Generator().manual_seed(1)
    for _ in range(50):
        g_t, g_d = torch.randn(2, 16, generator=gen, dtype=torch.float64)
        g_d = g_d * 7.0
        alpha, beta = agb_weights(g_t @ g_d, g_t @ g_t, g_d @ g_d, 0.0)
        assert alpha.item() == 1.0 and beta.item() == 0.0
        alpha, beta = agb_weights(g_t @ g_d, g_t @ g_t, g_d @ g_d, 1.0)
        blended = alpha * g_t + beta * g_d
        assert abs(alpha.item()) < 1e-12
        assert _angle(blended, g_d) < 1e-7
        torch.testing.assert_close(blended.norm(), g_t.norm(), rtol=1e-6, atol=0.0)


def test_agb_weights_on_floats_match_tensors() -> None:
    g_t = torch.tensor([1.0, 2.0, -0.5], dtype=torch.float64)
    g_d = torch.tensor([0.3, -1.0, 2.0], dtype=torch.float64)
    dot, sq_t, sq_d = (g_t @ g_d).item(), (g_t @ g_t).item(), (g_d @ g_d).item()
    from_floats = agb_weights(dot, sq_t, sq_d, 0.4)
    from_tensors = agb_weights(
        torch.tensor(dot, dtype=torch.float32),
        torch.tensor(sq_t),
        torch.tensor(sq_d),
        torch.tensor(0.4, dtype=torch.float64),
    )
    for a, b in zip(from_floats, from_tensors, strict=True):
        assert a.dtype == torch.float64 and a.dim() == 0
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-9)
    with pytest.raises(ValueError, match="lam"):
        agb_weights(dot, sq_t, sq_d, 1.5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_agb_weights_stay_on_the_device() -> None:
    dot, sq_t, sq_d = (torch.tensor(v, device="cuda") for v in (0.5, 1.0, 2.0))
    alpha, beta = agb_weights(dot, sq_t, sq_d, 0.5)
    assert alpha.device.type == "cuda" and beta.device.type == "cuda"


G_T = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)


@pytest.mark.parametrize(
    ("case", "dot", "sq_t", "sq_d", "lam"),
    [
        ("antiparallel", -2 * (G_T @ G_T), G_T @ G_T, 4 * (G_T @ G_T), 0.5),
        ("zero distill", 0.0, G_T @ G_T, 0.0, 0.5),
        ("zero task", 0.0, 0.0, G_T @ G_T, 0.5),
        ("tiny distill", 1e-14, G_T @ G_T, 1e-26, 0.5),
        ("nan dot", math.nan, 1.0, 1.0, 0.5),
        ("inf norm", 1.0, math.inf, 1.0, 0.5),
        ("nan lam", 0.1, 1.0, 1.0, torch.tensor(math.nan)),
    ],
)
def test_agb_weights_fall_back_to_task_only(case: str, dot, sq_t, sq_d, lam) -> None:
    info = agb_weights(dot, sq_t, sq_d, lam, return_info=True)
    assert info.alpha.item() == 1.0 and info.beta.item() == 0.0, case
    assert bool(info.degenerate) and bool(info.fallback), case
    if case == "antiparallel":
        assert info.cos_theta.item() == pytest.approx(-1.0)
    else:
        assert math.isnan(info.cos_theta.item()), case


@pytest.mark.parametrize("lam", [0.0, 0.3, 1.0])
def test_agb_weights_parallel_limit(lam: float) -> None:
    g_d = 3.0 * G_T
    info = _weights_for(G_T, g_d, lam)
    assert bool(info.degenerate) and not bool(info.fallback)
    assert info.alpha.item() == pytest.approx(1 - lam)
    assert info.beta.item() == pytest.approx(lam / 3.0)
    blended = info.alpha * G_T + info.beta * g_d
    torch.testing.assert_close(blended, G_T)
    # just inside the threshold: the limit still keeps |G| = |g_t| closely
    rotation = 0.5 * ANGLE_EPS
    g_near = 3.0 * torch.tensor([math.cos(rotation), math.sin(rotation)], dtype=torch.float64)
    g_base = torch.tensor([1.0, 0.0], dtype=torch.float64)
    near = _weights_for(g_base, g_near, lam)
    assert bool(near.degenerate) and not bool(near.fallback)
    torch.testing.assert_close(
        (near.alpha * g_base + near.beta * g_near).norm(), g_base.norm(), rtol=1e-6, atol=0.0
    )


# ----------------------------------------------------------------------------- registry


def test_registry_and_option_errors() -> None:
    assert set(BALANCERS.names()) == {"agb", "manual", "uncertainty", "gradnorm"}
    assert create_balancer("agb").lam == 0.5
    with pytest.raises(UnknownNameError, match="known: .*agb"):
        create_balancer("abg")
    with pytest.raises(ValueError, match="'lamda'"):
        create_balancer("agb", lamda=0.3)
    with pytest.raises(ValueError, match="'lam'"):
        create_balancer("agb", lam=1.5)
    with pytest.raises(ValueError, match="'w_distill'"):
        create_balancer("manual", w_distill=-1.0)
    with pytest.raises(ValueError, match="'lr'"):
        create_balancer("gradnorm", lr=0.0)
    with pytest.raises(ValueError, match="'alpha'"):
        create_balancer("gradnorm", alpha=math.nan)


def test_backward_rejects_missing_loss() -> None:
    param = nn.Parameter(torch.ones(2, 2))
    with pytest.raises(ValueError, match="'distill'"):
        create_balancer("agb").backward({"task": param.sum()}, [param])


# ----------------------------------------------------------------------------- real steps


def test_agb_step_matches_independent_blend_and_forwards_once() -> None:
    lam = 0.3
    student, teacher = _make_student(), _make_teacher()
    reference = copy.deepcopy(student)
    params = list(student.parameters())
    for param in params:  # stale gradients must be overwritten, not accumulated
        param.grad = torch.full_like(param, 7.0)
    batches_before = student[1].num_batches_tracked.item()

    balancer = create_balancer("agb", lam=lam)
    balancer.backward(_losses(student, teacher, step=0), params)
    assert student[1].num_batches_tracked.item() == batches_before + 1

    g_t = _flat(_independent_grads(reference, teacher, 0, "task"))
    g_d = _flat(_independent_grads(reference, teacher, 0, "distill"))
    info = _weights_for(g_t, g_d, lam)
    assert not bool(info.degenerate) and abs(info.cos_theta.item()) < 0.99
    got = _flat([p.grad for p in params])
    torch.testing.assert_close(got, info.alpha * g_t + info.beta * g_d, rtol=1e-5, atol=1e-7)
    # the geometry itself, on the real gradients
    torch.testing.assert_close(got.norm(), g_t.norm(), rtol=1e-5, atol=0.0)
    assert _angle(g_t, got) == pytest.approx(lam * _angle(g_t, g_d), abs=1e-4)

    stats = balancer.epoch_stats()
    assert stats["steps"] == 1.0
    assert stats["alpha"] == pytest.approx(info.alpha.item(), rel=1e-5)
    assert stats["beta"] == pytest.approx(info.beta.item(), rel=1e-5)
    assert stats["cos_theta"] == pytest.approx(info.cos_theta.item(), abs=1e-5)
    assert stats["norm_ratio"] == pytest.approx(1.0, abs=1e-6)


def _train(balancer_name: str | None, steps: int = 3, **options: float) -> dict[str, Tensor]:
    student, teacher = _make_student(seed=7), _make_teacher()
    balancer = create_balancer(balancer_name, **options) if balancer_name else None
    optimizer = torch.optim.SGD(student.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    for step in range(steps):
        losses = _losses(student, teacher, step)
        if balancer is None:
            optimizer.zero_grad()
            losses["task"].backward()
        else:
            balancer.backward(losses, list(student.parameters()))
        optimizer.step()
    return student.state_dict()


def test_agb_with_lambda_zero_trains_like_cross_entropy_alone() -> None:
    ce_only = _train(None)
    agb_zero = _train("agb", lam=0.0)
    agb_half = _train("agb", lam=0.5)
    for key, value in ce_only.items():
        torch.testing.assert_close(agb_zero[key], value, rtol=1e-6, atol=1e-7, msg=key)
    assert not torch.allclose(agb_half["5.weight"], ce_only["5.weight"])


def test_manual_is_the_weighted_sum() -> None:
    student, teacher = _make_student(), _make_teacher()
    reference = copy.deepcopy(student)
    params = list(student.parameters())
    balancer = create_balancer("manual", w_task=0.25, w_distill=2.0)
    balancer.backward(_losses(student, teacher, 0), params)
    g_t = _flat(_independent_grads(reference, teacher, 0, "task"))
    g_d = _flat(_independent_grads(reference, teacher, 0, "distill"))
    torch.testing.assert_close(
        _flat([p.grad for p in params]), 0.25 * g_t + 2.0 * g_d, rtol=1e-5, atol=1e-7
    )
    stats = balancer.epoch_stats()
    assert (stats["w_task"], stats["w_distill"], stats["steps"]) == (0.25, 2.0, 1.0)


def test_uncertainty_gradients_and_training() -> None:
    student, teacher = _make_student(), _make_teacher()
    reference = copy.deepcopy(student)
    balancer = create_balancer("uncertainty", init_log_var=0.3)
    assert [p is balancer.log_vars for p in balancer.parameters()] == [True]
    params = list(student.parameters())
    losses = _losses(student, teacher, 0)
    values = torch.stack([losses["task"], losses["distill"]]).detach()
    balancer.backward(losses, params)

    weight = math.exp(-0.3)
    g_t = _flat(_independent_grads(reference, teacher, 0, "task"))
    g_d = _flat(_independent_grads(reference, teacher, 0, "distill"))
    torch.testing.assert_close(
        _flat([p.grad for p in params]), weight * (g_t + g_d), rtol=1e-5, atol=1e-7
    )
    # d/ds [exp(-s) L + s / 2] = -exp(-s) L + 1/2
    torch.testing.assert_close(balancer.log_vars.grad, -weight * values + 0.5)

    optimizer = torch.optim.SGD([*params, *balancer.parameters()], lr=0.05)
    optimizer.step()
    for step in range(1, 4):
        balancer.backward(_losses(student, teacher, step), params)
        optimizer.step()
    assert torch.isfinite(balancer.log_vars).all()
    assert not torch.allclose(balancer.log_vars, torch.full((2,), 0.3))
    stats = balancer.epoch_stats()
    assert stats["steps"] == 4.0
    assert all(math.isfinite(stats[k]) and stats[k] > 0 for k in ("w_task", "w_distill"))

    restored = create_balancer("uncertainty")
    restored.load_state_dict(balancer.state_dict())
    torch.testing.assert_close(restored.log_vars, balancer.log_vars)


def test_gradnorm_weights_follow_the_gradient_norms() -> None:
    # one shared 2-D layer; the distill loss has much the larger gradient there
    shared = nn.Parameter(torch.ones(2, 3))
    a = torch.full((2, 3), 0.1)
    b = torch.full((2, 3), 5.0)
    balancer = create_balancer("gradnorm", alpha=1.5, lr=0.025)
    balancer.backward({"task": (shared * a).sum(), "distill": (shared * b).sum()}, [shared])
    # the first step's gradient uses the initial weights (1, 1)
    torch.testing.assert_close(shared.grad, a + b)
    weights = balancer.weights.clone()
    assert weights[1] < 1.0 < weights[0]
    torch.testing.assert_close(weights.sum(), torch.tensor(2.0))
    balancer.backward({"task": (shared * a).sum(), "distill": (shared * b).sum()}, [shared])
    torch.testing.assert_close(shared.grad, weights[0] * a + weights[1] * b)


def test_gradnorm_trains_and_restores_from_state_dict() -> None:
    student, teacher = _make_student(), _make_teacher()
    params = list(student.parameters())
    balancer = create_balancer("gradnorm")
    optimizer = torch.optim.SGD(params, lr=0.05)
    assert list(balancer.parameters()) == []  # its weights have their own optimizer
    for step in range(3):
        balancer.backward(_losses(student, teacher, step), params)
        optimizer.step()
    assert torch.isfinite(balancer.weights).all()
    torch.testing.assert_close(balancer.weights.sum(), torch.tensor(2.0))
    assert not torch.allclose(balancer.weights, torch.ones(2))
    stats = balancer.epoch_stats()
    assert stats["steps"] == 3.0
    assert all(math.isfinite(v) for v in stats.values())

    restored = create_balancer("gradnorm")
    restored.load_state_dict(balancer.state_dict())
    twin = copy.deepcopy(student)
    balancer.backward(_losses(student, teacher, 3), params)
    restored.backward(_losses(twin, teacher, 3), list(twin.parameters()))
    torch.testing.assert_close(restored.weights, balancer.weights)
    torch.testing.assert_close(restored.adam_step, balancer.adam_step)
    for p, q in zip(params, twin.parameters(), strict=True):
        torch.testing.assert_close(q.grad, p.grad)


@pytest.mark.parametrize("name", ["agb", "manual", "uncertainty", "gradnorm"])
def test_parameters_missing_from_one_loss(name: str) -> None:
    gen = torch.Generator().manual_seed(5)
    shared = nn.Parameter(torch.randn(3, 4, generator=gen))
    distill_only = nn.Parameter(torch.randn(4, generator=gen))
    unused = nn.Parameter(torch.randn(2, generator=gen))
    x = torch.randn(5, 3, generator=gen)
    features = x @ shared
    losses = {
        "task": features.pow(2).mean(),
        "distill": (features - 1).abs().mean() + (distill_only**2).sum(),
    }
    unused.grad = torch.ones(2)
    balancer = create_balancer(name)
    balancer.backward(losses, [shared, distill_only, unused])
    stats = balancer.epoch_stats()
    assert torch.equal(unused.grad, torch.zeros(2))
    assert torch.isfinite(shared.grad).all()
    # distill_only receives w_distill * d(distill)/d(distill_only) = w_distill * 2 p
    torch.testing.assert_close(
        distill_only.grad, stats["w_distill"] * 2 * distill_only.detach(), rtol=1e-5, atol=1e-7
    )


# ----------------------------------------------------------------------------- AGB statistics


def _probe_step(balancer: nn.Module, g_t: list[float], g_d: list[float]) -> Tensor:
    """A step whose gradients are exactly ``g_t`` and ``g_d`` (linear losses in one (1, n)
    parameter, so that GradNorm finds it as its shared layer); returns the written gradient."""
    param = nn.Parameter(torch.zeros(1, len(g_t)))
    balancer.backward(
        {"task": (param @ torch.tensor(g_t)).sum(), "distill": (param @ torch.tensor(g_d)).sum()},
        [param],
    )
    return param.grad.reshape(-1)


def test_agb_epoch_stats_means_counts_and_reset() -> None:
    lam = 0.5
    balancer = create_balancer("agb", lam=lam)
    keys = {"w_task", "w_distill", "alpha", "beta", "cos_theta", "norm_ratio"}
    keys |= {"n_degenerate", "n_fallback", "steps"}
    general = [([1.0, 0.0], [0.0, 2.0]), ([1.0, 0.0], [1.0, 1.0])]  # theta = pi/2, pi/4
    for g_t, g_d in general:
        _probe_step(balancer, g_t, g_d)
    _probe_step(balancer, [1.0, 0.0], [3.0, 0.0])  # parallel: degenerate, not a fallback
    zero_grad = _probe_step(balancer, [1.0, 0.0], [0.0, 0.0])  # fallback
    nan_grad = _probe_step(balancer, [1.0, 2.0], [math.nan, 1.0])  # fallback, NaN kept out
    assert torch.equal(zero_grad, torch.tensor([1.0, 0.0]))
    assert torch.equal(nan_grad, torch.tensor([1.0, 2.0]))

    f64 = torch.float64
    expected = [
        _weights_for(torch.tensor(t, dtype=f64), torch.tensor(d, dtype=f64), lam)
        for t, d in general
    ]
    alphas = [w.alpha.item() for w in expected] + [1 - lam, 1.0, 1.0]
    betas = [w.beta.item() for w in expected] + [lam / 3, 0.0, 0.0]
    stats = balancer.epoch_stats()
    assert set(stats) == keys
    assert stats["steps"] == 5.0
    assert stats["alpha"] == pytest.approx(sum(alphas) / 5) == stats["w_task"]
    assert stats["beta"] == pytest.approx(sum(betas) / 5) == stats["w_distill"]
    # cos_theta only over the steps where it is defined: 0, cos(pi/4), 1
    assert stats["cos_theta"] == pytest.approx((0.0 + math.sqrt(0.5) + 1.0) / 3)
    assert stats["norm_ratio"] == pytest.approx(1.0)
    assert (stats["n_degenerate"], stats["n_fallback"]) == (3.0, 2.0)

    empty = balancer.epoch_stats()
    assert set(empty) == keys
    assert empty["steps"] == 0.0 and empty["n_degenerate"] == 0.0
    assert math.isnan(empty["alpha"])


def test_every_balancer_reports_its_weights() -> None:
    for name in BALANCERS.names():
        balancer = create_balancer(name)
        _probe_step(balancer, [1.0, 0.5], [0.2, 1.0])
        stats = balancer.epoch_stats()
        assert {"w_task", "w_distill", "steps"} <= set(stats), name
        assert stats["steps"] == 1.0, name
        assert math.isfinite(stats["w_task"]) and math.isfinite(stats["w_distill"]), name


@pytest.mark.parametrize("name", ["agb", "manual", "uncertainty", "gradnorm"])
def test_grad_reducer_sees_every_gradient_before_it_is_used(name: str) -> None:
    # a stand-in for the data-parallel all-reduce: doubles what it is given, in place
    calls: list[int] = []

    def double(tensors: list[Tensor]) -> None:
        calls.append(len(tensors))
        for t in tensors:
            t.mul_(2.0)

    plain, reduced = create_balancer(name), create_balancer(name)
    reduced.grad_reducer = double
    grads = [_probe_step(b, [1.0, 0.5], [0.2, 1.0]) for b in (plain, reduced)]
    # agb: task and distill gradients; gradnorm: on its first step both losses' gradients (to
    # find the shared layer), then both shared-layer gradients, the student's gradient and the
    # losses; uncertainty: student and log-variance gradients in one list
    expected_calls = {"agb": [1, 1], "manual": [1], "uncertainty": [2],
                      "gradnorm": [1, 1, 1, 1, 1, 1]}
    assert calls == expected_calls[name]
    # every balancer's blend is linear in gradients scaled alike (AGB's alpha, beta unchanged)
    torch.testing.assert_close(grads[1], 2.0 * grads[0])


def test_agb_flat_buffer_step_equals_the_two_backward_reference_over_steps() -> None:
    """The AGB step (two backwards accumulating into flat buffers, whole-buffer products and
    blend) against the reference: two ``autograd.grad`` calls, float64 products, the blend per
    parameter; on a conv student with BatchNorm and a method's own parameters (a regressor
    that only the distill loss reaches), over steps that reuse the buffers."""
    from augkd.models import create_model

    torch.manual_seed(0)
    student = create_model("resnet8", 5)
    regressor = nn.Linear(5, 5)
    twin, twin_reg = copy.deepcopy(student), copy.deepcopy(regressor)
    balancer = create_balancer("agb", lam=0.7)
    params, method = list(student.parameters()), list(regressor.parameters())
    kept: list[tuple[Tensor, Tensor]] = []
    for step in range(3):
        x = torch.randn(6, 3, 8, 8, generator=torch.Generator().manual_seed(step))
        y = torch.arange(6) % 5
        target = torch.randn(6, 5, generator=torch.Generator().manual_seed(10 + step))

        def losses(model, reg, x=x, y=y, target=target):
            logits = model(x)
            return {"task": F.cross_entropy(logits, y),
                    "distill": (reg(logits) - target).pow(2).mean() + logits.pow(2).mean()}

        balancer.backward(losses(student, regressor), params, method)
        ref = losses(twin, twin_reg)
        twin_params, twin_method = list(twin.parameters()), list(twin_reg.parameters())
        g_t = torch.autograd.grad(ref["task"], twin_params, retain_graph=True)
        g_all = torch.autograd.grad(ref["distill"], twin_params + twin_method)
        g_d = g_all[:len(twin_params)]
        flat_t, flat_d = (torch.cat([g.reshape(-1) for g in gs]).double() for gs in (g_t, g_d))
        alpha, beta = agb_weights(flat_t @ flat_d, flat_t @ flat_t, flat_d @ flat_d, 0.7)
        for p, a, b in zip(params, g_t, g_d, strict=True):
            torch.testing.assert_close(p.grad, (alpha * a + beta * b).float(), rtol=1e-5,
                                       atol=1e-7)
        for p, b in zip(method, g_all[len(twin_params):], strict=True):
            torch.testing.assert_close(p.grad, (beta * b).float(), rtol=1e-5, atol=1e-7)
        stats = balancer.epoch_stats()
        assert stats["alpha"] == pytest.approx(alpha.item(), rel=1e-6)
        assert stats["beta"] == pytest.approx(beta.item(), rel=1e-6)
        # a .grad kept from an earlier step is not overwritten by a later one
        assert all(torch.equal(k, c) for k, c in kept)
        kept = [(p.grad, p.grad.clone()) for p in params]
        # a plain SGD step, then the trainer's zero_grad(set_to_none); the twin follows
        with torch.no_grad():
            for p in params + method:
                p.sub_(0.1 * p.grad)
                p.grad = None
        twin.load_state_dict(student.state_dict())  # weights and BatchNorm statistics
        twin_reg.load_state_dict(regressor.state_dict())


def test_balancer_specs_carry_their_options() -> None:
    gradnorm = create_balancer("gradnorm(alpha=1, lr=0.01)")
    assert (gradnorm.alpha, gradnorm.lr) == (1.0, 0.01)
    uncertainty = create_balancer("uncertainty(init_log_var=0.5)")
    assert torch.equal(uncertainty.log_vars.detach(), torch.full((2,), 0.5))
    assert create_balancer("manual()", w_task=0.2).w_task == 0.2  # spec and arguments add up
    for spec, word in (("gradnorm(alpah=1)", "'alpah'.*allowed: alpha, lr"),
                       ("gradnorm(alpha=fast)", "alpha"), ("gradnorm(lr=0)", "'lr'"),
                       ("uncertainty(init_log_var=true)", "init_log_var"),
                       ("gradnorm(alpha=1", "malformed balancer spec")):
        with pytest.raises(ValueError, match=word):
            create_balancer(spec)
    with pytest.raises(ValueError, match="'lam' given in the spec"):
        create_balancer("agb(lam=0.3)", lam=0.2)
    with pytest.raises(UnknownNameError, match="known: .*gradnorm"):
        create_balancer("gradnrom(alpha=1)")
