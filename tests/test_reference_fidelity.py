"""Every method as its reference code defines it (issue: every method exactly as its reference).

Each test computes what the reference code would compute, from that code's definition (cited by
repository, file and line in the docstring, at the commit docs/teachers.md and the method's
module name), on fixed tensors, and compares augkd's result with it. None copies the reference's
code: the expected values are written from the definition, in float64 NumPy where that is simpler.

References (fetched 2026-12-03):
- RepDistiller, HobbitLong/RepDistiller @ b84f547
- mdistiller, megvii-research/mdistiller @ a08d46f
- DLKD (MLKD's authors' code), ifding/DLKD @ c7528eb
"""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from augkd.balance import create_balancer
from augkd.balance.gradnorm import shared_layer_index
from augkd.distill import DistillSetup, FeatureShapes, create_distiller, list_distillers
from augkd.distill.crd import sample_negatives
from augkd.distill.dkd import DEFAULT_BETA, pair_beta
from augkd.distill.ft import factor_loss
from augkd.distill.mlkd import ROTATIONS, RotatedCrops
from augkd.models import create_model
from augkd.training import Split, TrainConfig, Trainer, train
from tests.helpers import FAST


def fixed(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _setup(student, teacher, size=16, labels=None, student_name="", teacher_name=""):
    sample = fixed(2, 3, size, size)
    labels = torch.arange(10).repeat(3) if labels is None else labels
    return DistillSetup(FeatureShapes.probe(student, sample), FeatureShapes.probe(teacher, sample),
                        labels, epochs=240, student_name=student_name, teacher_name=teacher_name)


# ------------------------------------------------------------------ 1. GradNorm's shared layer
def _one_step_trainer(digits, method: str, seed: int = 0) -> Trainer:
    """A resnet8 student of a (random) resnet14 teacher on 64 digits images: one real step."""
    torch.manual_seed(seed)
    teacher = create_model("resnet14", 10, 1).eval()
    split = Split(digits.train_images[:64], digits.train_labels[:64])
    cfg = TrainConfig(role="student", model="resnet8", teacher="t", epochs=1, balancer="gradnorm",
                      distill=method, seed=seed, **FAST)
    common = dict(mean=digits.mean, std=digits.std, num_classes=10, in_channels=1,
                  teacher=teacher, run=None, log=lambda s: None, teacher_arch="resnet14")
    if method == "ft":
        cfg = dataclasses.replace(cfg, distill="ft(init_epochs=1)")
        common["distiller_init"] = Trainer(cfg, split, split, **common).pretrain_distiller(None)
    return Trainer(cfg, split, split, **common)


@pytest.mark.parametrize("method", list_distillers())
def test_gradnorm_layer_is_reached_by_both_losses_for_every_method(digits, method):
    """GradNorm (Chen et al. 2018, Algorithm 1) balances |grad_W (w_i L_i)| at a layer W shared by
    the losses. With W = the classifier, a feature method's distill gradient there is exactly 0
    and GradNorm can only lower the task weight; W must be a layer both losses reach."""
    trainer = _one_step_trainer(digits, method)
    record = trainer.train_epoch(1)
    assert record["balance_grad_norm_task"] > 0, method
    assert record["balance_grad_norm_distill"] > 0, method
    shared = trainer.params[trainer.balancer.shared_index]
    assert shared.dim() >= 2
    if method in ("kd", "dkd", "gt"):  # logit methods: the classifier itself
        assert shared is trainer.model.fc.weight if hasattr(trainer.model, "fc") else True


def test_gradnorm_refuses_losses_that_share_no_layer():
    a, b = torch.nn.Parameter(torch.ones(2, 2)), torch.nn.Parameter(torch.ones(2, 2))
    balancer = create_balancer("gradnorm")
    with pytest.raises(ValueError, match="no student parameter with ndim >= 2 gets a non-zero"):
        balancer.backward({"task": (a * 2).sum(), "distill": (b * 3).sum()}, [a, b])
    zeros = [torch.zeros(2, 2), torch.zeros(2, 2)]
    with pytest.raises(ValueError, match="no student parameter"):
        shared_layer_index([a, b], zeros, zeros)


def test_gradnorm_picks_the_last_layer_both_reach():
    w1, w2, w3 = (torch.nn.Parameter(torch.ones(2, 2)) for _ in range(3))
    x = torch.ones(2)
    h = w2 @ (w1 @ x)
    task, distill = (w3 @ h).sum(), h.pow(2).sum()  # distill stops at w2; w3 is task-only
    balancer = create_balancer("gradnorm")
    balancer.backward({"task": task, "distill": distill}, [w1, w2, w3])
    assert balancer.shared_index == 1


@pytest.mark.slow
def test_gradnorm_keeps_cross_entropy_in_play_over_200_steps_of_a_feature_method(digits, tmp_path):
    """About 200 steps (9 epochs of digits at batch 64) of FitNet with GradNorm, 2 seeds: the task
    weight stays well inside (0, 2) and the student is not below cross-entropy training alone by
    more than seed noise. With the classifier as W the task weight sat at its floor (0.001) from
    epoch 4 and the students ended 9-12 points below CE alone (82.5 and 79.2 % against 91.1 %)."""
    quiet = dict(data=digits, log=lambda s: None)
    teacher = train(TrainConfig(role="teacher", model="resnet8", epochs=15, **FAST),
                    tmp_path / "t", **quiet)
    accs: dict[str, list[float]] = {"gradnorm": [], "ce": []}
    task_weights: list[float] = []
    for seed in (0, 1):
        ce = train(TrainConfig(role="teacher", model="resnet8", epochs=9, seed=seed, **FAST),
                   tmp_path / f"ce{seed}", **quiet)
        accs["ce"].append(ce.summary["last"]["test_top1"])
        cfg = TrainConfig(role="student", model="resnet8", teacher=str(teacher.run_dir),
                          epochs=9, seed=seed, distill="fitnet", balancer="gradnorm", **FAST)
        run = train(cfg, tmp_path / f"gn{seed}", **quiet)
        accs["gradnorm"].append(run.summary["last"]["test_top1"])
        for line in (run.run_dir / "metrics.jsonl").read_text().splitlines():
            task_weights.append(json.loads(line)["balance_w_task"])
    assert len(task_weights) == 18
    assert all(0.1 < w < 1.9 for w in task_weights), task_weights
    noise = max(np.std(accs["ce"], ddof=1), np.std(accs["gradnorm"], ddof=1), 1.0)
    assert np.mean(accs["gradnorm"]) >= np.mean(accs["ce"]) - 2 * noise, accs


# ------------------------------------------------------------------ 2. CC
def test_cc_loss_is_repdistillers_on_unnormalized_linear_embeddings():
    """RepDistiller train_student.py:211-216 builds ``LinearEmbed`` (models/util.py:185-194: a
    flatten and an ``nn.Linear``, no normalization) for both networks; distiller_zoo/CC.py:15-18:
    ``delta = |f_s - f_t|``, loss ``mean_i sum_d delta[i] * delta[i+1]``."""
    torch.manual_seed(0)
    teacher, student = create_model("resnet14", 10), create_model("resnet8", 10)
    distiller = create_distiller("cc", _setup(student, teacher))
    pooled_s, pooled_t = fixed(6, 64, seed=1), fixed(6, 64, seed=2)

    def embed(module, x):
        w = module.linear.weight.detach().double().numpy()
        b = module.linear.bias.detach().double().numpy()
        return x.double().numpy() @ w.T + b

    e_s, e_t = embed(distiller.embed_student, pooled_s), embed(distiller.embed_teacher, pooled_t)
    delta = np.abs(e_s - e_t)
    expected = float(np.mean(np.sum(delta[:-1] * delta[1:], axis=1)))

    class Out:
        def __init__(self, pooled):
            self.pooled = pooled

    got = distiller(Out(pooled_s), Out(pooled_t), None)["loss"].detach()
    assert math.isclose(float(got), expected, rel_tol=1e-5)
    normalized = create_distiller("cc(normalize=true)", _setup(student, teacher))
    normalized.load_state_dict(distiller.state_dict())
    assert float(normalized(Out(pooled_s), Out(pooled_t), None)["loss"].detach()) < expected / 5


# ------------------------------------------------------------------ 3. FT
def _reference_factor(f: np.ndarray) -> np.ndarray:
    """RepDistiller distiller_zoo/FT.py:29-30 with p1 = 2: ``normalize(f.pow(2).mean(1).view(B,
    -1))``, L2 over each row."""
    v = (f**2).mean(axis=1).reshape(f.shape[0], -1)
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)


def test_ft_factor_loss_is_repdistillers_factor_transfer():
    """RepDistiller distiller_zoo/FT.py:9-27: ``FactorTransfer(p1=2, p2=1)`` (as train_student.py
    builds it): maps pooled to the smaller size, then ``mean |factor(f_s) - factor(f_t)|``."""
    f_s, f_t = fixed(4, 8, 4, 4, seed=3), fixed(4, 8, 8, 8, seed=4)
    pooled_t = F.adaptive_avg_pool2d(f_t, (4, 4))
    expected = np.abs(_reference_factor(f_s.double().numpy())
                      - _reference_factor(pooled_t.double().numpy())).mean()
    assert math.isclose(float(factor_loss(f_s, f_t)), expected, rel_tol=1e-5)
    # the paper's form stays available as an explicit option, and differs
    flat = float(factor_loss(f_s, f_t, "flat"))
    a = F.normalize(f_s.flatten(1), dim=1) - F.normalize(pooled_t.flatten(1), dim=1)
    assert math.isclose(flat, float(a.abs().mean()), rel_tol=1e-5)
    assert not math.isclose(flat, expected, rel_tol=1e-2)


@pytest.mark.parametrize("student, lr", [("resnet8", 0.01), ("wrn_16_2", 0.01),
                                         ("MobileNetV2", None), ("vgg8", None)])
def test_ft_pretraining_lr_follows_repdistiller(student, lr):
    """RepDistiller helper/pretrain.py:21-26: lr 0.01 for the paraphraser when the student is a
    resnet (8..110, 8x4, 32x4) or wrn, else ``opt.learning_rate``."""
    torch.manual_seed(0)
    s, t = create_model(student, 10), create_model("resnet14", 10)
    ft = create_distiller("ft", _setup(s, t, size=32, student_name=student))
    assert ft.init_lr == lr
    assert create_distiller("ft(init_lr=0.2)", _setup(s, t, size=32)).init_lr == 0.2


def test_ft_pretraining_runs_at_the_methods_lr(digits, monkeypatch):
    seen = []
    real_sgd = torch.optim.SGD

    def spy(params, lr, **kw):
        seen.append(lr)
        return real_sgd(params, lr=lr, **kw)

    trainer = _one_step_trainer(digits, "kd")  # a teacher to build from
    cfg = TrainConfig(role="student", model="resnet8", teacher="t", epochs=1, balancer="manual",
                      distill="ft(init_epochs=1)", lr=0.05, **FAST)
    split = Split(digits.train_images[:64], digits.train_labels[:64])
    ft_trainer = Trainer(cfg, split, split, mean=digits.mean, std=digits.std, num_classes=10,
                         in_channels=1, teacher=trainer.teacher, run=None, log=lambda s: None)
    monkeypatch.setattr(torch.optim, "SGD", spy)
    ft_trainer.pretrain_distiller(None)
    assert seen == [0.01]


# ------------------------------------------------------------------ 4. MLKD
def _reference_rotated_crops(images: np.ndarray, flip: np.ndarray, oy: np.ndarray,
                             ox: np.ndarray, pad: int) -> np.ndarray:
    """ifding/DLKD dataset/cifar.py:140-165: flip the HWC image once (p 0.5), then for k = 0..3
    ``np.rot90(img, k)`` and the transform (RandomCrop(size, padding)) of each rotated copy on
    its own; here the crops' offsets are given, ``[4B]``, rotation-major."""
    b = images.shape[0]
    out = []
    for k in range(ROTATIONS):
        for i in range(b):
            img = images[i].transpose(1, 2, 0)  # HWC
            if flip[i]:
                img = img[:, ::-1]
            img = np.rot90(img, k)
            padded = np.pad(img, ((pad, pad), (pad, pad), (0, 0)))
            j = k * b + i
            h, w = img.shape[:2]
            out.append(padded[oy[j]:oy[j] + h, ox[j]:ox[j] + w].transpose(2, 0, 1))
    return np.stack(out)


def test_mlkd_rotations_each_get_their_own_crop_as_the_authors_code():
    images = torch.randint(0, 256, (5, 3, 16, 16), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(0))
    aug = RotatedCrops()
    params = aug.sample(images.shape, images.device, torch.Generator().manual_seed(1))
    out = aug.apply(images, params).images
    expected = _reference_rotated_crops(images.numpy(), params.flip.numpy(),
                                        params.crop.offset_y.numpy(),
                                        params.crop.offset_x.numpy(), params.crop.padding)
    assert out.shape == (20, 3, 16, 16)
    np.testing.assert_array_equal(out.numpy(), expected)
    # independent crops: the rotated copies are not rotations of the unrotated one
    rotated_first = torch.cat([torch.rot90(out[:5], k, dims=(2, 3)) for k in range(ROTATIONS)])
    assert not torch.equal(rotated_first, out)
    offsets = torch.stack([params.crop.offset_y, params.crop.offset_x]).view(2, ROTATIONS, 5)
    assert (offsets != offsets[:, :1]).any()


def test_mlkd_trains_on_its_rotated_crops(digits):
    trainer = _one_step_trainer(digits, "mlkd")
    assert isinstance(trainer.pipeline.base, RotatedCrops)
    views = trainer.pipeline(digits.train_images[:8], torch.Generator().manual_seed(0))
    assert views.original.shape[0] == ROTATIONS * 8
    assert math.isfinite(trainer.train_epoch(1)["train_task"])


# ------------------------------------------------------------------ 5. CRD
def _class_index(labels: torch.Tensor):
    by_class = torch.argsort(labels, stable=True)
    counts = torch.bincount(labels)
    return by_class, counts.cumsum(0) - counts, counts


def test_crd_negatives_are_drawn_without_replacement_when_they_fit_the_pool():
    """RepDistiller dataset/cifar100.py:166-167: ``replace = True if self.k >
    len(self.cls_negative[target]) else False``; ``np.random.choice(cls_negative[target], k,
    replace=replace)``: k distinct samples of the other classes when k fits."""
    labels = torch.arange(10).repeat_interleave(30)  # 300 samples, pools of 270
    by_class, start, counts = _class_index(labels)
    batch = torch.tensor([0, 3, 3, 9])
    g = torch.Generator().manual_seed(0)
    for k in (16, 270):
        neg = sample_negatives(batch, by_class, start, counts, k, g, "auto", 270)
        for row, y in zip(neg, batch, strict=True):
            assert len(set(row.tolist())) == k
            assert (labels[row] != y).all()
    full = sample_negatives(batch, by_class, start, counts, 270, g, "auto", 270)
    expected = set(torch.nonzero(labels != 3).flatten().tolist())
    assert set(full[1].tolist()) == expected  # all of the pool, each once


def test_crd_draws_with_replacement_only_in_rows_whose_pool_is_too_small():
    labels = torch.tensor([0] * 2 + [1] * 8 + [2] * 10)  # pools: 18, 12, 10
    by_class, start, counts = _class_index(labels)
    batch = torch.tensor([0, 1, 2])
    neg = sample_negatives(batch, by_class, start, counts, 12, torch.Generator().manual_seed(0),
                           "auto", 18)
    assert len(set(neg[0].tolist())) == 12 and len(set(neg[1].tolist())) == 12
    assert len(set(neg[2].tolist())) <= 10  # 12 draws from 10: some repeat
    for row, y in zip(neg, batch, strict=True):
        assert (labels[row] != y).all()


def test_crd_module_chooses_the_draw_from_the_split():
    torch.manual_seed(0)
    s, t = create_model("resnet8", 10), create_model("resnet14", 10)
    labels = torch.arange(10).repeat_interleave(30)
    fits = create_distiller("crd(nce_k=100)", _setup(s, t, labels=labels))
    assert fits._draw == "never"
    too_many = create_distiller("crd(nce_k=1000)", _setup(s, t, labels=labels))
    assert too_many._draw == "always"
    with pytest.raises(ValueError, match="replace=never needs nce_k <= 270"):
        create_distiller("crd(nce_k=1000, replace=never)", _setup(s, t, labels=labels))


# ------------------------------------------------------------------ 6. DKD
@pytest.mark.parametrize("teacher, student, beta", [
    ("resnet56", "resnet20", 2.0), ("resnet110", "resnet32", 2.0), ("vgg13", "vgg8", 6.0),
    ("vgg13", "MobileNetV2", 6.0), ("wrn_40_2", "wrn_16_2", 6.0), ("wrn_40_2", "wrn_40_1", 6.0),
    ("resnet32x4", "resnet8x4", 8.0), ("wrn_40_2", "ShuffleV1", 8.0), ("resnet20", "resnet8", 8.0),
])
def test_dkd_beta_is_mdistillers_per_pair(teacher, student, beta):
    """mdistiller configs/cifar100/dkd/*.yaml set ``DKD.BETA`` 2.0 (res56_res20, res110_res32) and
    6.0 (vgg13_vgg8, vgg13_mv2, wrn40_2_wrn_16_2, wrn40_2_wrn_40_1); every other pair takes
    mdistiller/engine/cfg.py:165 ``CFG.DKD.BETA = 8.0``."""
    assert pair_beta(teacher, student) == beta
    torch.manual_seed(0)
    s, t = create_model("resnet8", 10), create_model("resnet14", 10)
    dkd = create_distiller("dkd", _setup(s, t, student_name=student, teacher_name=teacher))
    assert dkd.beta == beta and f"beta={beta}" in dkd.resolved_spec()
    fixed_beta = create_distiller("dkd(beta=3)", _setup(s, t, student_name=student,
                                                        teacher_name=teacher))
    assert fixed_beta.beta == 3
    assert DEFAULT_BETA == 8.0


def test_dkd_run_records_the_beta_it_used(digits, tmp_path):
    t = train(TrainConfig(role="teacher", model="resnet8", epochs=1, **FAST), tmp_path / "t",
              data=digits, log=lambda s: None)
    cfg = TrainConfig(role="student", model="resnet8", teacher=str(t.run_dir), epochs=1,
                      distill="dkd", balancer="manual", **FAST)
    lines: list[str] = []
    run = train(cfg, tmp_path / "s", data=digits, log=lines.append)
    assert run.summary["distill_resolved"].startswith("dkd(alpha=1.0, beta=8.0")
    assert any(line.startswith("method: dkd(") for line in lines)
