"""The model zoo: published sizes, framework key names, the features contract, checkpoints."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import torch

from augkd.models import (
    MODELS,
    KDModel,
    ModelOutput,
    create_model,
    list_models,
    load_kd_checkpoint,
)
from augkd.registry import UnknownNameError

# Trainable parameters at 100 classes, 3 input channels. Each equals the count of the reference
# framework's definition (RepDistiller models/*.py; mdistiller is identical), layer by layer:
# bias-free convs except VGG's, BN affine weights, linear classifier with bias. The published
# anchors they reproduce: resnet56 861,620 and resnet8x4 1,233,540 (exact); resnet20 0.28M,
# resnet32x4 7.43M, wrn_16_2 0.70M, wrn_40_2 2.26M (docs/protocol.md, CRD paper table); vgg8 3.96M,
# vgg13 9.46M, ResNet50 23.71M, MobileNetV2 0.81M, ShuffleV1 0.95M, ShuffleV2 1.36M (the sizes
# the KD literature quotes for these CIFAR-100 models, e.g. the DKD and ReviewKD tables).
PUBLISHED_PARAMS = {
    "resnet8": 83_892,  # depth 8 = 1 basic block per stage, widths 16-16-32-64
    "resnet14": 181_108,
    "resnet20": 278_324,  # 0.28M
    "resnet32": 472_756,
    "resnet44": 667_188,
    "resnet56": 861_620,  # exact published anchor
    "resnet110": 1_736_564,
    "resnet8x4": 1_233_540,  # exact published anchor (widths 32-64-128-256)
    "resnet32x4": 7_433_860,  # 7.43M
    "wrn_16_1": 180_916,
    "wrn_16_2": 703_284,  # 0.70M
    "wrn_40_1": 569_780,
    "wrn_40_2": 2_255_156,  # 2.26M
    "vgg8": 3_965_028,  # 3.96M (conv biases included)
    "vgg11": 9_277_284,
    "vgg13": 9_462_180,  # 9.46M
    "vgg16": 14_774_436,
    "vgg19": 20_086_692,
    "ResNet50": 23_705_252,  # 23.71M
    "MobileNetV2": 812_836,  # 0.81M (mobile_half: width 0.5, t = 6, 1280-d head)
    "ShuffleV1": 949_258,  # 0.95M (g = 3)
    "ShuffleV2": 1_355_528,  # 1.36M (1x)
}
NAMES = list(PUBLISHED_PARAMS)

# One architecture per family (separate classes / forward code) for the costlier checks.
FAMILY_REPRESENTATIVES = [
    "resnet8x4",
    "wrn_16_2",
    "vgg8",
    "ResNet50",
    "MobileNetV2",
    "ShuffleV1",
    "ShuffleV2",
]

# Literal state_dict keys (and shapes) of the reference framework's checkpoints: a renamed or
# reshaped layer breaks loading of users' ckpt_epoch_240.pth files, and these assertions.
FRAMEWORK_KEYS: dict[str, dict[str, tuple[int, ...]]] = {
    "resnet8x4": {
        "conv1.weight": (32, 3, 3, 3),
        "bn1.running_mean": (32,),
        "layer1.0.conv1.weight": (64, 32, 3, 3),
        "layer1.0.downsample.0.weight": (64, 32, 1, 1),  # width change in layer1 projects
        "layer3.0.downsample.1.num_batches_tracked": (),
        "fc.weight": (100, 256),
    },
    "resnet20": {
        "layer1.2.bn2.weight": (16,),
        "layer2.0.downsample.0.weight": (32, 16, 1, 1),
        "fc.bias": (100,),
    },
    "wrn_16_2": {
        "conv1.weight": (16, 3, 3, 3),
        "block1.layer.0.bn1.weight": (16,),
        "block1.layer.0.convShortcut.weight": (32, 16, 1, 1),
        "block3.layer.1.conv2.weight": (128, 128, 3, 3),
        "bn1.running_var": (128,),
        "fc.weight": (100, 128),
    },
    "vgg13": {
        "block0.0.weight": (64, 3, 3, 3),
        "block0.0.bias": (64,),
        "block0.3.weight": (64, 64, 3, 3),  # Sequential index: conv, BN, ReLU, conv, BN
        "block0.4.running_mean": (64,),
        "block4.4.weight": (512,),
        "classifier.weight": (100, 512),
    },
    "ResNet50": {
        "layer1.0.shortcut.0.weight": (256, 64, 1, 1),
        "layer4.2.conv3.weight": (2048, 512, 1, 1),
        "linear.weight": (100, 2048),
    },
    "MobileNetV2": {
        "conv1.0.weight": (16, 3, 3, 3),
        "blocks.0.0.conv.0.weight": (16, 16, 1, 1),  # expansion conv kept at t = 1
        "blocks.1.0.conv.3.weight": (48, 1, 3, 3),  # depthwise, 8 * 6
        "blocks.6.0.conv.7.running_var": (160,),
        "conv2.0.weight": (1280, 160, 1, 1),
        "classifier.0.weight": (100, 1280),
    },
    "ShuffleV1": {
        "layer1.0.conv1.weight": (54, 24, 1, 1),  # first unit: ungrouped, 240 - 24 = 216 out
        "layer1.0.conv3.weight": (216, 18, 1, 1),
        "layer2.0.conv1.weight": (60, 80, 1, 1),  # grouped by 3
        "layer3.3.bn3.weight": (960,),
        "linear.weight": (100, 960),
    },
    "ShuffleV2": {
        "layer1.0.conv1.weight": (24, 1, 3, 3),
        "layer1.0.conv5.weight": (58, 58, 1, 1),
        "layer1.3.conv3.weight": (58, 58, 1, 1),
        "layer2.7.bn3.running_mean": (116,),
        "conv2.weight": (1024, 464, 1, 1),
        "linear.weight": (100, 1024),
    },
}


@functools.cache
def _eval_model(name: str, num_classes: int = 100, in_channels: int = 3) -> KDModel:
    """A seeded model in eval mode, shared by the read-only tests (no test may modify it)."""
    torch.manual_seed(0)
    return create_model(name, num_classes, in_channels).eval()


def _num_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _randomize_bn_stats(model: torch.nn.Module) -> None:
    """Give every BN non-trivial running statistics, so eval outputs depend on the buffers."""
    gen = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)
            m.num_batches_tracked.fill_(240)


def _check_features(model: KDModel, x: torch.Tensor) -> ModelOutput:
    out = model(x, features=True)
    assert isinstance(out, ModelOutput)
    batch = x.shape[0]
    assert len(model.stage_channels) == 4 and len(out.stages) == 4
    sizes = []
    for stage, channels in zip(out.stages, model.stage_channels, strict=True):
        assert stage.dim() == 4
        assert stage.shape[:2] == (batch, channels)
        assert stage.min() >= 0  # post-ReLU
        sizes.append(stage.shape[-1])
    assert sizes == sorted(sizes, reverse=True)  # early -> late
    assert out.pooled.shape == (batch, model.feature_dim)
    torch.testing.assert_close(out.pooled, out.stages[-1].mean(dim=(2, 3)))
    torch.testing.assert_close(out.logits, model(x), rtol=0, atol=0)
    return out


def test_registered_names_are_exactly_the_zoo():
    assert list_models() == NAMES
    assert len(MODELS) == 22


@pytest.mark.parametrize("name", NAMES)
def test_parameter_count_is_published(name):
    assert _num_params(_eval_model(name)) == PUBLISHED_PARAMS[name]


@pytest.mark.parametrize("name", NAMES)
@torch.no_grad()
def test_rgb_32px_forward_and_features(name):
    model = _eval_model(name)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    logits = model(x)
    assert logits.shape == (2, 100) and logits.dtype == torch.float32
    assert torch.isfinite(logits).all()
    _check_features(model, x)


@pytest.mark.parametrize("name", NAMES)
@torch.no_grad()
def test_gray_8px_forward_and_features(name):
    model = _eval_model(name, 10, 1)
    x = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    assert model(x).shape == (3, 10)
    _check_features(model, x)


@pytest.mark.parametrize("name", NAMES)
def test_in_channels_changes_only_the_first_conv(name):
    rgb = _eval_model(name).state_dict()
    gray = _eval_model(name, 100, 1).state_dict()
    assert list(rgb) == list(gray)
    differing = [k for k in rgb if rgb[k].shape != gray[k].shape]
    assert len(differing) == 1
    (key,) = differing
    assert rgb[key].shape[1] == 3 and gray[key].shape[1] == 1
    assert rgb[key].shape[0] == gray[key].shape[0] and rgb[key].shape[2:] == gray[key].shape[2:]


@pytest.mark.parametrize("name", NAMES)
@torch.no_grad()
def test_64px_input(name):
    model = _eval_model(name)
    out = model(torch.randn(1, 3, 64, 64), features=True)
    assert out.logits.shape == (1, 100)
    assert out.pooled.shape == (1, model.feature_dim)


@torch.no_grad()
def test_vgg_pools_follow_the_framework_at_32_and_64px():
    model = _eval_model("vgg8")
    # 32 px: three pools (32 -> 16 -> 8 -> 4) and no pool before block4.
    out32 = model(torch.randn(1, 3, 32, 32), features=True)
    assert [s.shape[-1] for s in out32.stages] == [32, 16, 8, 4]
    # 64 px: the framework adds the pool before block4 (64 -> 32 -> 16 -> 8 -> 4).
    out64 = model(torch.randn(1, 3, 64, 64), features=True)
    assert [s.shape[-1] for s in out64.stages] == [64, 32, 16, 4]


@pytest.mark.parametrize("name", FAMILY_REPRESENTATIVES)
@torch.no_grad()
def test_channels_last_matches_contiguous(name):
    torch.manual_seed(0)
    model = create_model(name, 10).eval()
    _randomize_bn_stats(model)
    x = torch.randn(2, 3, 16, 16)
    expected = model(x, features=True)
    model = model.to(memory_format=torch.channels_last)
    got = model(x.to(memory_format=torch.channels_last), features=True)
    # Only the summation order differs: allow float32 rounding relative to each tensor's scale.
    for g, e in zip((got.logits, *got.stages), (expected.logits, *expected.stages), strict=True):
        assert g.shape == e.shape
        torch.testing.assert_close(g, e, rtol=1e-3, atol=1e-4 * max(1.0, e.abs().max().item()))


@pytest.mark.parametrize("name", FAMILY_REPRESENTATIVES)
@torch.no_grad()
def test_autocast_bfloat16(name):
    model = _eval_model(name)
    x = torch.randn(2, 3, 16, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x, features=True)
    assert out.logits.dtype == torch.bfloat16
    assert out.logits.shape == (2, 100) and torch.isfinite(out.logits.float()).all()
    assert out.pooled.shape == (2, model.feature_dim)


def test_training_mode_backward_reaches_every_parameter():
    model = create_model("wrn_16_1", 5)
    out = model(torch.randn(4, 3, 8, 8), features=True)
    (out.logits.sum() + sum(s.mean() for s in out.stages)).backward()
    assert all(p.grad is not None for p in model.parameters())


def test_unknown_name_lists_the_known_names():
    with pytest.raises(UnknownNameError) as info:
        create_model("resnt20", 10)
    message = str(info.value)
    assert "'resnt20'" in message and "resnet20" in message and "ShuffleV2" in message


@pytest.mark.parametrize(
    ("kwargs", "shown"),
    [
        ({"num_classes": 0}, "num_classes"),
        ({"num_classes": -3}, "-3"),
        ({"num_classes": 2.5}, "2.5"),
        ({"num_classes": 10, "in_channels": 0}, "in_channels"),
        ({"num_classes": True}, "True"),
    ],
)
def test_bad_sizes_are_value_errors(kwargs, shown):
    with pytest.raises(ValueError, match=shown):
        create_model("resnet8", **kwargs)


# ---- checkpoints in the framework's layout ----


@pytest.mark.parametrize("name", list(FRAMEWORK_KEYS))
def test_state_dict_uses_framework_names(name):
    state = _eval_model(name).state_dict()
    for key, shape in FRAMEWORK_KEYS[name].items():
        assert key in state, f"{name}: missing framework key {key}"
        assert tuple(state[key].shape) == shape, key


def _save_framework_checkpoint(model: torch.nn.Module, path: Path, prefix: str = "") -> None:
    state = {prefix + k: v for k, v in model.state_dict().items()}
    torch.save({"model": state, "epoch": 240, "accuracy": torch.tensor(71.2)}, path)


@pytest.mark.parametrize("name", ["resnet20", "wrn_16_2", "vgg8", "MobileNetV2", "ShuffleV2"])
@torch.no_grad()
def test_framework_checkpoint_loads_and_reproduces_outputs(name, tmp_path):
    torch.manual_seed(3)
    trained = create_model(name, 100)
    _randomize_bn_stats(trained)
    trained.eval()
    path = tmp_path / "ckpt_epoch_240.pth"
    _save_framework_checkpoint(trained, path)
    raw = torch.load(path, weights_only=True)
    assert set(raw) == {"model", "epoch", "accuracy"}

    loaded = load_kd_checkpoint(path, name, 100)
    assert not loaded.training
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(loaded(x), trained(x), rtol=0, atol=0)
    for key, value in trained.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


@torch.no_grad()
def test_data_parallel_prefix_and_bare_state_dict(tmp_path):
    torch.manual_seed(4)
    trained = create_model("resnet8", 10, in_channels=1).eval()
    _randomize_bn_stats(trained)
    x = torch.randn(2, 1, 8, 8)

    prefixed = tmp_path / "dp.pth"
    _save_framework_checkpoint(trained, prefixed, prefix="module.")
    torch.testing.assert_close(load_kd_checkpoint(prefixed, "resnet8", 10, 1)(x), trained(x))

    bare = tmp_path / "bare.pth"
    torch.save(trained.state_dict(), bare)
    torch.testing.assert_close(load_kd_checkpoint(str(bare), "resnet8", 10, 1)(x), trained(x))


def test_checkpoint_without_num_batches_tracked_loads(tmp_path):
    trained = create_model("resnet8", 10)
    state = {k: v for k, v in trained.state_dict().items() if "num_batches_tracked" not in k}
    path = tmp_path / "old.pth"
    torch.save({"model": state}, path)
    loaded = load_kd_checkpoint(path, "resnet8", 10)
    assert torch.equal(loaded.fc.weight, trained.fc.weight)


def test_wrong_architecture_is_a_clear_value_error(tmp_path):
    path = tmp_path / "resnet20_ckpt.pth"
    _save_framework_checkpoint(create_model("resnet20", 100), path)
    with pytest.raises(ValueError) as info:
        load_kd_checkpoint(path, "resnet32", 100)
    message = str(info.value)
    assert str(path) in message and "'resnet32'" in message
    assert "missing keys" in message and "layer1.3.conv1.weight" in message

    with pytest.raises(ValueError) as info:
        load_kd_checkpoint(path, "wrn_16_2", 100)
    message = str(info.value)
    assert "'wrn_16_2'" in message and "unexpected keys" in message
    assert "block1.layer.0.bn1.weight" in message  # a missing wrn key is named


def test_wrong_num_classes_names_the_shapes(tmp_path):
    path = tmp_path / "ckpt_epoch_240.pth"
    _save_framework_checkpoint(create_model("resnet20", 100), path)
    with pytest.raises(ValueError) as info:
        load_kd_checkpoint(path, "resnet20", 10)
    message = str(info.value)
    assert str(path) in message and "'resnet20'" in message
    assert "fc.weight: checkpoint (100, 64) vs model (10, 64)" in message
    assert "fc.bias" in message


def test_missing_file_names_the_path(tmp_path):
    path = tmp_path / "nowhere" / "ckpt_epoch_240.pth"
    with pytest.raises(FileNotFoundError, match="ckpt_epoch_240.pth"):
        load_kd_checkpoint(path, "resnet20", 100)


def test_unreadable_or_non_state_dict_file_is_a_value_error(tmp_path):
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="garbage.pth"):
        load_kd_checkpoint(garbage, "resnet8", 10)

    no_model = tmp_path / "meta.pth"
    torch.save({"epoch": 240, "best_acc": 70.1}, no_model)
    with pytest.raises(ValueError, match="no state_dict"):
        load_kd_checkpoint(no_model, "resnet8", 10)
