"""Named optimization presets (``--recipe``, a config's ``recipe``): what each sets, and that
the flags and config keys given beside it win."""

from __future__ import annotations

import pytest

from augkd.train import build_parser, config_from_args
from augkd.training.config import RECIPES, TrainConfig, apply_recipe


def cfg(*argv: str) -> TrainConfig:
    return config_from_args(build_parser().parse_args(["teacher", *argv]))


def test_imagenet_is_mdistillers_resnet34_resnet18_sgd():
    c = cfg("--recipe", "imagenet", "--model", "resnet8")
    assert (c.epochs, c.batch_size, c.lr, c.momentum, c.weight_decay) == (
        100, 256, 0.1, 0.9, 1e-4)
    assert c.lr_milestones == [30, 60, 90] and c.lr_decay_rate == 0.1
    assert c.recipe == "imagenet"  # recorded with the run


def test_the_lr_follows_the_batch_unless_given():
    assert cfg("--recipe", "imagenet", "--batch-size", "512").lr == pytest.approx(0.2)
    assert cfg("--recipe", "imagenet", "--batch-size", "512", "--lr", "0.3").lr == 0.3
    short = cfg("--recipe", "imagenet", "--epochs", "10")
    assert short.epochs == 10 and short.lr_milestones == [3, 6, 9]  # decay points scale


def test_cifar_and_tinyimagenet_are_the_protocols_defaults():
    plain = cfg("--model", "MobileNetV2")
    for name in ("cifar", "tinyimagenet"):
        c = cfg("--recipe", name, "--model", "MobileNetV2")
        assert (c.epochs, c.batch_size, c.lr, c.weight_decay, c.lr_milestones) == (
            plain.epochs, plain.batch_size, plain.lr, plain.weight_decay, plain.lr_milestones)


def test_a_config_file_recipe_and_its_keys(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("recipe: imagenet\nweight_decay: 5.0e-5\n")
    c = TrainConfig.from_yaml(path)
    assert (c.epochs, c.weight_decay, c.lr) == (100, 5e-5, 0.1)
    again = TrainConfig.from_dict(c.to_dict())  # a run folder's config.yaml reads back the same
    assert again == c


def test_an_unknown_recipe_names_the_known_ones():
    with pytest.raises(ValueError, match="unknown recipe 'imagnet'; known: cifar"):
        cfg("--recipe", "imagnet")
    with pytest.raises(ValueError, match="unknown recipe"):
        TrainConfig(recipe="nope")
    assert apply_recipe({"epochs": 3}) == {"epochs": 3}
    assert set(RECIPES) == {"cifar", "tinyimagenet", "imagenet"}
