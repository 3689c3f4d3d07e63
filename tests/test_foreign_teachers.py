"""Teachers trained elsewhere: RepDistiller, mdistiller (its teachers and its trainer's files) and
torchdistill, loaded through the public path (``load_kd_checkpoint``, ``load_teacher``).

Checkpoints are built here in each codebase's layout with the key names those codebases save,
written out literally (RESNET8_KEYS, TORCHDISTILL_WRN16_1_KEYS), and the loaded model is compared
with an independent functional forward of the CIFAR ResNet read off those names; zoo models of
the other families make the round trip through every layout with exact outputs.
"""

from __future__ import annotations

import argparse
import math
import os
import re
from collections import Counter
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from augkd.augment.pipeline import Normalize
from augkd.data import load_dataset
from augkd.metrics import evaluate
from augkd.models import MODELS, create_model, load_foreign, load_kd_checkpoint
from augkd.models.checkpoint import named_by_path, read_checkpoint_file
from augkd.training import TrainConfig, load_teacher, train

CLASSES, CHANNELS = 10, 1  # digits-sized models and inputs


def _bn(name: str, channels: int) -> dict[str, tuple[int, ...]]:
    return {f"{name}.weight": (channels,), f"{name}.bias": (channels,),
            f"{name}.running_mean": (channels,), f"{name}.running_var": (channels,),
            f"{name}.num_batches_tracked": ()}


# resnet8 for 1 channel and 10 classes, as RepDistiller / mdistiller (models/cifar/resnet.py)
# and torchdistill (ResNet4Cifar with torchvision's BasicBlock, resnet(8, ...)) name it.
RESNET8_KEYS: dict[str, tuple[int, ...]] = {
    "conv1.weight": (16, 1, 3, 3), **_bn("bn1", 16),
    "layer1.0.conv1.weight": (16, 16, 3, 3), **_bn("layer1.0.bn1", 16),
    "layer1.0.conv2.weight": (16, 16, 3, 3), **_bn("layer1.0.bn2", 16),
    "layer2.0.conv1.weight": (32, 16, 3, 3), **_bn("layer2.0.bn1", 32),
    "layer2.0.conv2.weight": (32, 32, 3, 3), **_bn("layer2.0.bn2", 32),
    "layer2.0.downsample.0.weight": (32, 16, 1, 1), **_bn("layer2.0.downsample.1", 32),
    "layer3.0.conv1.weight": (64, 32, 3, 3), **_bn("layer3.0.bn1", 64),
    "layer3.0.conv2.weight": (64, 64, 3, 3), **_bn("layer3.0.bn2", 64),
    "layer3.0.downsample.0.weight": (64, 32, 1, 1), **_bn("layer3.0.downsample.1", 64),
    "fc.weight": (10, 64), "fc.bias": (10,),
}

# torchdistill's WideResNet4Cifar(depth 16, k 1) (models/classification/wide_resnet.py).
TORCHDISTILL_WRN16_1_KEYS: dict[str, tuple[int, ...]] = {"conv1.weight": (16, 1, 3, 3)}
for _stage, (_c_in, _c) in enumerate(((16, 16), (16, 32), (32, 64)), start=1):
    for _j in range(2):
        _p, _in = f"layer{_stage}.{_j}", _c_in if _j == 0 else _c
        TORCHDISTILL_WRN16_1_KEYS.update({**_bn(f"{_p}.bn1", _in),
                                          f"{_p}.conv1.weight": (_c, _in, 3, 3),
                                          **_bn(f"{_p}.bn2", _c),
                                          f"{_p}.conv2.weight": (_c, _c, 3, 3)})
        if _j == 0 and _in != _c:
            TORCHDISTILL_WRN16_1_KEYS[f"{_p}.shortcut.0.weight"] = (_c, _in, 1, 1)
TORCHDISTILL_WRN16_1_KEYS.update({**_bn("bn1", 64), "fc.weight": (10, 64), "fc.bias": (10,)})


def _literal_state(keys: dict[str, tuple[int, ...]], seed: int) -> dict[str, torch.Tensor]:
    """Random tensors of those names and shapes, scaled so that activations stay O(1)."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in keys.items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(3)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=g) + 0.5
        elif len(shape) == 1 and key.endswith(".weight"):  # BN scale
            state[key] = 1 + 0.2 * torch.randn(shape, generator=g)
        elif len(shape) == 1:  # BN shift and running mean, fc bias
            state[key] = 0.2 * torch.randn(shape, generator=g)
        else:
            fan_in = math.prod(shape[1:])
            state[key] = torch.randn(shape, generator=g) * (2.0 / fan_in) ** 0.5
    return state


def _reference_resnet(state: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """The CIFAR ResNet of those codebases, as a functional forward over their key names."""
    def bn(h, name):
        return F.batch_norm(h, state[f"{name}.running_mean"], state[f"{name}.running_var"],
                            state[f"{name}.weight"], state[f"{name}.bias"], training=False)

    h = F.relu(bn(F.conv2d(x, state["conv1.weight"], padding=1), "bn1"))
    for stage, stride in (("layer1", 1), ("layer2", 2), ("layer3", 2)):
        block = 0
        while f"{stage}.{block}.conv1.weight" in state:
            p, s = f"{stage}.{block}", stride if block == 0 else 1
            out = F.relu(bn(F.conv2d(h, state[f"{p}.conv1.weight"], stride=s, padding=1),
                            f"{p}.bn1"))
            out = bn(F.conv2d(out, state[f"{p}.conv2.weight"], padding=1), f"{p}.bn2")
            if f"{p}.downsample.0.weight" in state:
                h = bn(F.conv2d(h, state[f"{p}.downsample.0.weight"], stride=s),
                       f"{p}.downsample.1")
            h = F.relu(out + h)
            block += 1
    return F.linear(h.mean((2, 3)), state["fc.weight"], state["fc.bias"])


def _optimizer_state() -> dict:
    """An SGD state_dict as torch writes it after some steps (one parameter)."""
    return {"state": {0: {"momentum_buffer": torch.full((3,), 0.1)}},
            "param_groups": [{"lr": 0.05, "momentum": 0.9, "dampening": 0,
                              "weight_decay": 5e-4, "nesterov": False, "maximize": False,
                              "foreach": None, "differentiable": False, "fused": None,
                              "params": [0]}]}


def _torchdistill_args() -> argparse.Namespace:
    return argparse.Namespace(config="configs/sample/cifar10/ce/resnet8-final_run.yaml",
                              device="cuda", run_log=None, start_epoch=0, seed=None,
                              test_only=False, world_size=1, dist_url="env://")


def _lr_scheduler_state() -> dict:
    """MultiStepLR's state_dict, whose milestones are a collections.Counter."""
    return {"milestones": Counter({91: 1, 136: 1}), "gamma": 0.1, "base_lrs": [0.1],
            "last_epoch": 137, "_step_count": 138, "_get_lr_called_within_step": False,
            "_last_lr": [0.001]}


# ---------------------------------------------------------------- the layouts, as saved there
def repdistiller_ckpt(state):
    """RepDistiller train_teacher.py: ckpt_epoch_<E>.pth (mdistiller's cifar_teachers.tar)."""
    return {"epoch": 240, "model": state, "accuracy": torch.tensor([71.25]),
            "optimizer": _optimizer_state()}


def repdistiller_last(state):
    """RepDistiller train_teacher.py: <model>_last.pth, with the argparse options."""
    return {"opt": argparse.Namespace(model="resnet8", dataset="cifar100", epochs=240),
            "model": state, "optimizer": _optimizer_state()}


def mdistiller_trainer(state):
    """mdistiller engine/trainer.py: latest / best / epoch_<E>, the DataParallel distiller."""
    teacher = {k: torch.zeros_like(v) for k, v in state.items()}
    model = {**{f"module.student.{k}": v for k, v in state.items()},
             **{f"module.teacher.{k}": v for k, v in teacher.items()},
             "module.conv_reg.conv.weight": torch.ones(64, 64, 1, 1),  # FitNet's regressor
             "module.conv_reg.conv.bias": torch.zeros(64),
             "module.conv_reg.bn.weight": torch.ones(64)}
    return {"epoch": 240, "model": model, "optimizer": _optimizer_state(),
            "best_acc": torch.tensor(70.5)}


def mdistiller_student(state):
    """mdistiller engine/trainer.py: student_latest / student_best / student_<E>."""
    return {"model": state}


def torchdistill_ckpt(state, prefix=""):
    """torchdistill common/main_util.py save_ckpt; ``prefix`` for an auxiliary wrapper."""
    return {"model": {prefix + k: v for k, v in state.items()}, "optimizer": _optimizer_state(),
            "best_value": 71.25, "lr_scheduler": _lr_scheduler_state(),
            "args": _torchdistill_args()}


def torchdistill_crd(state):
    """The student inside torchdistill's Linear4CRD under DDP: model.module.*, normalizer.*."""
    ckpt = torchdistill_ckpt(state, prefix="model.module.")
    ckpt["model"]["normalizer.module.linear.weight"] = torch.ones(128, 64)
    return ckpt


def dataparallel_ckpt(state):
    return {"model": {f"module.{k}": v for k, v in state.items()}, "epoch": 240}


def bare(state):
    """torch.save(model.state_dict()), e.g. torchdistill's released cifar10-resnet20.pt."""
    return dict(state)


LAYOUTS = {  # id -> (builder, file name, words of the layout's description, recorded top-1)
    "repdistiller": (repdistiller_ckpt, "resnet8_vanilla/ckpt_epoch_240.pth",
                     "RepDistiller / mdistiller: the model (under 'model')", 71.25),
    "repdistiller-last": (repdistiller_last, "save/models/resnet8_last.pth",
                          "RepDistiller / mdistiller: the model (under 'model')", None),
    "mdistiller-trainer": (mdistiller_trainer, "kd,res8,res8/latest",
                           "the student of mdistiller's distiller (under 'model', keys "
                           "module.student.*)", 70.5),
    "mdistiller-student": (mdistiller_student, "kd,res8,res8/student_best",
                           "RepDistiller / mdistiller: the model (under 'model')", None),
    "torchdistill": (torchdistill_ckpt, "resource/ckpt/cifar10-resnet8.pt",
                     "torchdistill save_ckpt: the model (under 'model')", 71.25),
    "torchdistill-wrapper": (torchdistill_crd, "resource/ckpt/crd-resnet8.pt",
                             "the student of an auxiliary wrapper (under 'model', keys model.*, "
                             "nn.DataParallel's 'module.' removed)", 71.25),
    "dataparallel": (dataparallel_ckpt, "dp/ckpt.pth", "'module.' removed", None),
    "bare": (bare, "released/cifar10-resnet8.pt", "bare state_dict: the model (the whole file)",
             None),
}


def _save(contents, tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(contents, path)
    return path


def _randomize_bn(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=g))
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
                m.weight.copy_(1 + 0.1 * torch.randn(m.weight.shape, generator=g))
    return model.eval()


INPUTS = torch.randn(3, CHANNELS, 8, 8, generator=torch.Generator().manual_seed(0))


# ---------------------------------------------------------------- loading, with literal names
@pytest.mark.parametrize("layout", list(LAYOUTS))
@torch.no_grad()
def test_each_layout_loads_literal_keys_into_the_same_function(layout, tmp_path):
    build, name, description, recorded = LAYOUTS[layout]
    state = _literal_state(RESNET8_KEYS, seed=1)
    path = _save(build(state), tmp_path, name)

    foreign = load_foreign(read_checkpoint_file(path), path, CLASSES, CHANNELS)
    assert foreign.architecture == "resnet8"
    assert description in foreign.weights.description
    assert foreign.weights.recorded_top1 == recorded
    torch.testing.assert_close(foreign.model(INPUTS), _reference_resnet(state, INPUTS))
    assert not foreign.model.training
    loaded = foreign.model.state_dict()
    assert torch.equal(loaded["layer2.0.downsample.0.weight"],
                       state["layer2.0.downsample.0.weight"])
    assert int(loaded["layer3.0.bn2.num_batches_tracked"]) == 3

    # the architecture named outright gives the same model
    named = load_kd_checkpoint(path, "resnet8", CLASSES, CHANNELS)
    torch.testing.assert_close(named(INPUTS), foreign.model(INPUTS), rtol=0, atol=0)


@pytest.mark.parametrize("name, layout", [
    ("resnet8x4", "mdistiller-trainer"),
    ("wrn_16_2", "repdistiller"),
    ("vgg8", "torchdistill"),
    ("MobileNetV2", "mdistiller-student"),
    ("ShuffleV1", "torchdistill-wrapper"),
    ("ShuffleV2", "bare"),
])
@torch.no_grad()
def test_zoo_families_round_trip_with_their_architecture_inferred(name, layout, tmp_path):
    torch.manual_seed(2)
    source = _randomize_bn(create_model(name, CLASSES, CHANNELS), seed=3)
    build, file_name, _, _ = LAYOUTS[layout]
    path = _save(build(source.state_dict()), tmp_path, file_name.replace("resnet8", name))

    loaded = load_kd_checkpoint(path, None, CLASSES, CHANNELS)
    assert type(loaded) is type(source)
    torch.testing.assert_close(loaded(INPUTS), source(INPUTS), rtol=0, atol=0)


def test_older_files_without_bn_counters_load(tmp_path):
    state = {k: v for k, v in _literal_state(RESNET8_KEYS, 4).items()
             if not k.endswith("num_batches_tracked")}
    path = _save(repdistiller_ckpt(state), tmp_path, "ckpt_epoch_240.pth")
    torch.testing.assert_close(load_kd_checkpoint(path, None, CLASSES, CHANNELS)(INPUTS),
                               _reference_resnet(state, INPUTS))


# ---------------------------------------------------------------- naming the architecture
def test_a_folder_name_picks_among_architectures_that_fit(tmp_path, monkeypatch):
    # a second registered name with the same definition: two architectures fit the weights
    monkeypatch.setitem(MODELS._entries, "resnet8_twin", MODELS.get("resnet8"))
    state = _literal_state(RESNET8_KEYS, 5)

    anonymous = _save(bare(state), tmp_path, "weights/model.pth")
    with pytest.raises(ValueError) as err:
        load_kd_checkpoint(anonymous, None, CLASSES, CHANNELS)
    message = str(err.value)
    assert str(anonymous) in message and "resnet8, resnet8_twin" in message
    assert "--teacher-model" in message

    for folder, expected in (("resnet8_vanilla", "resnet8"), ("resnet8_twin_vanilla",
                                                              "resnet8_twin")):
        path = _save(repdistiller_ckpt(state), tmp_path, f"{folder}/ckpt_epoch_240.pth")
        foreign = load_foreign(read_checkpoint_file(path), path, CLASSES, CHANNELS)
        assert foreign.architecture == expected
        assert f"folder name {folder!r}" in foreign.named_by
    # RepDistiller's <model>_best.pth names it by the file
    path = _save(repdistiller_ckpt(state), tmp_path, "save/resnet8_twin_best.pth")
    assert load_foreign(read_checkpoint_file(path), path, CLASSES,
                        CHANNELS).architecture == "resnet8_twin"


@pytest.mark.parametrize("path, names", [
    ("cifar_teachers/resnet32x4_vanilla/ckpt_epoch_240.pth", ["resnet32x4"]),  # not resnet32
    ("cifar_teachers/ResNet50_vanilla/ckpt_epoch_240.pth", ["ResNet50"]),
    ("save/models/wrn_40_2_cifar100_lr_0.05_decay_0.0005_trial_0/wrn_40_2_best.pth",
     ["wrn_40_2", "wrn_40_2"]),
    ("save/student_model/S:resnet8x4_T:resnet32x4_cifar100_kd_r:0.1_a:0.9_b:0.0_1/"
     "ckpt_epoch_240.pth", ["resnet8x4"]),
    ("output/cifar100_baselines/dkd,res32x4,res8x4/student_best", []),
])
def test_folder_and_file_names_that_name_an_architecture(path, names):
    assert [name for name, _ in named_by_path(Path(path))] == names


def test_weights_of_another_class_count_name_the_file_and_the_shapes(tmp_path):
    path = _save(mdistiller_student(_literal_state(RESNET8_KEYS, 6)), tmp_path, "run/student_best")
    with pytest.raises(ValueError) as err:
        load_kd_checkpoint(path, None, 100, CHANNELS)
    message = str(err.value)
    assert str(path) in message and "its keys are those of 'resnet8'" in message
    assert "fc.weight: checkpoint (10, 64) vs model (100, 64)" in message

    named = _save(repdistiller_ckpt(_literal_state(RESNET8_KEYS, 6)), tmp_path,
                  "resnet8_vanilla/ckpt_epoch_240.pth")
    with pytest.raises(ValueError) as err:
        load_kd_checkpoint(named, None, 100, CHANNELS)
    message = str(err.value)
    assert str(named) in message and "does not fit 'resnet8'" in message
    assert "from its folder name 'resnet8_vanilla'" in message
    assert "fc.bias: checkpoint (10,) vs model (100,)" in message


def test_a_named_architecture_that_does_not_fit_says_which_does(tmp_path):
    path = _save(torchdistill_ckpt(_literal_state(RESNET8_KEYS, 7)), tmp_path, "td/best.pt")
    with pytest.raises(ValueError) as err:
        load_kd_checkpoint(path, "resnet8x4", CLASSES, CHANNELS)
    message = str(err.value)
    assert str(path) in message and "does not fit 'resnet8x4'" in message
    assert "conv1.weight: checkpoint (16, 1, 3, 3) vs model (32, 1, 3, 3)" in message
    assert "the weights fit resnet8" in message and "\n" not in message


def test_weights_of_no_known_architecture_list_the_candidates(tmp_path):
    path = _save({"model": {"encoder.0.weight": torch.ones(4, 1, 3, 3),
                            "head.weight": torch.ones(10, 4)}}, tmp_path, "other/ckpt.pth")
    with pytest.raises(ValueError) as err:
        load_kd_checkpoint(path, None, CLASSES, CHANNELS)
    message = str(err.value)
    assert str(path) in message and "cannot tell the architecture" in message
    assert "encoder.0.weight" in message and "resnet8, resnet14" in message
    assert "--teacher-model" in message


def test_torchdistill_wide_resnets_are_refused_with_the_reason(tmp_path):
    state = _literal_state(TORCHDISTILL_WRN16_1_KEYS, 8)
    assert "layer2.0.shortcut.0.weight" in state and "layer1.0.shortcut.0.weight" not in state
    path = _save(torchdistill_ckpt(state), tmp_path, "cifar10-wide_resnet16_1.pt")
    for model_name in (None, "wrn_16_1"):
        with pytest.raises(ValueError) as err:
            load_kd_checkpoint(path, model_name, CLASSES, CHANNELS)
        message = str(err.value)
        assert str(path) in message and "WideResNet4Cifar" in message
        assert "pre-activated" in message


# ---------------------------------------------------------------- files in no known layout
@pytest.mark.parametrize("contents, found", [
    ({"net": {"conv1.weight": torch.ones(1)}, "acc": 95.1, "epoch": 199}, "'net', 'acc'"),
    ({"epoch": 240, "best_acc": 70.1}, "'epoch', 'best_acc'"),
    ([torch.ones(1)], "a list"),
])
def test_an_unknown_layout_names_the_file_and_the_layouts_read(contents, found, tmp_path):
    path = _save(contents, tmp_path, "ckpt.pth")
    with pytest.raises(ValueError) as err:
        load_kd_checkpoint(path, None, CLASSES, CHANNELS)
    message = str(err.value)
    assert str(path) in message and "no state_dict in a layout augkd reads" in message
    assert found in message
    assert "torchdistill" in message and "module.student." in message


def test_weights_that_are_no_state_dict_are_named(tmp_path):
    path = _save({"model": {"conv1.weight": [1.0]}, "epoch": 1}, tmp_path, "ckpt.pth")
    with pytest.raises(ValueError, match=r"ckpt\.pth \(RepDistiller / mdistiller\) holds no "
                                         r"state_dict under 'model'"):
        load_kd_checkpoint(path, None, CLASSES, CHANNELS)


# ---------------------------------------------------------------- the teacher's accuracy
@pytest.fixture(scope="module")
def fitted_teacher(digits):
    """resnet8 with random convolutions and a least-squares classifier: ~90% on digits, built
    in closed form (no training loop)."""
    torch.manual_seed(0)
    model = create_model("resnet8", digits.num_classes, digits.in_channels).eval()
    normalize = Normalize(digits.mean, digits.std)
    with torch.no_grad():
        pooled = model(normalize(digits.train_images), features=True).pooled
        design = torch.cat([pooled, torch.ones(len(pooled), 1)], dim=1)
        targets = F.one_hot(digits.train_labels, digits.num_classes).float()
        solution = torch.linalg.lstsq(design, targets).solution
        model.fc.weight.copy_(solution[:-1].T)
        model.fc.bias.copy_(solution[-1])
    top1 = evaluate(model, digits.test_images, digits.test_labels, normalize).top1
    assert top1 > 60
    return model, top1


def test_a_foreign_teacher_is_measured_and_logged_before_use(fitted_teacher, digits, tmp_path):
    model, top1 = fitted_teacher
    path = _save(torchdistill_ckpt(model.state_dict()), tmp_path, "cifar-ish/best.pt")
    lines = []
    teacher, manifest = load_teacher(path, digits, log=lines.append)
    assert manifest["architecture"] == "resnet8" and manifest["dataset_checksum"] is None
    assert manifest["test_top1"] == pytest.approx(top1)
    assert manifest["recorded_top1"] == 71.25
    assert manifest["layout"].startswith("torchdistill save_ckpt")
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    (line,) = lines  # no warning: the file's 71.25% is below the measured top-1
    assert str(path) in line and f"test top-1 {top1:.2f}% on digits (451 images)" in line
    assert "the file records 71.25% (best_value)" in line
    assert "architecture from its weights" in line


def test_a_teacher_far_below_its_recorded_accuracy_is_a_warning(fitted_teacher, digits,
                                                                 tmp_path):
    model, top1 = fitted_teacher
    contents = mdistiller_trainer(model.state_dict())
    contents["best_acc"] = torch.tensor(min(100.0, top1 + 8.0))
    path = _save(contents, tmp_path, "kd,res8,res8/best")
    lines = []
    _, manifest = load_teacher(path, digits, log=lines.append)
    assert manifest["test_top1"] == pytest.approx(top1)
    assert len(lines) == 2 and lines[1].startswith(f"warning: teacher {path} scores 8.0 points")


def test_a_teacher_at_chance_on_this_data_is_refused(fitted_teacher, digits, tmp_path):
    model, _ = fitted_teacher
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state["fc.weight"].zero_()
    state["fc.bias"].zero_()
    state["fc.bias"][3] = 1.0  # always class 3: 46 of the 451 test images
    path = _save(repdistiller_ckpt(state), tmp_path, "resnet8_vanilla/ckpt_epoch_240.pth")
    with pytest.raises(ValueError) as err:
        load_teacher(path, digits, log=lambda line: None)
    message = str(err.value)
    assert str(path) in message and "scores 10.20% top-1 on the test split of digits" in message
    assert "most frequent class scores 10.20%" in message


class _RunsCode:
    """Unpickled by plain pickle, this would create ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_teacher_file_with_code_in_it_is_refused_and_runs_nothing(fitted_teacher, digits,
                                                                     tmp_path):
    marker = tmp_path / "pwned"
    contents = repdistiller_last(fitted_teacher[0].state_dict())
    contents["opt"] = _RunsCode(marker)
    path = _save(contents, tmp_path, "resnet8_vanilla/resnet8_last.pth")
    with pytest.raises(ValueError) as err:
        load_teacher(path, digits, log=lambda line: None)
    assert str(path) in str(err.value) and "unsupported GLOBAL posix.system" in str(err.value)
    assert not marker.exists()


def test_a_student_run_logs_and_records_the_foreign_teacher(fitted_teacher, tmp_path):
    model, _ = fitted_teacher
    path = _save(mdistiller_trainer(model.state_dict()), tmp_path, "kd,res8,res8/latest")
    data = load_dataset("digits", train_subset=128)
    cfg = TrainConfig(role="student", model="resnet8", teacher=str(path), epochs=1,
                      batch_size=64, balancer="manual", dataset="digits", progress=False,
                      device="cpu")
    lines = []
    result = train(cfg, tmp_path / "student", data=data, log=lines.append)
    # the first line of the run, before anything trains; the teacher is measured once
    line = lines[0]
    assert line.startswith(f"teacher resnet8 from {path}: test top-1")
    assert sum(s.startswith("teacher resnet8 from") for s in lines) == 1
    assert lines[-1].startswith("student resnet8: test top-1")
    measured = float(re.search(r"test top-1 ([0-9.]+)%", line).group(1))
    assert result.summary["teacher"]["architecture"] == "resnet8"
    assert result.summary["teacher"]["test_top1"] == pytest.approx(measured, abs=0.01)
    assert measured > 60
