"""Hostile but fair input: nothing runs that should not, nothing is lost, bad values are named.

Each test pins a finding of the probe of augkd as a hostile user (crafted pickles, two runs in
one folder, out-of-range numbers, a NaN teacher, cut metric files, leftovers of killed writes).
"""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path

import pytest
import torch

from augkd.augment import create
from augkd.data import load_dataset
from augkd.rank import main as rank_main
from augkd.training import NonFiniteLossError, TrainConfig, Trainer, train
from augkd.training.checkpoint import atomic_save, load_checkpoint
from augkd.training.run import RunDir

FAST = dict(dataset="digits", progress=False, device="cpu")


def teacher_cfg(**kw) -> TrainConfig:
    return TrainConfig(**{"role": "teacher", "model": "resnet8", "epochs": 1, **FAST, **kw})


# ------------------------------------------------------------------ unsafe input
class _RunsCode:
    """A pickle payload that would create ``marker`` when unpickled by plain pickle.load."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_crafted_cifar_file_is_refused_and_runs_nothing(tmp_path):
    from tests.test_data import write_cifar10

    write_cifar10(tmp_path)
    marker = tmp_path / "pwned"
    meta = tmp_path / "cifar-10-batches-py" / "batches.meta"
    with meta.open("wb") as handle:
        pickle.dump({"label_names": [f"c{k}" for k in range(10)], "x": _RunsCode(marker)}, handle)
    with pytest.raises(ValueError, match=r"refusing CIFAR file .*batches\.meta.*system"):
        load_dataset("cifar10", tmp_path)
    assert not marker.exists()


def test_a_second_process_on_the_same_run_folder_is_stopped(tmp_path, digits):
    run = RunDir(tmp_path / "busy")
    with run.lock():  # another process writing the run (flock is per open file)
        with pytest.raises(RuntimeError, match="being written by another process"):
            train(teacher_cfg(), run.path, data=digits, log=lambda s: None)
    train(teacher_cfg(), run.path, data=digits, log=lambda s: None)  # free again
    assert run.is_finished()


# ------------------------------------------------------------------ silently wrong values
@pytest.mark.parametrize("spec, allowed", [
    ("cutmix(beta=inf)", "a finite number"),
    ("mixup(alpha=inf)", "a finite number"),
    ("mixup(alpha=nan)", "a finite number"),
    ("cutmix(beta=1e308)", r"a number in \(0, 10000\]"),
    ("cutout(size=100000000)", r"an integer in \[1, 4096\]"),
    ("crop+flip(padding=100000)", r"an integer in \[0, 4096\]"),
    ("cutmixpick(k=1000000000)", r"an integer in \[1, 64\]"),
    ("flip(p=nan)", "a finite number"),
])
def test_out_of_range_da_parameters_fail_at_parse_time(spec, allowed):
    name, param = spec.split("(")[0], spec.split("(")[1].split("=")[0]
    pattern = rf"{re.escape(name)}: bad value {param}=.*allowed: {allowed}"
    with pytest.raises(ValueError, match=pattern):
        create(spec)


def test_a_cutout_hole_larger_than_the_image_is_named():
    images = torch.zeros(2, 3, 8, 8, dtype=torch.uint8)
    with pytest.raises(ValueError, match="size=9 is larger than the 8x8 images"):
        create("cutout(size=9)")(images)
    create("cutout(size=8)")(images)  # the whole image is allowed


@pytest.mark.parametrize("field, value, message", [
    ("lr_decay_rate", -3.0, r"lr_decay_rate must be in \(0, 1\]"),
    ("lr_decay_rate", float("nan"), r"lr_decay_rate must be in \(0, 1\]"),
    ("weight_decay", float("nan"), "weight_decay must be a finite number"),
    ("temperature", float("inf"), r"temperature must be in \(0, 1000\]"),
    ("lr", float("inf"), "lr must be a finite number"),
    ("seed", 2**64, r"seed must be an integer in \[0, 2\*\*63 - 1\]"),
    ("seed", -1, "seed must be an integer"),
    ("w_distill", float("nan"), "w_distill must be a finite number"),
])
def test_out_of_range_training_numbers_are_named(field, value, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**{field: value})


def test_a_nan_teacher_stops_rank_naming_the_da_and_the_teacher(tmp_path, capsys, digits):
    run = train(teacher_cfg(), tmp_path / "teacher", data=digits, log=lambda s: None).run_dir
    state = load_checkpoint(run / "model.pt")
    first = next(k for k in state["model"] if k.endswith("weight"))
    state["model"][first] = torch.full_like(state["model"][first], float("nan"))
    atomic_save(state, run / "model.pt")
    code = rank_main(["--teacher", str(run), "--augs", "flip", "--epochs", "1",
                      "--out", str(tmp_path / "r"), "--no-progress"])
    err = capsys.readouterr().err
    assert code != 0
    assert "T. stddev of flip" in err and str(run) in err and "non-finite" in err
    assert not (tmp_path / "r" / "results.csv").exists()


# ------------------------------------------------------------------ hard stops
def test_resume_drops_an_unfinished_last_metrics_line(tmp_path, digits):
    out = tmp_path / "cut"
    train(teacher_cfg(epochs=2), out, data=digits, log=lambda s: None)
    run = RunDir(out)
    (out / "summary.json").unlink()  # as if killed after epoch 2's checkpoint
    with run.metrics.open("a") as handle:
        handle.write('{"epoch": 3, "lr": 0.0')  # a write cut by power loss, no newline
    assert [r["epoch"] for r in run.read_metrics()] == [1, 2]
    train(teacher_cfg(epochs=2), out, resume=True, data=digits, log=lambda s: None)
    assert [r["epoch"] for r in run.read_metrics()] == [1, 2]
    assert run.is_finished()


def test_a_damaged_metrics_line_in_the_middle_is_named(tmp_path):
    run = RunDir(tmp_path)
    run.metrics.write_text('{"epoch": 1}\n{"epoch": 2, oops\n{"epoch": 3}\n')
    with pytest.raises(ValueError, match=r"metrics\.jsonl, line 2: not a JSON record"):
        run.read_metrics()


def test_leftover_temporaries_of_killed_writes_are_removed(tmp_path, digits):
    out = tmp_path / "run"
    train(teacher_cfg(epochs=2), out, data=digits, log=lambda s: None)
    (out / "summary.json").unlink()
    stale = out / ".checkpoint.pt.abc123.tmp"
    stale.write_bytes(b"half a checkpoint")
    logs = []
    train(teacher_cfg(epochs=2), out, resume=True, data=digits, log=logs.append)
    assert not stale.exists()
    assert any(".checkpoint.pt.abc123.tmp" in line for line in logs)


def test_nan_in_the_first_epoch_names_no_checkpoint(tmp_path, digits, monkeypatch):
    original = Trainer._losses

    def poisoned(self, images, labels, generator):
        losses = original(self, images, labels, generator)
        return {**losses, "task": losses["task"] * float("nan")}

    monkeypatch.setattr(Trainer, "_losses", poisoned)
    with pytest.raises(NonFiniteLossError, match="no checkpoint was written before it") as err:
        train(teacher_cfg(), tmp_path / "nan", data=digits, log=lambda s: None)
    assert "last good checkpoint" not in str(err.value)
    assert not (tmp_path / "nan" / "checkpoint.pt").exists()
    assert not (tmp_path / "nan" / "summary.json").exists()
