"""TensorBoard scalars of a run: the values of metrics.jsonl, one point per epoch, after resumes."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

from augkd.training import TrainConfig, train
from augkd.training.run import RunDir
from tests.helpers import train_killed_in_epoch

pytest.importorskip("tensorboard")

SMOKE = Path(__file__).resolve().parents[1] / "experiments" / "digits_smoke.yaml"
FAST = dict(model="resnet8", dataset="digits", dataset_options={"train_subset": 300},
            progress=False, device="cpu")


def quiet(_line: str) -> None:
    pass


def read_scalars(run: RunDir) -> dict[str, list[tuple[int, float]]]:
    """``{tag: [(step, value), ...]}`` as TensorBoard reads the run's event files."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run.tensorboard), size_guidance={"scalars": 0})
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)]
            for tag in events.Tags()["scalars"]}


def assert_scalars_equal_metrics(run: RunDir, epochs: int) -> None:
    records = run.read_metrics()
    assert [r["epoch"] for r in records] == list(range(1, epochs + 1))
    scalars = read_scalars(run)
    names = {k for r in records for k in r if k != "epoch"}
    assert set(scalars) == names
    for name in names:
        assert [step for step, _ in scalars[name]] == list(range(1, epochs + 1)), name
        for (_, value), record in zip(scalars[name], records, strict=True):
            if math.isnan(record[name]):
                assert math.isnan(value), name
            else:  # event files hold float32
                assert value == pytest.approx(record[name], rel=1e-6, abs=1e-6), name


@pytest.fixture(scope="module")
def digits():
    """The digits training subset that ``FAST`` names (300 images)."""
    from augkd.data import load_dataset

    return load_dataset("digits", **FAST["dataset_options"])


@pytest.fixture(scope="module")
def teacher(tmp_path_factory, digits):
    out = tmp_path_factory.mktemp("tb-teacher") / "run"
    return train(TrainConfig(role="teacher", epochs=1, **FAST), out, data=digits,
                 log=quiet).run_dir


def test_agb_student_scalars_equal_its_metrics(teacher, digits, tmp_path):
    cfg = TrainConfig(role="student", teacher=str(teacher), balancer="agb", agb_search=False,
                      epochs=2, batch_size=100, tensorboard=True, **FAST)
    run = RunDir(train(cfg, tmp_path / "student", data=digits, log=quiet).run_dir)
    assert_scalars_equal_metrics(run, 2)
    scalars = read_scalars(run)
    for name in ("train_task", "train_distill", "test_top1", "test_loss", "lr", "epoch_time_s",
                 "balance_alpha", "balance_beta"):
        assert name in scalars, name


def test_a_run_without_the_flag_writes_no_events(digits, tmp_path):
    run = train(TrainConfig(role="teacher", epochs=1, **FAST), tmp_path / "t", data=digits,
                log=quiet).run_dir
    assert not RunDir(run).tensorboard.exists()


def test_kill_between_the_scalars_and_the_checkpoint_repeats_no_step(digits, tmp_path,
                                                                     monkeypatch):
    """Killed after epoch 2's scalars, before its checkpoint: the resume repeats epoch 2, and
    TensorBoard shows it once, with the repeated epoch's values."""
    import augkd.training.trainer as trainer_module

    cfg = TrainConfig(role="teacher", epochs=3, tensorboard=True, **FAST)
    saves = []
    original = trainer_module.atomic_save

    def killed_at_second_checkpoint(state, path):
        saves.append(state["epoch"])
        if state["epoch"] == 2:
            raise KeyboardInterrupt
        original(state, path)

    monkeypatch.setattr(trainer_module, "atomic_save", killed_at_second_checkpoint)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path / "run", data=digits, log=quiet)
    run = RunDir(tmp_path / "run")
    assert [step for step, _ in read_scalars(run)["test_loss"]] == [1, 2]  # 2: never checkpointed
    monkeypatch.setattr(trainer_module, "atomic_save", original)
    train(cfg, run.path, resume=True, data=digits, log=quiet)
    assert_scalars_equal_metrics(run, 3)


def test_turned_on_at_resume_replays_the_finished_epochs(digits, tmp_path, monkeypatch):
    cfg = TrainConfig(role="teacher", epochs=3, **FAST)
    train_killed_in_epoch(monkeypatch, 3, cfg, tmp_path / "run", data=digits)
    run = RunDir(tmp_path / "run")
    assert not run.tensorboard.exists()
    train(cfg.replace(tensorboard=True), run.path, resume=True, data=digits, log=quiet)
    assert_scalars_equal_metrics(run, 3)


def test_the_train_cli_flag(tmp_path):
    from augkd.train import main

    out = tmp_path / "run"
    assert main(["teacher", "--model", "resnet8", "--epochs", "1", "--train-subset", "300",
                 "--device", "cpu", "--no-progress", "--tensorboard", "--out", str(out)]) == 0
    run = RunDir(out)
    assert run.read_config().tensorboard is True
    assert_scalars_equal_metrics(run, 1)


def test_a_missing_tensorboard_names_the_extra(tmp_path, monkeypatch, capsys):
    from augkd.train import main

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # its import fails
    assert main(["teacher", "--epochs", "1", "--device", "cpu", "--tensorboard",
                 "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert 'pip install "augkd[tensorboard]"' in err and "--tensorboard" in err
    assert not (tmp_path / "run").exists()  # it failed before the run started


def test_sweeps_set_it_per_role_and_it_does_not_change_what_a_run_is():
    from augkd.sweep import build_parser, load_spec, student_config
    from augkd.sweep.cli import forwarded_args

    sweep = load_spec(SMOKE, ["student.tensorboard=true"])
    job = next(j for j in sweep.jobs() if j.kind == "student")
    with_board = student_config(sweep.spec, job, teacher="t")
    assert with_board.tensorboard is True
    assert with_board.differences(with_board.replace(tensorboard=False)) == []  # runtime only
    # the sweep's --tensorboard reaches the processes of --workers and --launcher
    args = build_parser().parse_args([str(SMOKE), "--tensorboard"])
    assert "--tensorboard" in forwarded_args(args, "0/2")
