"""``--launcher``: the shards of a sweep as one submitit job array (local; a stand-in sbatch)."""

from __future__ import annotations

import dataclasses
import os
import pickle
import re
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from augkd.sweep import load_spec, main
from augkd.sweep.launch import ShardTask, parse_slurm_time
from augkd.sweep.runner import ShardWork
from augkd.sweep.spec import SpecError

pytest.importorskip("submitit")

TINY = {
    "name": "launch", "dataset": {"name": "digits", "options": {"train_subset": 300}},
    "pairs": [{"teacher": "resnet8", "student": "resnet8"}], "teacher": {"epochs": 1},
    "grid": {"aug": ["identity", "flip", "cutmix"], "epochs": [1], "seed": [0],
             "balancer": ["manual"], "mode": ["per-batch"]},
    "tstddev": {"modes": []}, "device": "cpu",
}


def tiny_spec(tmp_path: Path) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(TINY))
    return path


def task_logs(out: Path) -> str:
    """Every array task's stdout, concatenated."""
    return "".join(p.read_text() for p in sorted((out / "slurm").glob("*/*_log.out")))


@pytest.mark.slow
def test_local_array_runs_every_job_once_with_the_results_of_one_process(tmp_path, capfd):
    spec = str(tiny_spec(tmp_path))
    assert main([spec, "--out", str(tmp_path / "one"), "--no-progress"]) == 0
    capfd.readouterr()
    out = tmp_path / "array"
    assert main([spec, "--out", str(out), "--no-progress", "--launcher", "local",
                 "--max-parallel", "2"]) == 0
    said = capfd.readouterr().out
    assert "submitted 2 local task(s), shards 0/2, 1/2" in said
    logs = task_logs(out)
    # "[worker I] [k/n] KEY" when the task of shard I starts a job
    started = re.findall(r"^\[worker (\d)\] \[\d+/\d+\] (students/\S+)$", logs, re.M)
    jobs = [j.key for j in load_spec(spec, [f"out={out}"]).jobs() if j.kind == "student"]
    assert sorted(key for _, key in started) == sorted(jobs)  # every job, each exactly once
    assert {shard for shard, _ in started} == {"0", "1"}  # both tasks took part
    assert logs.count("teacher resnet8: test top-1") == 1  # the shared teacher, trained once
    cols = ["aug", "seed", "last_test_loss", "last_test_acc"]
    one = pd.read_csv(tmp_path / "one" / "results.csv")[cols]
    array = pd.read_csv(out / "results.csv")[cols]
    pd.testing.assert_frame_equal(one, array, rtol=1e-4)

    # the same command again: every shard is finished, nothing is submitted
    assert main([spec, "--out", str(out), "--no-progress", "--launcher", "local",
                 "--max-parallel", "2"]) == 0
    assert "every job is done, nothing to submit" in capfd.readouterr().out
    assert len(list((out / "slurm").glob("*/*_log.out"))) == 2


@pytest.mark.slow
def test_a_failed_task_is_named_with_its_log(tmp_path, capfd):
    spec = dict(TINY, pairs=[{"teacher": "resnet8", "student": "resnet8",
                              "teacher_run": str(tmp_path / "no-such-teacher")}])
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    out = tmp_path / "sweep"
    with pytest.raises(RuntimeError, match=r"1 of 1 sweep task\(s\) failed: shard 0/1, log "):
        main([str(path), "--out", str(out), "--no-progress", "--launcher", "local",
              "--max-parallel", "1"])
    errors = "".join(p.read_text() for p in (out / "slurm").glob("*/*_log.err"))
    assert "no-such-teacher" in errors  # the task's own error, in its log


def fake_sbatch(tmp_path: Path, monkeypatch) -> Path:
    """An ``sbatch`` on PATH that keeps the script it is given and answers with a job id."""
    bin_dir, kept = tmp_path / "bin", tmp_path / "sbatch-script.sh"
    bin_dir.mkdir()
    sbatch = bin_dir / "sbatch"
    sbatch.write_text(f'#!/bin/sh\ncp "$1" {kept}\necho "Submitted batch job 4242"\n')
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 1\n")  # submitit looks for it on PATH
    for tool in ("sbatch", "srun"):
        (bin_dir / tool).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    return kept


def test_slurm_submits_one_array_with_the_flags(tmp_path, monkeypatch, capsys):
    kept = fake_sbatch(tmp_path, monkeypatch)
    out = tmp_path / "sweep"
    assert main([str(tiny_spec(tmp_path)), "--out", str(out), "--launcher", "slurm",
                 "--slurm-partition", "gpu", "--slurm-time", "1-12:00:00", "--max-parallel", "2",
                 "--shards", "3", "--slurm-cpus-per-task", "4", "--slurm-mem", "16G",
                 "--slurm-option", "account=kd", "exclusive", "--no-wait"]) == 0
    said = capsys.readouterr().out
    assert "4242_0 4242_1 4242_2" in said and "--collect" in said
    assert not (out / "results.csv").exists()  # --no-wait: nothing collected yet
    script = kept.read_text()
    for line in ("--array=0-2%2", "--partition=gpu", "--time=2160", "--gpus-per-task=1",
                 "--cpus-per-task=4", "--mem=16G", "--account=kd", "--exclusive",
                 "--job-name=augkd-launch", f"--output={out / 'slurm'}/%A_%a/%A_%a_0_log.out"):
        assert f"#SBATCH {line}\n" in script, line
    assert "--nodes=1" in script and "--ntasks-per-node=1" in script


@pytest.mark.parametrize("flags, message", [
    (["--slurm-partition", "gpu"], "--slurm-partition gpu applies to --launcher slurm only "
                                   "(got no --launcher)"),
    (["--launcher", "local", "--max-parallel", "2", "--slurm-time", "60"],
     "--slurm-time 60 applies to --launcher slurm only (got --launcher local)"),
    (["--max-parallel", "2"], "--max-parallel 2 applies to --launcher local or slurm only"),
    (["--max-parallel", "0"], "--max-parallel 0 applies to --launcher local or slurm only"),
    (["--slurm-gpus-per-task", "0"], "--slurm-gpus-per-task 0 applies to --launcher slurm only"),
    (["--no-wait"], "--no-wait applies to --launcher local or slurm only"),
    (["--launcher", "local", "--max-parallel", "0"], "--max-parallel must be an integer >= 1, "
                                                     "got 0"),
    (["--launcher", "local", "--max-parallel", "2", "--shards", "-1"],
     "--shards must be an integer >= 1, got -1"),
    (["--launcher", "local"], "--launcher local needs --max-parallel N"),
    (["--launcher", "local", "--max-parallel", "2", "--shards", "4"],
     "--shards 4 > --max-parallel 2"),
    (["--launcher", "slurm", "--max-parallel", "2"], "--launcher slurm needs --slurm-time"),
    (["--launcher", "slurm", "--max-parallel", "2", "--slurm-time", "soon"],
     "--slurm-time must look like MINUTES, HH:MM:SS or D-HH:MM:SS, got 'soon'"),
    (["--launcher", "slurm", "--max-parallel", "2", "--slurm-time", "60", "--slurm-mem", "lots"],
     "--slurm-mem must be a size such as 32G"),
    (["--launcher", "slurm", "--max-parallel", "2", "--slurm-time", "60",
      "--slurm-gpus-per-task", "-1"], "--slurm-gpus-per-task must be an integer >= 0, got -1"),
    (["--launcher", "slurm", "--max-parallel", "2", "--slurm-time", "60",
      "--slurm-option", "time=5"], "augkd sets sbatch --time itself"),
    (["--launcher", "slurm", "--max-parallel", "2", "--slurm-time", "60",
      "--slurm-option", "=x"], "--slurm-option must look like KEY=VALUE"),
    (["--launcher", "local", "--max-parallel", "2", "--workers", "2"],
     "--workers 2 runs processes on this machine"),
    (["--launcher", "local", "--max-parallel", "2", "--shard", "0/2"],
     "--shard 0/2: --launcher local makes the shards itself"),
    (["--launcher", "local", "--max-parallel", "2", "--collect"], "--collect only gathers"),
    (["--launcher", "local", "--max-parallel", "2", "--teachers-only"],
     "--teachers-only with --launcher local would train every teacher in every task"),
])
def test_bad_launcher_flags_name_the_value(tmp_path, capsys, flags, message):
    assert main([str(tiny_spec(tmp_path)), "--out", str(tmp_path / "s"), *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err, err
    assert not (tmp_path / "s").exists()  # nothing ran, nothing was submitted


def test_slurm_without_sbatch_says_where_to_submit_from(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch, no srun
    assert main([str(tiny_spec(tmp_path)), "--out", str(tmp_path / "s"), "--launcher", "slurm",
                 "--slurm-time", "60", "--max-parallel", "2"]) == 2
    assert "sbatch and srun not found on PATH" in capsys.readouterr().err


def test_dry_run_says_what_would_be_submitted(tmp_path, capsys):
    assert main([str(tiny_spec(tmp_path)), "--out", str(tmp_path / "s"), "--dry-run",
                 "--launcher", "local", "--max-parallel", "2"]) == 0
    out = capsys.readouterr().out
    assert out.count("todo  students/") == 3
    assert "--launcher local would submit 2 of 2 shards" in out


def test_a_shard_task_runs_its_command_in_its_folder_and_environment(tmp_path, monkeypatch,
                                                                     capsys):
    tiny_spec(tmp_path)
    monkeypatch.chdir("/")  # each of these is restored after the test
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # what LocalExecutor gives a task by default
    monkeypatch.setenv("AUGKD_TEST_UNSET_ME", "x")
    ran = []
    monkeypatch.setattr(ShardWork, "run", lambda self, log: ran.append(
        (self, Path.cwd(), os.environ["CUDA_VISIBLE_DEVICES"],
         "AUGKD_TEST_UNSET_ME" in os.environ)))
    work = ShardWork("spec.yaml", ("out=s",), 1, 2)
    task = ShardTask(work, str(tmp_path),
                     (("CUDA_VISIBLE_DEVICES", "3"), ("AUGKD_TEST_UNSET_ME", None)))
    task()
    # the spec's relative paths mean what they meant at submission; the environment is set
    assert ran == [(work, tmp_path, "3", False)]
    assert task.checkpoint().function is task  # a timed-out task requeues itself
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SpecError, match="no-such-spec.yaml"):  # raised as it is, for the log
        ShardTask(ShardWork("no-such-spec.yaml"), str(tmp_path))()


def test_a_shard_work_runs_the_jobs_of_its_shard(tmp_path, monkeypatch):
    tiny_spec(tmp_path)
    monkeypatch.chdir(tmp_path)
    work = ShardWork("spec.yaml", ("out=s",))
    sweep = work.sweep()
    students = [j for j in sweep.jobs() if j.kind == "student"]
    shards = [work.of_shard(i, 2).jobs(sweep) for i in range(2)]
    assert sorted(j.key for s in shards for j in s) == sorted(
        j.key for j in sweep.jobs() if j.kind != "teacher")  # each job in exactly one shard
    assert not set(map(str, shards[0])) & set(map(str, shards[1]))
    only = dataclasses.replace(work, students_only=True).jobs(sweep)
    assert only == students
    assert {j.kind for j in dataclasses.replace(work, teachers_only=True).jobs(sweep)} == {
        "teacher"}
    assert pickle.loads(pickle.dumps(ShardTask(work, "/"))).work == work  # submitit pickles it


@pytest.mark.parametrize("text, minutes", [
    ("90", 90), ("90:30", 91), ("12:00:00", 720), ("1-0", 1440), ("2-06:30", 3270),
    ("0-00:00:01", 1),
])
def test_slurm_time_formats(text, minutes):
    assert parse_slurm_time(text) == minutes


@pytest.mark.parametrize("text", ["", "1h", "0", "1:2:3:4", "-5"])
def test_bad_slurm_times_are_refused(text):
    with pytest.raises(SpecError, match="--slurm-time"):
        parse_slurm_time(text)


def test_a_missing_submitit_names_the_extra(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "submitit", None)  # import submitit -> ImportError
    assert main([str(tiny_spec(tmp_path)), "--out", str(tmp_path / "s"), "--launcher", "local",
                 "--max-parallel", "2"]) == 2
    assert 'pip install "augkd[slurm]"' in capsys.readouterr().err
