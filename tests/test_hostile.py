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
from augkd.training import NonFiniteLossError, TrainConfig, train
from augkd.training import step as step_module
from augkd.training.checkpoint import atomic_save, load_checkpoint
from augkd.training.run import RunDir, RunFolderBusyError
from tests.helpers import FAST


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
        with pytest.raises(RunFolderBusyError, match="being written by another process"):
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
    # stopped when the teacher loads, naming the file and the tensor (before any T. stddev)
    assert f"tensor {first!r} holds non-finite values" in err and str(run) in err
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
    original = step_module.loss_terms

    def poisoned(parts, batch, ctx):
        losses = original(parts, batch, ctx)
        return {**losses, "task": losses["task"] * float("nan")}

    monkeypatch.setattr(step_module, "loss_terms", poisoned)
    with pytest.raises(NonFiniteLossError, match="no checkpoint was written before it") as err:
        train(teacher_cfg(), tmp_path / "nan", data=digits, log=lambda s: None)
    assert "last good checkpoint" not in str(err.value)
    assert not (tmp_path / "nan" / "checkpoint.pt").exists()
    assert not (tmp_path / "nan" / "summary.json").exists()


# ------------------------------------------------------------------ clear errors, not tracebacks
@pytest.fixture(scope="module")
def finished_teacher(digits_teacher):
    return digits_teacher  # resnet8, 3 epochs on digits (conftest); the tests change copies


def _save_variant(src: Path, dst: Path, change) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    state = load_checkpoint(src / "model.pt")
    change(state)
    atomic_save(state, dst / "model.pt")
    return dst


@pytest.mark.parametrize("change, message", [
    (lambda s: s["manifest"].update(architecture="resnet20"), "do not fit its architecture"),
    (lambda s: s["manifest"].update(architecture="resnet999"), "does not know"),
    (lambda s: s.pop("manifest"), "has no manifest"),
    (lambda s: s["model"].update({k: v[:1] for k, v in list(s["model"].items())[:1]}),
     "do not fit its architecture"),
])
def test_a_damaged_model_file_is_one_clear_error(tmp_path, digits, finished_teacher, change,
                                                 message):
    from augkd.training import load_teacher

    bad = _save_variant(finished_teacher, tmp_path / "bad", change)
    with pytest.raises(ValueError, match=message) as err:
        load_teacher(bad, digits)
    assert str(bad) in str(err.value) and "\n" not in str(err.value)


def test_a_checkpoint_without_optimizer_state_is_named(tmp_path, digits):
    out = tmp_path / "run"
    train(teacher_cfg(epochs=2), out, data=digits, log=lambda s: None)
    (out / "summary.json").unlink()
    state = load_checkpoint(out / "checkpoint.pt")
    del state["optimizer"]
    atomic_save(state, out / "checkpoint.pt")
    with pytest.raises(ValueError, match=r"checkpoint\.pt: it lacks optimizer"):
        train(teacher_cfg(epochs=2), out, resume=True, data=digits, log=lambda s: None)


def test_a_full_disk_is_one_line_naming_the_file(tmp_path, monkeypatch, capsys):
    import errno

    import augkd.training.checkpoint as checkpoint
    from augkd.train import main as train_main

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint.os, "fsync", full)
    code = train_main(["teacher", "--model", "resnet8", "--epochs", "1", "--no-progress",
                       "--device", "cpu", "--out", str(tmp_path / "full")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "No space left on device" in err[0] and str(tmp_path / "full") in err[0]
    assert not list((tmp_path / "full").glob(".*.tmp"))


def test_a_full_cache_disk_warns_and_goes_on(tmp_path, monkeypatch):
    import augkd.data.cache as cache
    from tests.test_data import build_tree

    build_tree(tmp_path / "tree")

    def full(obj, f):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cache.torch, "save", full)
    with pytest.warns(UserWarning, match="going on without it"):
        data = load_dataset("imagefolder", tmp_path / "tree", cache_dir=tmp_path / "cache")
    assert len(data.train_labels) > 0
    assert not list((tmp_path / "cache").glob("*"))


def test_run_files_honour_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_save({"x": 1}, tmp_path / "a.pt")
        os.umask(0o077)
        atomic_save({"x": 1}, tmp_path / "b.pt")
    finally:
        os.umask(old)
    assert (tmp_path / "a.pt").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "b.pt").stat().st_mode & 0o777 == 0o600


def test_a_busy_run_folder_is_one_line_on_the_command_line(tmp_path, capsys):
    from augkd.train import main as train_main

    run = RunDir(tmp_path / "busy")
    with run.lock():
        code = train_main(["teacher", "--model", "resnet8", "--epochs", "1", "--no-progress",
                           "--device", "cpu", "--out", str(run.path)])
    assert code == 2 and "being written by another process" in capsys.readouterr().err


# ------------------------------------------------------------------ image folders
def _class_tree(root: Path) -> Path:
    from tests.test_data import build_tree

    build_tree(root)
    return root


def test_symlinks_that_leave_the_root_loop_or_duplicate_a_class_are_refused(tmp_path):
    root = _class_tree(tmp_path / "tree")
    classes = sorted(p for p in (root / "train").iterdir() if p.is_dir())
    link = classes[1] / "more"
    link.symlink_to(classes[0], target_is_directory=True)
    with pytest.raises(ValueError, match="a second path to the folder"):
        load_dataset("imagefolder", root, cache=False)
    link.unlink()
    (classes[0] / "loop").symlink_to(root / "train", target_is_directory=True)
    with pytest.raises(ValueError, match="symlink loop"):
        load_dataset("imagefolder", root, cache=False)
    (classes[0] / "loop").unlink()
    outside = tmp_path / "elsewhere.png"
    outside.write_bytes(next(classes[0].iterdir()).read_bytes())
    (classes[0] / "outside.png").symlink_to(outside)
    with pytest.raises(ValueError, match="outside the dataset root"):
        load_dataset("imagefolder", root, cache=False)
    (classes[0] / "outside.png").unlink()
    inside = classes[0] / "alias.png"
    inside.symlink_to(next(p for p in classes[0].iterdir() if p.suffix == ".png"))
    with pytest.raises(ValueError, match="a second path to the file"):
        load_dataset("imagefolder", root, cache=False)


def test_files_over_the_size_cap_are_refused_before_reading(tmp_path):
    from tests.test_data import pack

    root = _class_tree(tmp_path / "tree")
    with pytest.raises(ValueError, match="more than the cap of 10 bytes"):
        load_dataset("imagefolder", root, cache=False, max_member_bytes=10)
    archive = pack(root, tmp_path / "data.tar")
    with pytest.raises(ValueError, match=r"data\.tar:.*more than the cap of 10 bytes"):
        load_dataset("imagefolder", archive, cache=False, max_member_bytes=10)
    zipped = pack(root, tmp_path / "data.zip")
    with pytest.raises(ValueError, match=r"data\.zip:.*more than the cap of 10 bytes"):
        load_dataset("imagefolder", zipped, cache=False, max_member_bytes=10)


def test_images_over_the_pixel_cap_are_refused_before_decoding(tmp_path):
    root = _class_tree(tmp_path / "tree")
    with pytest.raises(ValueError, match=r"declares \d+x\d+ pixels, more than the cap of 4"):
        load_dataset("imagefolder", root, cache=False, max_image_pixels=4)
    with pytest.raises(ValueError, match="max_image_pixels must be a positive integer"):
        load_dataset("imagefolder", root, cache=False, max_image_pixels=0)


# ------------------------------------------------------------------ reports and sweep specs
def test_a_report_of_non_finite_t_stddev_is_refused(tmp_path):
    import pandas as pd

    from augkd.report import ResultsError, write_results

    table = pd.DataFrame({"aug": ["flip", "cutmix"], "t_stddev": [float("nan"), 0.01]})
    with pytest.raises(ResultsError, match="not finite for flip"):
        write_results(tmp_path / "r", table, {"protocol": {}})


@pytest.mark.parametrize("section, key, value, message", [
    ("grid", "seed", [True], "grid.seed values must be integers"),
    ("grid", "seed", [2**64], r"grid.seed values must be integers in \[0, 2\*\*63 - 1\]"),
    ("student", "batch_size", 0, "student.batch_size must be a positive integer"),
    ("teacher", "lr", float("nan"), "teacher.lr must be a finite number"),
    ("tstddev", "epochs", 0, "tstddev.epochs must be an integer >= 1"),
    ("tstddev", "group_size", "ten", "tstddev.group_size must be an integer >= 1"),
    ("tstddev", "modes", "per-image", "tstddev.modes must be a list"),
    ("student", "temperature", float("inf"), r"student.temperature must be in \(0, 1000\]"),
])
def test_every_sweep_value_is_checked_with_its_dotted_key(tmp_path, section, key, value, message):
    import yaml

    from augkd.sweep import SpecError, load_spec

    spec = yaml.safe_load((Path(__file__).parents[1] / "experiments" /
                           "digits_smoke.yaml").read_text())
    spec.setdefault(section, {})[key] = value
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    with pytest.raises(SpecError, match=message):
        load_spec(path)


@pytest.mark.parametrize("options, message", [
    ({"train_subset": 0}, "dataset.options.train_subset must be a positive integer"),
    ({"resize": "big"}, "dataset.options.resize must be a positive integer"),
    ({"colour": True}, r"unknown key\(s\) colour in dataset.options"),
])
def test_dataset_options_of_a_sweep_are_checked_before_anything_runs(tmp_path, options, message):
    import yaml

    from augkd.sweep import SpecError, load_spec

    spec = yaml.safe_load((Path(__file__).parents[1] / "experiments" /
                           "digits_smoke.yaml").read_text())
    spec["dataset"] = {"name": "digits", "options": options}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    with pytest.raises(SpecError, match=message):
        load_spec(path)


def test_two_ranks_never_train_the_same_cached_teacher(tmp_path, digits):
    """The second rank waits on the cache lock, then uses the teacher the first one trained."""
    import fcntl
    import threading

    from augkd.ranking import RankConfig
    from augkd.ranking.measure import obtain_teacher

    cfg = RankConfig(teacher="resnet8", teacher_epochs=1, cache_dir=str(tmp_path), device="cpu",
                     progress=False)
    run_dir = (tmp_path / "teachers" /
               f"{digits.name}-{digits.checksum[:12]}-resnet8-e1-s0")
    lock = run_dir.with_suffix(".lock")
    lock.parent.mkdir(parents=True)
    logs: list[str] = []
    with open(lock, "a") as held:  # "the first rank" holds the lock while it trains
        fcntl.flock(held, fcntl.LOCK_EX)
        second = threading.Thread(target=lambda: obtain_teacher(cfg, digits, "cpu",
                                                                logs.append))
        second.start()
        second.join(timeout=3)
        assert second.is_alive()  # blocked on the lock
        train(teacher_cfg(), run_dir, data=digits, log=lambda s: None)
        fcntl.flock(held, fcntl.LOCK_UN)
    second.join(timeout=60)
    assert not second.is_alive()
    assert any("waiting for another process" in line for line in logs)
    assert len(RunDir(run_dir).read_metrics()) == 1  # trained once, by the first
