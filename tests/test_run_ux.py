"""What a researcher sees of a run: one line per epoch (also in train.log), bars only on a
terminal, Ctrl-C as one line with the resume command (in a pseudo-terminal), the config of a
teacher without student settings, a student that takes its teacher's data."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import signal
import struct
import sys
import termios
import time
from pathlib import Path

import pytest
import yaml

from augkd.train import main as train_main
from augkd.training.config import flatten_blocks
from tests.helpers import FAST

REPO_ROOT = Path(__file__).resolve().parents[1]
TINY = ["--train-subset", "300", "--resize", "6"]  # a few tenths of a second per epoch
EPOCH_LINE = re.compile(r"^epoch (\d+)/(\d+)  lr \S+  train loss \d+\.\d{4} top-1 \d+\.\d\d%  "
                        r"test loss \d+\.\d{4} top-1 \d+\.\d\d%  \d+\.\d s \([\d,]+ img/s\)$")


def run_in_terminal(argv: list[str], *, interrupt_after: str | None = None,
                    timeout: float = 120.0, cwd: Path = REPO_ROOT) -> tuple[int, str]:
    """Run ``python -m ...argv`` on a pseudo-terminal (its stdin, stdout and stderr); when its
    output shows ``interrupt_after``, type Ctrl-C (the terminal sends SIGINT to the foreground
    process group, as a real one does). Returns the exit code (128 + signal when killed by
    one) and everything it wrote."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", COLUMNS="100")
    pid, fd = pty.fork()
    if pid == 0:  # the child: the pty is its controlling terminal
        os.chdir(cwd)
        # as a shell starts a command on a terminal: Ctrl-C's default action, even where this
        # test runs with SIGINT ignored (a background job's, e.g. nohup pytest &)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.execvpe(sys.executable, [sys.executable, "-m", *argv], env)
    # a terminal of 24 x 100 characters (a new pty has 0 columns: tqdm would draw nothing)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    output, sent, deadline = b"", False, time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                output += chunk
            if interrupt_after and not sent and interrupt_after.encode() in output:
                os.write(fd, b"\x03")
                sent = True
        else:
            os.kill(pid, signal.SIGKILL)
            raise AssertionError(f"{argv} still running after {timeout} s:\n{output.decode()}")
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    code = os.waitstatus_to_exitcode(status)
    return (128 - code if code < 0 else code), output.decode(errors="replace")


def test_epoch_lines_go_to_stdout_and_train_log(tmp_path, capsys):
    out = tmp_path / "teacher"
    assert train_main(["teacher", "--model", "resnet8", "--epochs", "2", "--device", "cpu",
                       *TINY, "--out", str(out)]) == 0
    captured = capsys.readouterr()
    lines = [line for line in captured.out.splitlines() if line.startswith("epoch ")]
    assert [EPOCH_LINE.match(line).groups() for line in lines] == [("1", "2"), ("2", "2")]
    assert "\r" not in captured.err and "step/s" not in captured.err  # no bars off a terminal
    log = (out / "train.log").read_text().splitlines()
    assert log == captured.out.splitlines()  # the same lines, the final one too
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert all(0 <= r["train_top1"] <= 100 for r in records)
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert "distillation" not in config and "balancing" not in config  # a teacher's blocks
    config = flatten_blocks(config)
    for student_only in ("balancer", "agb_lambda", "temperature", "distill", "aug", "teacher"):
        assert student_only not in config


def test_student_epoch_lines_name_the_search_and_the_weights(small_teacher, tmp_path, capsys):
    from augkd.training import TrainConfig, train

    cfg = TrainConfig(role="student", model="resnet8", teacher=str(small_teacher), epochs=1,
                      agb_search_lambdas=(0.5,),
                      dataset_options={"train_subset": 300, "resize": 6}, **FAST)
    train(cfg, tmp_path / "student")
    out = capsys.readouterr().out
    assert re.search(r"^AGB search, lambda 0.5: epoch 1/1 .* held-out loss .* w_task \S+ "
                     r"w_distill \S+$", out, re.M)
    assert re.search(r"^epoch 1/1 .* train task \S+ distill \S+ top-1 .* test loss", out, re.M)
    assert "AGB search, lambda 0.5: epoch 1/1" in (tmp_path / "student" / "train.log").read_text()


@pytest.mark.slow
def test_ctrl_c_stops_with_one_line_and_the_run_resumes(tmp_path):
    out = tmp_path / "teacher"
    code, text = run_in_terminal(
        ["augkd.train", "teacher", "--model", "resnet8", "--epochs", "40", "--device", "cpu",
         *TINY, "--out", str(out)], interrupt_after="epoch 2/40  lr")
    assert code == 130, text
    assert "Traceback" not in text, text
    message = text.strip().splitlines()[-1]
    match = re.fullmatch(r"interrupted in epoch (\d+) of 40; the last checkpoint is epoch (\d+); "
                         r"resume with python -m augkd\.train --resume (\S+)", message)
    assert match, message
    interrupted, checkpointed = int(match[1]), int(match[2])
    assert checkpointed >= 2 and interrupted in (checkpointed, checkpointed + 1)
    assert Path(match[3]) == out
    assert (out / "train.log").read_text().splitlines()[-1] == message  # the log says so too
    assert "teacher resnet8 epoch 1/40" in text  # a progress bar: stderr is a terminal
    # the run continues from its checkpoint (shortened through its folder, not its config:
    # the resumed run itself is what matters here)
    code, text = run_in_terminal(["augkd.train", "--resume", str(out)],
                                 interrupt_after=f"epoch {checkpointed + 1}/40  lr")
    assert code == 130 and f"resumed {out} after epoch {checkpointed}" in text, text


def test_ctrl_c_before_training_is_one_line(tmp_path):
    """Interrupted while loading: no run folder to name, still one line and 130."""
    from augkd.cli import run_cli

    def body():
        raise KeyboardInterrupt

    assert run_cli(body, rerun="rerun the same command to continue") == 130


# ------------------------------------------------------------------ 1. a student remembers its
# teacher's data
@pytest.fixture(scope="module")
def small_teacher(tmp_path_factory) -> Path:
    """A one-epoch teacher on 300 digits resized to 6 px."""
    out = tmp_path_factory.mktemp("small-teacher") / "teacher"
    assert train_main(["teacher", "--model", "resnet8", "--epochs", "1", "--device", "cpu",
                       *TINY, "--no-progress", "--out", str(out)]) == 0
    return out


def test_a_student_takes_its_teachers_data(small_teacher, tmp_path, capsys):
    capsys.readouterr()
    out = tmp_path / "student"
    assert train_main(["student", "--teacher", str(small_teacher), "--model", "resnet8",
                       "--epochs", "1", "--agb-lambda", "0.5", "--device", "cpu",
                       "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert f"data as the teacher's ({small_teacher}): dataset digits, resize 6, " \
           "train_subset 300" in said
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["data"]["dataset_options"] == {"resize": 6, "train_subset": 300}


def test_a_real_mismatch_names_the_options(small_teacher, tmp_path, capsys):
    code = train_main(["student", "--teacher", str(small_teacher), "--model", "resnet8",
                       "--epochs", "1", "--resize", "8", "--device", "cpu",
                       "--out", str(tmp_path / "student")])
    err = capsys.readouterr().err
    assert code == 2
    assert "other data (teacher: resize 6; this run: resize 8)" in err, err
    assert "checksum" not in err


def test_rank_takes_its_teachers_data(small_teacher, tmp_path, capsys):
    from augkd.rank import main as rank_main

    assert rank_main(["--teacher", str(small_teacher), "--augs", "flip", "--group-size", "2",
                      "--device", "cpu", "--no-progress", "--out", str(tmp_path / "rank")]) == 0
    assert "dataset digits, resize 6, train_subset 300" in capsys.readouterr().out


def _processes_mentioning(text: str) -> list[int]:
    """Pids of live processes whose command line holds ``text`` (a worker left running)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if text in cmdline:
                found.append(int(entry.name))
    return found


@pytest.mark.slow
def test_ctrl_c_stops_a_sweep_and_its_workers(tmp_path):
    spec = {
        "name": "ctrl-c", "dataset": {"name": "digits",
                                      "options": {"train_subset": 300, "resize": 6}},
        "pairs": [{"teacher": "resnet8", "student": "resnet8"}], "teacher": {"epochs": 1},
        "grid": {"aug": ["identity", "flip", "cutmix"], "epochs": [200], "seed": [0],
                 "balancer": ["manual"], "mode": ["per-batch"]},
        "tstddev": {"epochs": 2, "group_size": 4}, "device": "cpu",
    }
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    out = tmp_path / "sweep"
    code, text = run_in_terminal(["augkd.sweep", str(path), "--out", str(out), "--workers",
                                  "2", "--no-progress"], interrupt_after="epoch 2/200  lr")
    assert code == 130, text
    assert "Traceback" not in text, text
    assert text.strip().splitlines()[-1] == (
        "interrupted; the finished jobs are kept: rerun the same command to continue (a run "
        "cut short resumes from its checkpoint)")
    assert text.count("interrupted") == 1  # the workers print nothing of their own
    assert _processes_mentioning(str(out)) == []  # the workers stopped with it


# ------------------------------------------------------------------ 6. the Python API
def test_rank_augmentations_in_one_call(small_teacher, tmp_path):
    from augkd.ranking import Ranking, rank_augmentations

    lines: list[str] = []
    ranking = rank_augmentations(small_teacher, ["identity", "flip"], epochs=2, group_size=4,
                                 device="cpu", progress=False, out=str(tmp_path / "r"),
                                 log=lines.append)
    assert isinstance(ranking, Ranking) and ranking.folder == tmp_path / "r"
    assert sorted(ranking.table["aug"]) == ["flip", "identity"]
    assert ranking.recommended in ("flip", "identity")
    assert sum(len(tier) for tier in ranking.tiers) == 2
    assert any("data as the teacher's" in line for line in lines)  # its data, said in log
    text = repr(ranking)
    assert text.startswith("Ranking(2 DAs, per-image, 1 seed; recommended ") and "\n" not in text
    with pytest.raises(ValueError, match=r"unexpected option\(s\) epoch; expected RankConfig"):
        rank_augmentations(small_teacher, ["flip"], epoch=2)


def test_default_stands_for_the_nine_das():
    from augkd.augment import PAPER_DAS
    from augkd.ranking import expand_augs

    noise = "kornia:RandomGaussianNoise(std=0.05, p=1.0)"
    assert expand_augs(["default", noise]) == (*PAPER_DAS, noise)
    assert expand_augs(["flip", "default"]) == ("flip", *[a for a in PAPER_DAS if a != "flip"])


def test_results_have_compact_reprs():
    import torch

    from augkd.metrics import TStddevResult

    result = TStddevResult(value=0.0123456, group_means=torch.rand(44, 10, dtype=torch.float64),
                           n_groups=44, epochs=10, batch_size=64, seconds=3.21)
    assert repr(result) == ("TStddevResult(value=0.012346, n_groups=44, group_means=<torch."
                            "float64 [44, 10]>, epochs=10, batch_size=64, group_size=10, "
                            "seconds=3.2)")


# ------------------------------------------------------------------ 4. Weights & Biases
def test_wandb_logs_each_epoch_offline_and_resumes_the_same_run(tmp_path, monkeypatch):
    pytest.importorskip("wandb", reason="wandb is not installed (pip install 'augkd[wandb]')")
    from augkd.training.loggers import open_loggers
    from augkd.training.run import RunDir

    monkeypatch.setenv("WANDB_MODE", "offline")  # nothing reaches the network
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    out = tmp_path / "teacher"
    assert train_main(["teacher", "--model", "resnet8", "--epochs", "2", "--device", "cpu",
                       *TINY, "--no-progress", "--wandb", "--out", str(out)]) == 0
    run_id = (out / "wandb_id").read_text().strip()
    offline = list((out / "wandb").glob(f"offline-run-*-{run_id}"))
    assert len(offline) == 1
    (log,) = offline[0].glob("*.wandb")
    for name in (b"test_top1", b"train_top1", b"train_task", b"lr"):  # the records' fields
        assert name in log.read_bytes(), name
    # the same interface serves TensorBoard and W&B: a resumed logger keeps the W&B run id
    cfg = RunDir(out).read_config().replace(wandb=True)
    loggers = open_loggers(cfg, RunDir(out), last_epoch=2)
    assert [type(logger).__name__ for logger in loggers] == ["WandbRun"]
    assert loggers[0].run.id == run_id
    loggers[0].close()


def test_wandb_missing_is_one_line(monkeypatch, tmp_path, capsys):
    import augkd.extras

    real = augkd.extras.importlib.import_module

    def no_wandb(name, *args):
        if name == "wandb":
            raise ImportError("No module named 'wandb'")
        return real(name, *args)

    monkeypatch.setattr(augkd.extras.importlib, "import_module", no_wandb)
    code = train_main(["teacher", "--model", "resnet8", "--epochs", "1", "--wandb",
                       "--out", str(tmp_path / "t")])
    err = capsys.readouterr().err
    assert code == 2 and 'pip install "augkd[wandb]"' in err and not (tmp_path / "t").exists()


@pytest.mark.slow
def test_ctrl_c_stops_tune_and_its_workers(small_teacher, tmp_path):
    out = tmp_path / "tune"
    code, text = run_in_terminal(
        ["augkd.tune", "--teacher", str(small_teacher), "--model", "resnet8", "--device", "cpu",
         "--epochs", "200", "--trials", "4", "--workers", "2", "--no-progress",
         "--out", str(out)], interrupt_after="[trial ")
    assert code == 130, text
    assert "Traceback" not in text, text
    assert text.strip().splitlines()[-1] == (
        "interrupted; the finished trials are kept in the study: rerun the same command to "
        "continue (a trial cut short is retried)")
    assert _processes_mentioning(str(out)) == []


def test_epoch_line_of_a_fixed_record():
    from augkd.training.loggers import epoch_line

    record = {"epoch": 3, "lr": 0.05, "train_task": 0.5, "train_top1": 80.0, "test_loss": 0.6,
              "test_top1": 75.0, "epoch_time_s": 2.0, "train_images_per_s": 12345.6}
    assert epoch_line(record, 8) == ("epoch 3/8  lr 0.05  train loss 0.5000 top-1 80.00%  "
                                     "test loss 0.6000 top-1 75.00%  2.0 s (12,346 img/s)")
