"""Quantized students end to end, the ground-truth soft target, and the temperature study's jobs."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml

from augkd.distill.functional import kd_loss
from augkd.distill.gt import gt_soft_loss
from augkd.models.quant import QuantConv2d
from augkd.training import TrainConfig, load_teacher, train
from augkd.training.checkpoint import load_checkpoint
from tests.helpers import FAST

REPO = Path(__file__).resolve().parents[1]


def test_quant_is_checked_when_the_config_is_made():
    assert TrainConfig(quant="w2a1").quant == "w2a1"
    with pytest.raises(ValueError, match="quant: .*'w9a1'"):
        TrainConfig(quant="w9a1")


def test_a_w2a1_student_trains_and_its_model_loads_quantized(tmp_path, digits):
    teacher = train(TrainConfig(role="teacher", model="resnet8", epochs=2, **FAST),
                    tmp_path / "teacher", data=digits, log=lambda s: None).run_dir
    cfg = TrainConfig(role="student", model="resnet8", teacher=str(teacher), quant="w2a1",
                      balancer="manual", epochs=2, temperature=15.0, **FAST)
    result = train(cfg, tmp_path / "student", data=digits, log=lambda s: None)
    manifest = load_checkpoint(result.run_dir / "model.pt")["manifest"]
    assert manifest["quant"] == "w2a1"
    assert json.loads((result.run_dir / "summary.json").read_text())["quant"] == "w2a1"
    # loaded back (as a teacher, or a scorer) it is the quantized network, not a plain one
    model, _ = load_teacher(result.run_dir, digits)
    convs = [m for m in model.modules() if isinstance(m, QuantConv2d)]
    levels = torch.tensor([-1.0, -1 / 3, 1 / 3, 1.0])
    assert convs
    for conv in convs:
        values = conv.quantized_weight().detach().unique()
        assert torch.isclose(values.unsqueeze(1), levels, atol=1e-6).any(1).all()


def test_ground_truth_soft_target_is_kd_with_the_one_hot_as_teacher_logits():
    s = torch.randn(5, 10, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([1, 0, 3, 9, 2])
    for t in (1.0, 4.0, 50.0):
        assert float(gt_soft_loss(s, y, t)) == pytest.approx(
            float(kd_loss(s, F.one_hot(y, 10).float(), t)), rel=1e-6)


def _study_module():
    spec = importlib.util.spec_from_file_location("temperature_study",
                                                  REPO / "experiments" / "temperature_study.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_temperature_spec_expands_into_valid_runs_with_the_t2_ablation():
    study = _study_module()
    spec = yaml.safe_load((REPO / "experiments" / "temperature" / "cpu.yaml").read_text())
    jobs = dict(study.jobs(spec))
    n = len(spec["seeds"]) * len(spec["students"]) * (
        1 + len(spec["temperatures"]) * len(spec["variants"]))
    assert len(jobs) == n
    for fields in jobs.values():  # every run is a valid config
        TrainConfig(**{**fields, "teacher": fields.get("teacher")})
    assert jobs["w2a1/soft+hard-noT2-T10-s0"]["w_distill"] == pytest.approx(1 / 100)
    assert jobs["w2a1/soft+hard-T10-s0"]["w_distill"] == 1.0
    assert jobs["fp/soft-T50-s1"]["w_task"] == 0.0 and jobs["fp/soft-T50-s1"]["quant"] is None
    assert jobs["w2a1/labels-s0"]["role"] == "teacher"
    assert jobs["w2a1/gt-T100-s1"]["distill"] == "gt"
