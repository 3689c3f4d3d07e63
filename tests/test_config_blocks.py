"""A run's config.yaml groups its fields in blocks (run, data, distillation, balancing,
optimization, runtime); configs written flat (every run folder from before) read the same."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from augkd.train import build_parser, config_from_args
from augkd.training import TrainConfig, train
from augkd.training.config import BLOCKS, flatten_blocks
from augkd.training.run import RunDir
from tests.helpers import FAST, train_killed_in_epoch


def test_every_field_is_in_exactly_one_block():
    placed = [name for names in BLOCKS.values() for name in names]
    assert sorted(placed) == sorted(f.name for f in dataclasses.fields(TrainConfig))


def test_blocks_round_trip_and_equal_the_flat_spelling():
    cfg = TrainConfig(role="student", teacher="t", aug="cutmix", schedule="cosine(warmup=2)",
                      epochs=10, dataset_options={"resize": 8})
    written = yaml.safe_load(cfg.to_yaml())
    assert list(written) == ["run", "data", "distillation", "balancing", "optimization",
                             "runtime"]
    assert written["optimization"]["schedule"] == "cosine(warmup=2)"
    assert written["distillation"]["aug"] == "cutmix"
    assert TrainConfig.from_dict(written) == cfg == TrainConfig.from_dict(cfg.to_dict())


def test_a_teacher_has_no_student_blocks():
    written = yaml.safe_load(TrainConfig(role="teacher").to_yaml())
    assert "distillation" not in written and "balancing" not in written


@pytest.mark.parametrize("values, words", [
    ({"optimization": {"aug": "cutmix"}}, ["'aug'", "block 'optimization'",
                                           "belongs in block 'distillation'"]),
    ({"optimization": {"lr": 0.1}, "lr": 0.2}, ["'lr' given twice"]),
    ({"runtime": "cpu"}, ["block 'runtime'", "got str"]),
    ({"data": {"datset": "digits"}}, ["unknown key 'datset'", "dataset, root"]),
])
def test_block_mistakes_are_named(values, words):
    with pytest.raises(ValueError) as err:
        TrainConfig.from_dict(values)
    for word in words:
        assert word in str(err.value)


def test_a_config_file_in_blocks_and_flags_over_it(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("run: {model: resnet14}\noptimization: {epochs: 7, lr: 0.2}\n"
                    "runtime: {device: cpu}\n")
    cfg = config_from_args(build_parser().parse_args(
        ["teacher", "--config", str(path), "--lr", "0.3"]))
    assert (cfg.model, cfg.epochs, cfg.lr, cfg.device) == ("resnet14", 7, 0.3, "cpu")


def test_an_old_flat_run_folder_resumes_and_is_rewritten_in_blocks(tmp_path, digits,
                                                                    monkeypatch):
    cfg = TrainConfig(role="teacher", model="resnet8", epochs=2, **FAST)
    train_killed_in_epoch(monkeypatch, 2, cfg, tmp_path / "r", data=digits)
    flat = cfg.applicable_dict()  # what every run folder from before the blocks holds
    (tmp_path / "r" / "config.yaml").write_text(yaml.safe_dump(flat))
    assert RunDir(tmp_path / "r").read_config() == cfg and flatten_blocks(flat) == flat
    done = train(cfg, tmp_path / "r", resume=True, data=digits, log=lambda s: None)
    assert done.summary["last"]["epoch"] == 2
    assert "optimization" in yaml.safe_load((done.run_dir / "config.yaml").read_text())
