"""The optimization family (``--optimizer``, ``--schedule``): exact lr factors, torch's own
schedulers as oracles, the default kept bit for bit, errors by name, and a run end to end."""

from __future__ import annotations

import math

import pytest
import torch
import yaml

from augkd.train import main as train_main
from augkd.training import TrainConfig, train
from augkd.training.checkpoint import load_checkpoint
from augkd.training.optim import build_optimizer, build_scheduler, lr_factors
from tests.helpers import FAST, train_killed_in_epoch


def _lrs(spec: str, epochs: int, milestones=(), gamma=0.1, lr=0.05, optimizer="sgd"):
    """The lr of each epoch as the trainer's optimizer sees it."""
    w = torch.nn.Parameter(torch.zeros(1))
    opt = build_optimizer(optimizer, [{"params": [w], "weight_decay": 0.0}], lr)
    sched = build_scheduler(spec, opt, epochs, list(milestones), gamma)
    out = []
    for _ in range(epochs):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_warm_up_then_cosine_fixed_values():
    c = math.cos(math.pi / 4)
    assert lr_factors("cosine(warmup=2)", 6) == pytest.approx(
        [1 / 3, 2 / 3, 1.0, (1 + c) / 2, 0.5, (1 - c) / 2], abs=1e-12)
    assert lr_factors("multistep(warmup=2)", 8, [5, 6, 7], 0.1) == pytest.approx(
        [1 / 3, 2 / 3, 1, 1, 1, 0.1, 0.01, 0.001], abs=1e-12)
    assert lr_factors("constant(warmup=1)", 3) == [0.5, 1.0, 1.0]


def test_cosine_is_torchs_cosine_annealing_and_reaches_toward_min_lr():
    w = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([w], lr=0.05)
    oracle = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=10, eta_min=0.001)
    expected = []
    for _ in range(10):
        expected.append(opt.param_groups[0]["lr"])
        opt.step()
        oracle.step()
    assert _lrs("cosine(min_lr=0.001)", 10) == pytest.approx(expected, rel=1e-9)


def test_default_is_torchs_multistep_bit_for_bit():
    cfg = TrainConfig(epochs=16)
    got = _lrs(cfg.schedule, 16, cfg.lr_milestones, cfg.lr_decay_rate)
    w = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([w], lr=0.05, momentum=0.9)
    ref = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[10, 12, 14], gamma=0.1)
    expected = []
    for _ in range(16):
        expected.append(opt.param_groups[0]["lr"])
        opt.step()
        ref.step()
    assert got == expected  # equal floats: earlier runs' numbers do not move
    # the closed-form factors say the same, to rounding
    assert [0.05 * f for f in lr_factors("multistep", 16, [10, 12, 14], 0.1)] == pytest.approx(
        expected, rel=1e-12)


def test_optimizer_options_reach_torch():
    w = torch.nn.Parameter(torch.zeros(1))
    groups = [{"params": [w], "weight_decay": 0.05}]
    adamw = build_optimizer("adamw(beta1=0.8, beta2=0.99, eps=1e-6)", groups, 1e-3)
    assert isinstance(adamw, torch.optim.AdamW)
    assert adamw.defaults["betas"] == (0.8, 0.99) and adamw.defaults["eps"] == 1e-6
    assert adamw.param_groups[0]["weight_decay"] == 0.05
    sgd = build_optimizer("sgd(nesterov=true)", [{"params": [w]}], 0.1, momentum=0.8)
    assert sgd.defaults["nesterov"] and sgd.defaults["momentum"] == 0.8


@pytest.mark.parametrize("kw, words", [
    ({"optimizer": "adam"}, ["unknown optimizer 'adam'", "adamw"]),
    ({"optimizer": "adamw(beta1=1.5)"}, ["adamw", "beta1=1.5", "[0, 1)"]),
    ({"optimizer": "sgd(momentum=0.5)"}, ["momentum", "--momentum"]),
    ({"optimizer": "sgd(nesterov=true)", "momentum": 0.0}, ["nesterov", "momentum > 0"]),
    ({"optimizer": "sgd(lr=0.1)"}, ["unknown option 'lr'", "nesterov"]),
    ({"schedule": "cosine(warmup=5)", "epochs": 5}, ["warmup=5", "5 epochs"]),
    ({"schedule": "cosine(min_lr=-1)"}, ["min_lr=-1"]),
    ({"schedule": "step"}, ["unknown schedule 'step'", "multistep, cosine, constant"]),
    ({"schedule": "cosine(warmup=1.5)"}, ["warmup=1.5", "integer"]),
])
def test_bad_specs_are_named(kw, words):
    with pytest.raises(ValueError) as err:
        TrainConfig(**kw)
    for word in words:
        assert word in str(err.value)


def test_search_and_trials_keep_the_initial_lr_after_the_warm_up():
    plain = TrainConfig(epochs=8).at_initial_lr(epochs=2)
    assert plain.schedule == "multistep" and plain.lr_milestones == [2]  # as before: no decay
    warm = TrainConfig(epochs=8, schedule="cosine(warmup=3)").at_initial_lr(epochs=2)
    assert warm.schedule == "constant(warmup=1)"  # the warm-up, cut to fit the shorter run
    assert lr_factors(warm.schedule, 2) == [0.5, 1.0]


def test_old_configs_mean_what_they_meant():
    old = TrainConfig.from_dict({"role": "teacher", "epochs": 4, "momentum": 0.8})
    assert (old.optimizer, old.schedule) == ("sgd", "multistep")
    assert old.differences(TrainConfig(role="teacher", epochs=4, momentum=0.8)) == []


def test_adamw_cosine_run_records_its_recipe_and_resumes(tmp_path, digits, monkeypatch):
    cfg = TrainConfig(role="teacher", model="resnet8", epochs=3, lr=2e-3,
                      optimizer="adamw(beta2=0.99)", schedule="cosine(warmup=1)", **FAST)
    full = train(cfg, tmp_path / "full", data=digits, log=lambda s: None)
    written = yaml.safe_load((full.run_dir / "config.yaml").read_text())
    assert written["optimization"]["optimizer"] == "adamw(beta2=0.99)"
    assert written["optimization"]["schedule"] == "cosine(warmup=1)"

    seen_lrs = []
    train_killed_in_epoch(monkeypatch, 2, cfg, tmp_path / "killed", data=digits,
                          before_epoch=lambda t, e: seen_lrs.append(
                              t.optimizer.param_groups[0]["lr"]))
    resumed = train(cfg, tmp_path / "killed", resume=True, data=digits, log=lambda s: None)
    assert seen_lrs == pytest.approx([1e-3, 2e-3])  # the warm-up epoch at half the lr
    a = load_checkpoint(full.run_dir / "model.pt")["model"]
    b = load_checkpoint(resumed.run_dir / "model.pt")["model"]
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_cli_refuses_a_bad_optimizer_by_name(capsys):
    code = train_main(["teacher", "--optimizer", "adamw(beta1=2)", "--no-progress"])
    assert code == 2
    assert "beta1=2" in capsys.readouterr().err
