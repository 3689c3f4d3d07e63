"""The distillers behind one contract: loss values on fixed tensors, the methods' trainable parts,
cross-family pairs, every method x balancer end to end on digits, exact resumes, specs and CLI.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from augkd.balance import create_balancer
from augkd.distill import (
    DISTILLERS,
    DistillSetup,
    FeatureShapes,
    Step,
    create_distiller,
    list_distillers,
    resolve_method,
)
from augkd.distill.crd import nce_loss, sample_negatives
from augkd.distill.functional import (
    at_loss,
    cc_loss,
    dkd_terms,
    kd_loss,
    nst_loss,
    pkt_loss,
    rkd_loss,
    sp_loss,
    vid_nll,
)
from augkd.models import create_model
from augkd.sweep import load_spec
from augkd.train import main as train_main
from augkd.training import Split, TrainConfig, Trainer, load_teacher, train
from augkd.training.checkpoint import load_checkpoint
from augkd.training.run import RunDir
from augkd.training.step import Batch, StepContext, loss_terms, step_views
from tests.helpers import FAST, train_killed_in_epoch, write_changed_spec

ALL_METHODS = ("kd", "fitnet", "at", "sp", "cc", "vid", "rkd", "pkt", "ft", "nst", "crd", "dkd",
               "mlkd", "gt")


def fixed(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------ the registry
def test_the_methods_are_registered_in_the_protocols_order():
    assert tuple(list_distillers()) == ALL_METHODS


def test_method_specs_parse_and_bad_ones_name_the_problem():
    cls, options = resolve_method("fitnet(hint_layer=1)")
    assert cls.name == "fitnet" and options == {"hint_layer": 1}
    with pytest.raises(ValueError, match="unknown distillation method 'fitnt'; known: kd, fitnet"):
        resolve_method("fitnt")
    with pytest.raises(ValueError, match="fitnet: unknown option 'layer'; allowed: hint_layer"):
        resolve_method("fitnet(layer=1)")
    with pytest.raises(ValueError, match="hint_layer"):
        resolve_method("fitnet(hint_layer=two)")
    with pytest.raises(ValueError, match="malformed distillation method spec"):
        resolve_method("crd(nce_k)")
    with pytest.raises(ValueError, match="distill"):
        TrainConfig(role="teacher", distill="crd")


def test_manual_weights_default_to_the_frameworks_per_method():
    base = dict(role="student", teacher="t", balancer="manual")
    expected = {"kd": (0.1, 0.9), "fitnet": (1, 100), "at": (1, 1000), "sp": (1, 3000),
                "cc": (1, 0.02), "vid": (1, 1), "rkd": (1, 1), "pkt": (1, 30000),
                "ft": (1, 200), "nst": (1, 50), "crd": (1, 0.8)}
    for method, weights in expected.items():
        assert TrainConfig(**base, distill=method).manual_weights == weights, method
    assert TrainConfig(**base, distill="pkt", w_distill=5.0).manual_weights == (1.0, 5.0)


# ------------------------------------------------------------------ pure losses, fixed tensors
def test_at_loss_of_identical_maps_is_zero_and_matches_its_definition():
    f_s, f_t = fixed(4, 3, 6, 6), fixed(4, 5, 6, 6, seed=1)
    assert float(at_loss(f_s, f_s)) == 0.0
    # by hand: per sample, the channel mean of f^2, flattened and L2-normalized
    def attention(f):
        a = (f**2).mean(1).reshape(f.shape[0], -1)
        return a / a.norm(dim=1, keepdim=True)
    expected = ((attention(f_s) - attention(f_t)) ** 2).mean()
    assert float(at_loss(f_s, f_t)) == pytest.approx(float(expected), rel=1e-6)
    # a larger map is average-pooled to the smaller one's size first
    big = fixed(4, 5, 12, 12, seed=2)
    assert float(at_loss(f_s, big)) == pytest.approx(
        float(at_loss(f_s, F.avg_pool2d(big, 2))), rel=1e-6)


def test_sp_loss_is_zero_for_identical_features_and_invariant_to_a_batch_scale():
    f_s, f_t = fixed(8, 4, 3, 3), fixed(8, 6, 3, 3, seed=1)
    assert float(sp_loss(f_t, f_t)) == 0.0
    assert float(sp_loss(7.5 * f_s, f_t)) == pytest.approx(float(sp_loss(f_s, f_t)), rel=1e-5)
    b = 8
    g_s = f_s.reshape(b, -1) @ f_s.reshape(b, -1).t()
    g_t = f_t.reshape(b, -1) @ f_t.reshape(b, -1).t()
    g_s, g_t = g_s / g_s.norm(dim=1, keepdim=True), g_t / g_t.norm(dim=1, keepdim=True)
    assert float(sp_loss(f_s, f_t)) == pytest.approx(float(((g_t - g_s) ** 2).sum() / b**2),
                                                      rel=1e-5)


def test_pkt_loss_of_identical_embeddings_is_about_zero_and_positive_otherwise():
    e = fixed(16, 10)
    assert abs(float(pkt_loss(e, e))) < 1e-6
    assert float(pkt_loss(e, fixed(16, 7, seed=3))) > 1e-4
    # invariant to scaling either embedding (cosine similarities)
    other = fixed(16, 7, seed=3)
    assert float(pkt_loss(3 * e, other)) == pytest.approx(float(pkt_loss(e, other)), rel=1e-4)


def test_rkd_is_invariant_to_scaling_the_embeddings_and_zero_for_identical_ones():
    e_s, e_t = fixed(6, 5), fixed(6, 9, seed=1)
    assert float(rkd_loss(e_t, e_t)) == pytest.approx(0.0, abs=1e-6)
    assert float(rkd_loss(4.0 * e_s, e_t)) == pytest.approx(float(rkd_loss(e_s, e_t)), rel=1e-4)
    assert float(rkd_loss(e_s, 0.1 * e_t)) == pytest.approx(float(rkd_loss(e_s, e_t)), rel=1e-4)


def test_rkd_matches_distances_and_angles_computed_by_loops():
    e_s, e_t = fixed(5, 3), fixed(5, 4, seed=1)

    def relations(e):
        n = e.shape[0]
        d = torch.stack([torch.stack([(e[i] - e[j]).norm() for j in range(n)]) for i in range(n)])
        d = d / (d.sum() / (n * n - n))
        angles = []
        for i in range(n):
            for j in range(n):
                for k in range(n):
                    u, v = e[i] - e[j], e[k] - e[j]
                    un = u / u.norm() if u.norm() > 0 else u
                    vn = v / v.norm() if v.norm() > 0 else v
                    angles.append((un * vn).sum())
        return d, torch.stack(angles)

    (d_s, a_s), (d_t, a_t) = relations(e_s), relations(e_t)
    expected = 25 * F.smooth_l1_loss(d_s, d_t) + 50 * F.smooth_l1_loss(a_s, a_t)
    assert float(rkd_loss(e_s, e_t)) == pytest.approx(float(expected), rel=1e-4)


def test_nst_is_the_polynomial_kernel_mmd_of_the_normalized_channels():
    f_s, f_t = fixed(2, 3, 4, 4), fixed(2, 5, 4, 4, seed=1)
    assert float(nst_loss(f_t, f_t)) == pytest.approx(0.0, abs=1e-6)
    s = F.normalize(f_s.reshape(2, 3, -1), dim=2)
    t = F.normalize(f_t.reshape(2, 5, -1), dim=2)

    def k(a, b):  # mean over the batch and every channel pair of (a_i . b_j)^2
        return torch.stack([(a[n] @ b[n].t()).pow(2).mean() for n in range(2)]).mean()

    expected = k(t, t) + k(s, s) - 2 * k(s, t)
    assert float(nst_loss(f_s, f_t)) == pytest.approx(float(expected), rel=1e-5)


def test_dkd_decomposes_kd_as_its_paper_says():
    # KD = TCKD + (1 - p_t[target]) NCKD, per sample (Zhao et al. 2022, eq. 6)
    s, t = fixed(1, 10), fixed(1, 10, seed=1)
    label = torch.tensor([3])
    tckd, nckd = dkd_terms(s, t, label, temperature=4.0)
    p_target = F.softmax(t / 4.0, dim=1)[0, 3]
    assert float(tckd + (1 - p_target) * nckd) == pytest.approx(
        float(kd_loss(s, t, 4.0)), rel=1e-4)


def test_cc_loss_by_hand():
    e_s = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    e_t = torch.tensor([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0]])
    # |delta| rows (1,0), (0,1), (1,1): consecutive products sum to 0 and 1 -> mean 0.5
    assert float(cc_loss(e_s, e_t)) == pytest.approx(0.5)


def test_vid_nll_is_half_log_variance_at_the_mean():
    f = fixed(2, 3, 2, 2)
    log_scale = torch.tensor([0.0, 1.0, -1.0])
    var = F.softplus(log_scale) + 1e-5
    assert float(vid_nll(f, f, log_scale)) == pytest.approx(float(0.5 * torch.log(var).mean()),
                                                            rel=1e-6)
    shifted = f + 1.0  # a unit error adds 0.5 / var per element
    assert float(vid_nll(shifted, f, log_scale)) == pytest.approx(
        float((0.5 / var + 0.5 * torch.log(var)).mean()), rel=1e-5)


def test_nce_loss_by_hand():
    scores = torch.tensor([[0.5, 0.1, 0.2]])  # positive first, K = 2 negatives, N = 4
    noise = 2 / 4
    expected = -(math.log(0.5 / (0.5 + noise + 1e-7)) + math.log(noise / (0.1 + noise + 1e-7))
                 + math.log(noise / (0.2 + noise + 1e-7)))
    assert float(nce_loss(scores, 4)) == pytest.approx(expected, rel=1e-6)


def test_crd_negatives_come_from_other_classes_only():
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 2, 0, 1, 1])
    by_class = torch.argsort(labels, stable=True)
    counts = torch.bincount(labels)
    starts = torch.cumsum(counts, 0) - counts
    batch = torch.tensor([0, 2, 1, 2])
    for seed in range(20):
        negatives = sample_negatives(batch, by_class, starts, counts, 64,
                                     torch.Generator().manual_seed(seed))
        assert negatives.shape == (4, 64)
        assert bool((labels[negatives] != batch.unsqueeze(1)).all())
        assert int(negatives.min()) >= 0 and int(negatives.max()) < 10


# ------------------------------------------------------------------ modules on real networks
def _setup(student, teacher, size=32, n_train=20, in_channels=3, epochs=10):
    sample = fixed(2, in_channels, size, size)
    labels = torch.arange(n_train) % 10
    return DistillSetup(FeatureShapes.probe(student, sample), FeatureShapes.probe(teacher, sample),
                        train_labels=labels, epochs=epochs)


def _outputs(model, x):
    return model(x, features=True)


@pytest.mark.parametrize("pair", [("resnet32x4", "ShuffleV2"), ("vgg13", "MobileNetV2"),
                                  ("wrn_40_2", "resnet8")])
def test_every_method_builds_and_runs_on_a_cross_family_pair(pair):
    torch.manual_seed(0)
    teacher, student = create_model(pair[0], 10), create_model(pair[1], 10)
    setup = _setup(student, teacher)
    x = fixed(4, 3, 32, 32, seed=5)
    step = Step(labels=torch.tensor([0, 1, 2, 3]), index=torch.tensor([0, 1, 2, 3]),
                view="original", epoch=1)
    for method in ALL_METHODS:
        distiller = create_distiller(method, setup)
        seen = _as_networks_see(distiller, x)
        with torch.no_grad():
            t_out = _outputs(teacher.eval(), seen)
        s_out = _outputs(student.train(), seen)
        loss = distiller(s_out, t_out, step)["loss"]
        assert loss.dim() == 0 and math.isfinite(float(loss.detach())), method


def _as_networks_see(distiller, x):
    """A view as the networks see it: MLKD's base DA gives four rotated copies (block by block),
    here rotations of x itself (the crops are MLKD's base DA's own, tested elsewhere)."""
    if distiller.base_augmentation() is None:
        return x
    return torch.cat([torch.rot90(x, k, dims=(2, 3)) for k in range(4)])


def _method_step(method, seed=0, **options):
    torch.manual_seed(seed)
    teacher, student = create_model("resnet14", 10), create_model("resnet8", 10)
    setup = _setup(student, teacher, size=16)
    spec = method if not options else method + "(" + ",".join(
        f"{k}={v}" for k, v in options.items()) + ")"
    distiller = create_distiller(spec, setup)
    x = _as_networks_see(distiller, fixed(6, 3, 16, 16, seed=seed + 1))
    with torch.no_grad():
        t_out = _outputs(teacher.eval(), x)
    s_out = _outputs(student.train(), x)
    step = Step(labels=torch.tensor([0, 1, 2, 3, 4, 5]), index=torch.tensor([5, 3, 9, 0, 1, 2]),
                view="original", epoch=1, generator=torch.Generator().manual_seed(seed))
    return distiller, student, s_out, t_out, step


@pytest.mark.parametrize("method", ["fitnet", "cc", "vid", "ft", "crd", "mlkd"])
def test_gradient_reaches_every_trainable_part_and_the_student(method):
    distiller, student, s_out, t_out, step = _method_step(method)
    if distiller.pretrains:
        distiller.finish_init()
    trainable = [p for p in distiller.parameters() if p.requires_grad]
    assert trainable, method
    distiller(s_out, t_out, step)["loss"].backward()
    for name, p in distiller.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and float(p.grad.abs().sum()) > 0, (method, name)
    assert any(float(p.grad.abs().sum()) > 0 for p in student.parameters() if p.grad is not None)


def test_ft_freezes_its_pretrained_paraphraser_and_trains_the_translator():
    distiller = _method_step("ft")[0]
    assert {id(p) for p in distiller.init_parameters()} == {
        id(p) for p in distiller.paraphraser.parameters()}
    distiller.finish_init()
    assert not any(p.requires_grad for p in distiller.paraphraser.parameters())
    assert all(p.requires_grad for p in distiller.translator.parameters())


def test_crd_updates_the_memory_rows_of_the_batch_indices_only():
    distiller, _, s_out, t_out, step = _method_step("crd", momentum=0.5)
    before = distiller.memory_student.clone()
    distiller.train()
    distiller(s_out, t_out, step)
    after = distiller.memory_student
    touched = torch.zeros(20, dtype=torch.bool)
    touched[step.index] = True
    assert torch.equal(after[~touched], before[~touched])
    e_s = distiller.embed_student(s_out.pooled).detach()
    mixed = 0.5 * before[step.index] + 0.5 * e_s
    torch.testing.assert_close(after[step.index], F.normalize(mixed, dim=1))
    # the augmented view is scored but does not move the banks
    snapshot = after.clone()
    distiller(s_out, t_out, Step(step.labels, step.index, "augmented", 1, step.generator))
    assert torch.equal(distiller.memory_student, snapshot)


def test_crd_refuses_a_step_without_sample_indices():
    distiller, _, s_out, t_out, step = _method_step("crd")
    with pytest.raises(ValueError, match="index"):
        distiller(s_out, t_out, Step(step.labels, None, "original", 1))


# ------------------------------------------------------------------ balancers and method parts
@pytest.mark.parametrize("balancer", ["manual", "agb", "uncertainty", "gradnorm"])
def test_method_parts_get_the_distill_gradient_at_the_steps_distill_weight(balancer):
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.tensor([[1.0, -2.0]]))  # the student (2-d: GradNorm's layer)
    head = torch.nn.Parameter(torch.tensor([0.5, 0.25]))  # a method's own part
    x = torch.tensor([1.0, 2.0])
    task = ((w * x).sum() - 1) ** 2
    distill = ((w * head).sum() - 3) ** 2
    grad_head = torch.autograd.grad(distill, head, retain_graph=True)[0]
    options = {"manual": {"w_task": 1.0, "w_distill": 0.7}, "agb": {"lam": 0.5}}
    b = create_balancer(balancer, **options.get(balancer, {}))
    b.backward({"task": task, "distill": distill}, [w], [head])
    weight = b.epoch_stats()["w_distill"]
    torch.testing.assert_close(head.grad, (weight * grad_head).to(head.grad.dtype))


def test_agb_weights_are_computed_from_the_students_gradients_alone():
    w = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    head = torch.nn.Parameter(torch.tensor([30.0, 40.0]))  # a large method-only gradient
    x = torch.tensor([1.0, 2.0])

    def losses():
        return {"task": ((w * x).sum() - 1) ** 2, "distill": ((w * head).sum() - 3) ** 2}

    with_part, without = create_balancer("agb", lam=0.5), create_balancer("agb", lam=0.5)
    with_part.backward(losses(), [w], [head])
    g_with = w.grad.clone()
    without.backward(losses(), [w])
    torch.testing.assert_close(g_with, w.grad)


# ------------------------------------------------------------------ end to end on digits
@pytest.fixture(scope="module")
def teacher_run(digits_teacher):
    return digits_teacher  # resnet8, 3 epochs on digits


def _student_cfg(teacher_run, method, balancer, **kw):
    settings = dict(role="student", model="resnet8", teacher=str(teacher_run), distill=method,
                    balancer=balancer, aug="crop+flip", epochs=3, agb_search=False, **FAST)
    return TrainConfig(**{**settings, **kw})


@pytest.mark.parametrize("balancer", ["manual", "agb"])
@pytest.mark.parametrize("method", ALL_METHODS)
def test_every_method_trains_a_digits_student_with_the_loss_falling(
        tmp_path, digits, teacher_run, method, balancer):
    # The framework's hand-tuned betas (AT 1000, SP 3000, PKT 30000) were tuned on 32x32
    # CIFAR-100 feature maps; on 8x8 digits they swamp the task gradient and the CE rises for
    # some methods -- the very problem AGB removes. The manual arm here weighs CE and the
    # method's loss 1 : 1; the framework's weights are pinned by
    # test_manual_weights_default_to_the_frameworks_per_method and the CLI test.
    # CC's embeddings are not normalized (as RepDistiller's): its loss is large and its beta
    # small (0.02); at 1 : 1 it diverges within an epoch, so it keeps the framework's weight.
    weights = ({"w_task": 1.0, "w_distill": 0.02 if method == "cc" else 1.0}
               if balancer == "manual" else {})
    cfg = _student_cfg(teacher_run, method, balancer, epochs=2, batch_size=128, **weights)
    result = train(cfg, tmp_path / "run",
                   data=digits, log=lambda s: None)
    records = RunDir(result.run_dir).read_metrics()
    assert records[-1]["train_task"] < records[0]["train_task"], (method, balancer)
    assert f"train_{method}_original" in records[0] and f"train_{method}_augmented" in records[0]
    summary = json.loads((result.run_dir / "summary.json").read_text())
    assert summary["distill"] == method and summary["balancer"] == balancer
    assert summary["last"]["test_top1"] > 20.0  # chance is 10 %
    # the exported student is the student alone: none of the method's parts
    exported = load_checkpoint(result.run_dir / "model.pt")["model"]
    student_keys = set(create_model("resnet8", 10, 1).state_dict())
    assert set(exported) == student_keys


@pytest.mark.parametrize("method", ["crd", "vid"])
def test_a_killed_run_of_a_method_with_state_resumes_to_identical_weights(
        tmp_path, digits, teacher_run, monkeypatch, method):
    cfg = _student_cfg(teacher_run, method, "agb")
    full = train(cfg, tmp_path / "full", data=digits, log=lambda s: None)
    train_killed_in_epoch(monkeypatch, 3, cfg, tmp_path / "killed", data=digits)
    resumed = train(cfg, tmp_path / "killed", resume=True, data=digits, log=lambda s: None)
    a = load_checkpoint(full.run_dir / "checkpoint.pt")
    b = load_checkpoint(resumed.run_dir / "checkpoint.pt")
    for part in ("model", "distiller"):
        assert a[part].keys() == b[part].keys()
        for key in a[part]:
            assert torch.equal(a[part][key], b[part][key]), (part, key)


def test_ft_pretraining_is_recorded_and_resumed_from_the_run_folder(tmp_path, digits,
                                                                   teacher_run):
    cfg = _student_cfg(teacher_run, "ft(init_epochs=2)", "manual", epochs=1)
    result = train(cfg, tmp_path / "run", data=digits, log=lambda s: None)
    state = load_checkpoint(result.run_dir / "distill_init.pt")
    assert state["epoch"] == 2 and len(state["losses"]) == 2
    assert state["losses"][1] < state["losses"][0]  # the reconstruction improves
    # the student run used the pre-trained paraphraser, unchanged (it is frozen)
    trained = load_checkpoint(result.run_dir / "checkpoint.pt")["distiller"]
    for name, value in state["parameters"].items():
        assert torch.equal(trained[name], value), name


def test_a_trainer_for_ft_without_its_pretrained_state_refuses_to_fit(digits, teacher_run):
    cfg = _student_cfg(teacher_run, "ft(init_epochs=1)", "manual", epochs=1)
    teacher, _ = load_teacher(teacher_run, digits)
    split = Split(digits.train_images[:64], digits.train_labels[:64])
    common = dict(mean=digits.mean, std=digits.std, num_classes=10, in_channels=1,
                  teacher=teacher, run=None, log=lambda s: None)
    with pytest.raises(ValueError, match="pre-training stage.*distiller_init"):
        Trainer(cfg, split, split, **common).fit()
    init = Trainer(cfg, split, split, **common).pretrain_distiller(None)
    assert Trainer(cfg, split, split, distiller_init=init, **common).fit()["last"]["epoch"] == 1


def test_crd_memory_is_indexed_by_the_training_split_under_shuffling(digits, teacher_run):
    cfg = _student_cfg(teacher_run, "crd", "manual", epochs=1)
    teacher, _ = load_teacher(teacher_run, digits)
    split = Split(digits.train_images, digits.train_labels)
    trainer = Trainer(cfg, split, split, mean=digits.mean, std=digits.std, num_classes=10,
                      in_channels=1, teacher=teacher, run=None, log=lambda s: None)
    before = trainer.distiller.memory_student.clone()
    trainer.train_epoch(1)
    after = trainer.distiller.memory_student
    # one epoch visits every sample once (a permutation): every row moved, to a unit vector
    assert bool((after - before).abs().sum(1).gt(0).all())
    torch.testing.assert_close(after.norm(dim=1), torch.ones(len(split)))


def test_the_cli_trains_a_method_given_by_spec(tmp_path, teacher_run, capsys):
    out = tmp_path / "cli"
    code = train_main(["student", "--teacher", str(teacher_run), "--model", "resnet8",
                       "--distill", "fitnet(hint_layer=1)", "--balancer", "manual",
                       "--epochs", "1", "--no-progress", "--device", "cpu", "--out", str(out)])
    assert code == 0
    assert RunDir(out).read_config().distill == "fitnet(hint_layer=1)"
    assert json.loads((out / "summary.json").read_text())["w_distill"] == 100.0
    assert train_main(["student", "--teacher", str(teacher_run), "--distill", "crdd",
                       "--out", str(tmp_path / "bad")]) != 0
    assert "unknown distillation method 'crdd'" in capsys.readouterr().err


# ------------------------------------------------------------------ sweeps
def test_sweep_grids_take_a_distill_axis(tmp_path):
    spec = {"name": "m", "dataset": "digits", "pairs": [{"teacher": "resnet8",
                                                          "student": "resnet8"}],
            "grid": {"aug": ["crop+flip"], "epochs": [1], "distill": ["kd", "crd"],
                     "balancer": ["manual", "agb"]},
            "tstddev": {"modes": []}}
    sweep = load_spec(write_changed_spec(spec, tmp_path))
    students = [j for j in sweep.jobs() if j.kind == "student"]
    assert {(j.distill, j.balancer) for j in students} == {
        ("kd", "manual"), ("kd", "agb"), ("crd", "manual"), ("crd", "agb")}
    keys = {j.key for j in students}
    assert "students/resnet8-resnet8/crop+flip/manual-per-image-e1-s0" in keys  # kd: as before
    assert "students/resnet8-resnet8/crop+flip/crd-agb-per-image-e1-s0" in keys
    assert not [j for j in sweep.jobs() if j.kind == "tstddev"]
    bad = write_changed_spec(spec, tmp_path, grid__distill=["crdd"])
    with pytest.raises(ValueError, match="grid.distill: unknown distillation method 'crdd'"):
        load_spec(bad)


def test_registry_holds_only_distiller_classes():
    for name in DISTILLERS:
        cls = DISTILLERS.get(name)
        assert cls.name == name and len(cls.weights) == 2


# ------------------------------------------------------------------ MLKD
def test_mlkd_views_are_the_four_exact_rotations():
    from augkd.distill.mlkd import rotations

    x = fixed(3, 2, 5, 5)
    r = rotations(x)
    assert r.shape == (12, 2, 5, 5)
    assert torch.equal(r[:3], x)
    n = 5  # quarter turns counter-clockwise, written out index by index
    quarter = torch.stack([torch.stack([x[:, :, j, n - 1 - i] for j in range(n)], 2)
                           for i in range(n)], 2)
    assert torch.equal(r[3:6], quarter)
    assert torch.equal(r[6:9], x.flip(2).flip(3))
    assert torch.equal(r[9:12], quarter.flip(2).flip(3))


def test_mlkd_relation_matrix_relates_rotated_rows_to_unrotated_ones():
    from augkd.distill.mlkd import relation_matrix

    f = fixed(8, 4)  # B = 2: rows 0-1 unrotated, rows 2-7 rotated
    a = relation_matrix(f, 2)
    assert a.shape == (6, 2)
    unit = f / f.norm(dim=1, keepdim=True)
    for i in range(6):
        for j in range(2):
            assert float(a[i, j]) == pytest.approx(float(unit[2 + i] @ unit[j]), rel=1e-5)


def test_mlkd_terms_on_fixed_tensors():
    from augkd.distill.mlkd import alignment_loss, correlation_loss, supcon_loss

    f = fixed(6, 4)
    assert float(alignment_loss(f, 3 * f)) == pytest.approx(0.0, abs=1e-6)  # same direction
    assert float(alignment_loss(f, -f)) == pytest.approx(4.0, rel=1e-6)  # opposite: 2 - 2(-1)
    a = fixed(6, 2, seed=1)
    assert float(correlation_loss(a, a)) == pytest.approx(0.0, abs=1e-6)
    assert float(correlation_loss(a, fixed(6, 2, seed=2))) > 0
    # supervised contrastive by hand: 4 unit vectors, labels (0, 0, 1, 1)
    z = F.normalize(fixed(4, 3, seed=3), dim=1)
    labels = torch.tensor([0, 0, 1, 1])
    expected = 0.0
    for i in range(4):
        others = [a for a in range(4) if a != i]
        denominator = sum(math.exp(float(z[i] @ z[a]) / 0.07) for a in others)
        positive = [p for p in others if labels[p] == labels[i]]
        expected += -sum(math.log(math.exp(float(z[i] @ z[p]) / 0.07) / denominator)
                         for p in positive) / len(positive)
    assert float(supcon_loss(z, labels)) == pytest.approx(expected / 4, rel=1e-4)


def test_mlkd_task_loss_is_on_the_unrotated_images(digits, teacher_run):
    cfg = _student_cfg(teacher_run, "mlkd", "manual", epochs=1)
    teacher, _ = load_teacher(teacher_run, digits)
    split = Split(digits.train_images, digits.train_labels)
    trainer = Trainer(cfg, split, split, mean=digits.mean, std=digits.std, num_classes=10,
                      in_channels=1, teacher=teacher, run=None, log=lambda s: None)
    images, labels = digits.train_images[:16], digits.train_labels[:16]
    generator = torch.Generator().manual_seed(0)
    losses = loss_terms(trainer.parts, Batch(images, labels, torch.arange(16)),
                        StepContext(epoch=1, step=0, generator=generator))
    x = step_views(trainer.parts, Batch(images, labels), torch.Generator().manual_seed(0)).x
    trainer.model.train()
    with torch.no_grad():
        logits = trainer.model(x)  # MLKD's base DA: the four rotated crops, 4B rows
    assert x.shape[0] == 4 * 16
    # BatchNorm normalizes over the 4B batch; CE is on its first B (0-degree) rows
    assert losses["task"].item() == pytest.approx(
        F.cross_entropy(logits[:16], labels).item(), rel=1e-4)
