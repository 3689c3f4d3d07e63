"""The trainer end to end on digits: teacher and student runs, resume, errors, manifests."""

from __future__ import annotations

import json

import pytest
import torch

from augkd.training import NonFiniteLossError, Split, TrainConfig, Trainer, load_teacher, train
from augkd.training import step as step_module
from augkd.training.checkpoint import atomic_save, load_checkpoint
from augkd.training.run import RunDir
from augkd.training.step import Batch, StepContext, train_step
from tests.helpers import FAST


def teacher_cfg(**kw) -> TrainConfig:
    return TrainConfig(**{"role": "teacher", "model": "resnet8", "epochs": 3, **FAST, **kw})


@pytest.fixture(scope="module")
def teacher_run(tmp_path_factory, digits):
    out = tmp_path_factory.mktemp("teacher")
    return train(teacher_cfg(epochs=8), out / "run", data=digits, log=lambda s: None)


def test_teacher_run_beats_chance_and_writes_its_folder(teacher_run, digits):
    run = RunDir(teacher_run.run_dir)
    assert teacher_run.summary["last"]["test_top1"] > 80.0  # chance is 10 %
    records = run.read_metrics()
    assert [r["epoch"] for r in records] == list(range(1, 9))
    for key in ("train_task", "test_loss", "test_top1", "test_top5", "lr", "epoch_time_s"):
        assert key in records[0]
    assert records[0]["lr"] == pytest.approx(0.05)
    assert records[-1]["lr"] == pytest.approx(0.05 * 0.1**3)  # decayed at epochs 5, 6, 7
    config = run.read_config()
    assert config.replace(mean=None, std=None) == teacher_cfg(epochs=8)
    assert config.mean == pytest.approx(digits.mean) and config.std == pytest.approx(digits.std)
    model = load_checkpoint(run.model)
    manifest = model["manifest"]
    assert manifest["architecture"] == "resnet8"
    assert manifest["num_classes"] == 10 and manifest["in_channels"] == 1
    assert manifest["dataset"] == "digits" and manifest["config"]["epochs"] == 8
    summary = json.loads(run.summary.read_text())
    assert "best" not in summary  # no test-selected epoch is exported
    assert summary["last"]["test_top1"] == manifest["test_top1"]


def test_lr_milestones_scale_with_epochs():
    assert TrainConfig(epochs=240).lr_milestones == [150, 180, 210]
    assert TrainConfig(epochs=480).lr_milestones == [300, 360, 420]


@pytest.mark.parametrize(
    "kw, word",
    [({"epochs": 0}, "epochs"), ({"role": "pupil"}, "role"), ({"agb_lambda": 1.5}, "agb_lambda"),
     ({"role": "student"}, "teacher")],
)
def test_config_errors_name_the_field(kw, word):
    with pytest.raises(ValueError, match=word):
        TrainConfig(**kw)


def test_unknown_config_key_is_named():
    with pytest.raises(ValueError, match="learning_rate"):
        TrainConfig.from_dict({"learning_rate": 0.1})


def _weights(path):
    return load_checkpoint(path)["model"]


def test_killed_run_resumes_to_the_same_weights(tmp_path, digits, monkeypatch):
    cfg = teacher_cfg(epochs=3)
    full = train(cfg, tmp_path / "full", data=digits, log=lambda s: None)

    original = Trainer.train_epoch

    def dies_in_epoch_2(self, epoch):
        if epoch == 2:
            raise KeyboardInterrupt  # the run is killed mid-way
        return original(self, epoch)

    monkeypatch.setattr(Trainer, "train_epoch", dies_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path / "killed", data=digits, log=lambda s: None)
    assert load_checkpoint(tmp_path / "killed" / "checkpoint.pt")["epoch"] == 1
    monkeypatch.setattr(Trainer, "train_epoch", original)
    with pytest.raises(FileExistsError, match="--resume"):
        train(cfg, tmp_path / "killed", data=digits, log=lambda s: None)
    resumed = train(cfg, tmp_path / "killed", resume=True, data=digits, log=lambda s: None)

    a, b = _weights(full.run_dir / "model.pt"), _weights(resumed.run_dir / "model.pt")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    epochs = [r["epoch"] for r in RunDir(resumed.run_dir).read_metrics()]
    assert epochs == [1, 2, 3]


def test_resume_refuses_a_changed_config(tmp_path, digits):
    train(teacher_cfg(epochs=1), tmp_path / "r", data=digits, log=lambda s: None)
    with pytest.raises(ValueError, match="lr"):
        train(teacher_cfg(epochs=1, lr=0.1), tmp_path / "r", resume=True, data=digits)


def test_non_finite_loss_stops_naming_epoch_and_step(tmp_path, digits, monkeypatch):
    original = step_module.loss_terms

    def poisoned(parts, batch, ctx):
        losses = original(parts, batch, ctx)
        if (ctx.epoch, ctx.step) == (2, 4):
            losses["task"] = losses["task"] * float("nan")
        return losses

    monkeypatch.setattr(step_module, "loss_terms", poisoned)
    with pytest.raises(NonFiniteLossError, match=r"epoch 2, step 4"):
        train(teacher_cfg(epochs=3), tmp_path / "nan", data=digits, log=lambda s: None)
    assert load_checkpoint(tmp_path / "nan" / "checkpoint.pt")["epoch"] == 1


def test_atomic_save_keeps_the_old_file_when_a_write_fails(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pt"
    atomic_save({"epoch": 1}, path)

    def broken_save(obj, f):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError):
        atomic_save({"epoch": 2}, path)
    monkeypatch.undo()
    assert load_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]  # no temp file left behind


def test_teacher_for_another_dataset_is_refused(teacher_run, digits):
    other = digits.__class__(**{**digits.__dict__, "checksum": "0" * 64})
    with pytest.raises(ValueError, match="does not fit"):
        load_teacher(teacher_run.run_dir, other)
    fewer = digits.__class__(**{**digits.__dict__, "classes": digits.classes[:5]})
    with pytest.raises(ValueError, match="classes"):
        load_teacher(teacher_run.run_dir, fewer)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_teacher("nowhere/model.pt", digits)


def student_cfg(teacher_run, **kw) -> TrainConfig:
    base = dict(role="student", model="resnet8", teacher=str(teacher_run.run_dir), epochs=2,
                aug="cutmix", balancer="manual")
    return TrainConfig(**{**FAST, **base, **kw})


def test_kd_student_ends_better_than_untrained(teacher_run, digits, tmp_path):
    result = train(student_cfg(teacher_run, epochs=4), tmp_path / "s", data=digits,
                   log=lambda s: None)
    assert result.summary["last"]["test_top1"] > 60.0
    records = RunDir(result.run_dir).read_metrics()
    for key in ("train_task", "train_distill", "train_kd_original", "train_kd_augmented",
                "balance_w_task", "balance_w_distill"):
        assert key in records[0], key
    assert records[-1]["train_distill"] < records[0]["train_distill"]


@pytest.mark.parametrize("balancer", ["agb", "manual", "uncertainty", "gradnorm"])
def test_every_balancer_trains_a_digits_student(teacher_run, digits, tmp_path, balancer):
    result = train(student_cfg(teacher_run, balancer=balancer, epochs=3), tmp_path / balancer,
                   data=digits, log=lambda s: None)
    record = RunDir(result.run_dir).read_metrics()[-1]
    assert record["test_top1"] > 50.0  # chance is 10 %
    assert "balance_w_task" in record and "balance_w_distill" in record
    if balancer == "agb":
        for key in ("balance_alpha", "balance_beta", "balance_cos_theta", "balance_n_degenerate"):
            assert key in record, key


@pytest.mark.parametrize("joint, per_step", [(False, 2), (True, 1)])
def test_batchnorm_advances_once_per_forward(teacher_run, digits, joint, per_step):
    """Two forwards (x, then x~) per step by default, as the reference; one when joint."""
    cfg = student_cfg(teacher_run, balancer="agb", epochs=1, joint_forward=joint)
    assert cfg.aug is not None
    teacher, _ = load_teacher(teacher_run.run_dir, digits)

    trainer = Trainer(cfg, Split(digits.train_images, digits.train_labels),
                      Split(digits.test_images, digits.test_labels), mean=digits.mean,
                      std=digits.std, num_classes=10, in_channels=1, teacher=teacher)
    trainer.train_epoch(1)
    steps = -(-len(digits.train_labels) // cfg.batch_size)
    counts = {int(m.num_batches_tracked) for m in trainer.model.modules()
              if isinstance(m, torch.nn.BatchNorm2d)}
    assert counts == {per_step * steps}


def test_agb_at_lambda_zero_equals_ce_only_training(teacher_run, digits, tmp_path):
    ce = train(teacher_cfg(epochs=1), tmp_path / "ce", data=digits, log=lambda s: None)
    agb = train(student_cfg(teacher_run, aug=None, balancer="agb", agb_lambda=0.0,
                            agb_search=False, epochs=1),
                tmp_path / "agb0", data=digits, log=lambda s: None)
    a, b = _weights(ce.run_dir / "model.pt"), _weights(agb.run_dir / "model.pt")
    for key in a:
        assert torch.allclose(a[key].float(), b[key].float(), atol=1e-6), key


def test_agb_search_picks_a_lambda_from_the_held_out_table(teacher_run, digits, tmp_path):
    cfg = student_cfg(teacher_run, balancer="agb", agb_search=True, agb_search_epochs=1,
                      agb_search_lambdas=(0.1, 0.9), epochs=1, aug=None)
    result = train(cfg, tmp_path / "search", data=digits, log=lambda s: None)
    table = (result.run_dir / "agb_search.csv").read_text().splitlines()
    assert table[0] == "lambda,holdout_top1,holdout_loss,epochs" and len(table) == 3
    rows = [list(map(float, line.split(","))) for line in table[1:]]
    best = max(rows, key=lambda r: (r[1], -r[2]))[0]
    assert result.summary["agb_lambda"] == best


def test_per_batch_in_the_spec_is_kept_and_the_flag_forces_it(teacher_run, digits):
    def extra(**kw):
        cfg = student_cfg(teacher_run, **kw)
        trainer = Trainer(cfg, Split(digits.train_images, digits.train_labels),
                          Split(digits.test_images, digits.test_labels), mean=digits.mean,
                          std=digits.std, num_classes=10, in_channels=1,
                          teacher=load_teacher(teacher_run.run_dir, digits)[0])
        return trainer.pipeline.extra

    assert extra(aug="mixup(per_batch=true)").per_batch
    assert not extra(aug="mixup").per_batch
    assert extra(aug="mixup", per_batch=True).per_batch


def test_cli_config_file_keeps_the_model_dependent_lr(tmp_path):
    from augkd.train import build_parser, config_from_args

    path = tmp_path / "c.yaml"
    path.write_text("epochs: 5\n")
    args = build_parser().parse_args(["teacher", "--model", "MobileNetV2", "--config", str(path)])
    cfg = config_from_args(args)
    assert cfg.lr == 0.01 and cfg.epochs == 5
    args = build_parser().parse_args(["teacher", "--model", "MobileNetV2", "--lr", "0.2"])
    assert config_from_args(args).lr == 0.2


def test_train_cli_reports_bad_input_in_one_line(tmp_path, capsys):
    from augkd.train import main

    bad = tmp_path / "bad.yaml"
    bad.write_text("lr: [unclosed\n")
    for argv, word in ([["teacher", "--device", "foo"], "foo"],
                       [["teacher", "--config", str(bad)], "YAML"],
                       [["teacher", "--aug", "cutmix"], "student runs only"],
                       [["student", "--teacher", str(tmp_path / "none")], "none"]):
        assert main(argv + ["--no-progress", "--out", str(tmp_path / "x")]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error:") and word in err and "\n" not in err, err


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("aug, balancer", [("cutmix", "agb"), ("autoaugment", "manual"),
                                           ("cutmixpick-t", "agb")])
def test_a_cuda_training_step_never_waits_for_the_gpu(teacher_run, digits, aug, balancer):
    """The step (views, forwards, balancer, optimizer) issues no host sync on CUDA."""
    data = digits.to("cuda")
    cfg = student_cfg(teacher_run, aug=aug, balancer=balancer, device="cuda")
    trainer = Trainer(cfg, Split(data.train_images, data.train_labels),
                      Split(data.test_images, data.test_labels), mean=data.mean, std=data.std,
                      num_classes=10, in_channels=1,
                      teacher=load_teacher(teacher_run.run_dir, data, "cuda")[0])
    g = torch.Generator(device="cuda").manual_seed(0)
    batch = Batch(data.train_images[:64], data.train_labels[:64], torch.arange(64, device="cuda"))
    parts = trainer.parts

    def step():  # the epoch loop's own step
        train_step(parts, batch, StepContext(epoch=1, step=0, generator=g))

    step()  # warm-up: lazy initialisation may sync once
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(3):
            step()
    finally:
        torch.cuda.set_sync_debug_mode("default")


def test_an_epoch_is_the_loop_of_train_step_over_the_shuffled_batches(teacher_run, digits):
    """train_epoch adds nothing to the step: driving train_step by hand gives the same weights
    and the same mean terms, and the step leaves detached terms and a device flag behind."""
    from augkd.training.batches import shuffled_batches
    from augkd.training.trainer import epoch_seed

    cfg = student_cfg(teacher_run, epochs=1)
    teacher = load_teacher(teacher_run.run_dir, digits)[0]

    def trainer():
        return Trainer(cfg, Split(digits.train_images, digits.train_labels),
                       Split(digits.test_images, digits.test_labels), mean=digits.mean,
                       std=digits.std, num_classes=10, in_channels=1, teacher=teacher)

    by_epoch, by_hand = trainer(), trainer()
    record = by_epoch.train_epoch(1)
    generator = torch.Generator().manual_seed(epoch_seed(cfg.seed, 1))
    batches = shuffled_batches(len(digits.train_labels), cfg.batch_size, generator, "cpu")
    parts, sums = by_hand.parts, {}
    by_hand.model.train(), by_hand.distiller.train()
    for step, index in enumerate(batches):
        batch = Batch(digits.train_images[index], digits.train_labels[index], index)
        result = train_step(parts, batch, StepContext(epoch=1, step=step, generator=generator))
        assert result.non_finite.shape == () and not result.non_finite
        assert all(not v.requires_grad for v in result.terms.values())
        for name, value in result.terms.items():
            sums[name] = sums.get(name, 0.0) + value
    for key, value in by_epoch.model.state_dict().items():
        assert torch.equal(value, by_hand.model.state_dict()[key]), key
    assert {f"train_{k}": float(v) / len(batches) for k, v in sums.items()} == \
        {k: v for k, v in record.items() if k.startswith("train_")}


def test_balancer_options_come_from_the_spec(teacher_run, digits):
    teacher = load_teacher(teacher_run.run_dir, digits)[0]

    def balancer(spec):
        trainer = Trainer(student_cfg(teacher_run, balancer=spec),
                          Split(digits.train_images, digits.train_labels),
                          Split(digits.test_images, digits.test_labels), mean=digits.mean,
                          std=digits.std, num_classes=10, in_channels=1, teacher=teacher)
        return trainer.balancer

    gradnorm = balancer("gradnorm(alpha=1.0, lr=0.01)")
    assert (gradnorm.name, gradnorm.alpha, gradnorm.lr) == ("gradnorm", 1.0, 0.01)
    assert float(balancer("uncertainty(init_log_var=0.5)").log_vars.detach()[0]) == 0.5
    assert balancer("gradnorm").alpha == 1.5  # a bare name keeps the defaults


def test_agb_and_manual_options_keep_their_config_fields():
    cfg = TrainConfig(role="student", teacher="t", balancer="agb", agb_lambda=0.3)
    assert cfg.balancer_options() == {"lam": 0.3}
    assert cfg.balancer_options(agb_lambda=0.7) == {"lam": 0.7}  # the search's choice
    cfg = TrainConfig(role="student", teacher="t", balancer="manual", w_distill=2.0)
    assert cfg.balancer_options() == {"w_task": 0.1, "w_distill": 2.0}
    assert TrainConfig(balancer="gradnorm(alpha=1)").balancer_name == "gradnorm"


@pytest.mark.parametrize("spec, word", [
    ("gradnorm(alpah=1.0)", "alpah"), ("gradnorm(lr=0)", "'lr'"),
    ("uncertainty(init_log_var=x)", "init_log_var"), ("agb(lam=1.5)", "lam=1.5"),
    ("agb(lam=sometimes)", "search, or a number"),
    ("manual(w_task=1)", "field w_task"), ("gradnrom", "known: agb"),
])
def test_a_bad_balancer_spec_is_refused_naming_the_option(spec, word):
    with pytest.raises(ValueError, match=word):
        TrainConfig(role="student", teacher="t", balancer=spec)


def test_agb_lam_in_the_spec_is_the_search_switch_or_the_lambda():
    fixed = TrainConfig(role="student", teacher="t", balancer="agb(lam=0.3)")
    assert (fixed.balancer, fixed.agb_lambda, fixed.agb_search) == ("agb", 0.3, False)
    assert not fixed.uses_agb_search and fixed.balancer_options()["lam"] == 0.3
    off = TrainConfig(role="student", teacher="t", agb_search=False)
    searched = off.replace(balancer="agb(lam=search)")
    assert searched.balancer == "agb" and searched.uses_agb_search
    # the same run as the field spelling: it resumes under either
    assert fixed.differences(TrainConfig(role="student", teacher="t", agb_lambda=0.3,
                                         agb_search=False)) == []
    assert TrainConfig.from_dict(fixed.to_dict()) == fixed


def test_cli_takes_a_balancer_spec():
    from augkd.train import build_parser, config_from_args

    args = build_parser().parse_args(["student", "--teacher", "t", "--balancer",
                                      "gradnorm(alpha=1.0)"])
    cfg = config_from_args(args)
    assert cfg.balancer == "gradnorm(alpha=1.0)" and cfg.balancer_options() == {"alpha": 1.0}


def test_a_teacher_of_the_whole_training_set_teaches_a_subset(digits_teacher, tmp_path):
    """A teacher trained on all of digits teaches students on a class-stratified train_subset
    of it (the same images: its checksum is recomputed from the subset's source), normalized
    as the teacher was; other data is still refused."""
    from augkd.data import load_dataset
    from augkd.training.loading import is_training_subset, teacher_input_stats

    full = load_dataset("digits")
    subset = load_dataset("digits", train_subset=300)
    _, manifest = load_teacher(digits_teacher, subset)
    assert is_training_subset(manifest, subset) and not is_training_subset(manifest, full)
    assert teacher_input_stats(manifest, subset) == (tuple(manifest["mean"]),
                                                     tuple(manifest["std"]))
    assert teacher_input_stats(manifest, subset)[0] != tuple(subset.mean)  # not the subset's
    assert teacher_input_stats(manifest, full) == (tuple(full.mean), tuple(full.std))
    with pytest.raises(ValueError, match="resize"):
        load_teacher(digits_teacher, load_dataset("digits", resize=6, train_subset=300))
    tampered = {**manifest, "dataset_checksum": "0" * 64}
    assert not is_training_subset(tampered, subset)

    cfg = TrainConfig(role="student", model="resnet8", teacher=str(digits_teacher), epochs=1,
                      agb_search=False, dataset_options={"train_subset": 300}, **FAST)
    lines = []
    result = train(cfg, tmp_path / "s", data=subset, log=lines.append)
    assert any("a train_subset of 300 of the teacher's training set" in s for s in lines)
    written = RunDir(result.run_dir).read_config()
    assert written.mean == tuple(manifest["mean"]) and written.std == tuple(manifest["std"])
