"""The sweep runner: spec validation, grid expansion, shards, kill and restart."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from augkd.sweep import SpecError, SweepRunner, load_spec, main, parse_shard
from tests.helpers import write_changed_spec

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "experiments" / "digits_smoke.yaml"


def write_spec(tmp_path: Path, **changes) -> Path:
    spec = yaml.safe_load(SMOKE.read_text())
    return write_changed_spec(spec, tmp_path, **changes)


def test_shipped_specs_validate_and_expand():
    paper = load_spec(REPO / "experiments" / "paper_cifar10.yaml")
    kinds = [j.kind for j in paper.jobs()]
    # 2 pairs x 9 DAs x 1 epochs x 3 seeds x 2 balancers x 1 mode students
    assert kinds.count("student") == 2 * 9 * 3 * 2
    assert kinds.count("teacher") == 2
    assert kinds.count("tstddev") == 2 * 9 * 1 * 3  # per batch, as the students
    long = load_spec(REPO / "experiments" / "long_epochs.yaml")
    epochs = sorted({j.epochs for j in long.jobs() if j.kind == "student"})
    assert epochs == [240, 480, 960]
    short = load_spec(REPO / "experiments" / "paper_cifar10.yaml",
                      ["grid.epochs=[30]", "teacher.epochs=60"])
    assert {j.epochs for j in short.jobs() if j.kind == "student"} == {30}
    assert short.spec["teacher"]["epochs"] == 60


@pytest.mark.parametrize("count", [1, 2, 3, 7])
def test_shards_cover_every_job_exactly_once(count):
    sweep = load_spec(REPO / "experiments" / "paper_cifar10.yaml")
    keys = [j.key for i in range(count) for j in sweep.shard(i, count)]
    all_work = [j.key for j in sweep.jobs() if j.kind != "teacher"]
    assert sorted(keys) == sorted(all_work)
    assert len(set(keys)) == len(keys)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"grid__aug": ["identity", "cutmx"]}, "cutmx"),
        ({"grid__colour": [1]}, "colour"),
        ({"pairs": [{"teacher": "resnet999", "student": "resnet8"}]}, "resnet999"),
        ({"grid__epochs": []}, "grid.epochs"),
        ({"grid__seed": ["zero"]}, "grid.seed"),
        ({"grid__balancer": ["magic"]}, "magic"),
        ({"grid__balancer": ["gradnorm(alpah=1)"]}, "alpah"),
        ({"student": {"aug": "cutmix"}}, "aug"),
        ({"tstddev__modes": ["sideways"]}, "sideways"),
        ({"dataset": "mnist"}, "mnist"),
    ],
)
def test_spec_errors_name_the_problem(tmp_path, changes, message):
    with pytest.raises(SpecError, match=message):
        load_spec(write_spec(tmp_path, **changes))


def test_bad_shard_and_missing_spec(tmp_path):
    with pytest.raises(SpecError, match="I/N"):
        parse_shard("2")
    with pytest.raises(SpecError, match="0 <= I < N"):
        parse_shard("3/3")
    assert main([str(tmp_path / "nope.yaml")]) == 2


def test_dry_run_lists_jobs(tmp_path, capsys):
    assert main([str(SMOKE), "--out", str(tmp_path / "s"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.count("todo  students/") == 4 and out.count("todo  tstddev/") == 2


@pytest.mark.slow
def test_killed_sweep_restarts_and_matches_an_uninterrupted_one(tmp_path, monkeypatch):
    spec = str(SMOKE)
    assert main([spec, "--out", str(tmp_path / "full"), "--no-progress"]) == 0
    full = pd.read_csv(tmp_path / "full" / "results.csv")
    assert len(full) == 4  # 2 DAs x 2 epoch budgets
    assert full["t_stddev_per-image"].notna().all()
    report_dirs = list((tmp_path / "full" / "results").iterdir())
    assert len(report_dirs) == 2 and (report_dirs[0] / "results.csv").is_file()

    original = SweepRunner._run_student
    calls = {"n": 0}

    def killed_after_first(self, job):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return original(self, job)

    monkeypatch.setattr(SweepRunner, "_run_student", killed_after_first)
    # Ctrl-C: the command stops with one line and exit status 130 (tests/test_run_ux.py)
    assert main([spec, "--out", str(tmp_path / "killed"), "--no-progress"]) == 130
    monkeypatch.setattr(SweepRunner, "_run_student", original)

    ran = []
    monkeypatch.setattr(SweepRunner, "_run_student",
                        lambda self, job: (ran.append(job.key), original(self, job))[1])
    assert main([spec, "--out", str(tmp_path / "killed"), "--no-progress"]) == 0
    assert len(ran) == 3  # the first student run was skipped
    again = pd.read_csv(tmp_path / "killed" / "results.csv")
    cols = ["aug", "epochs", "last_test_loss", "last_test_acc", "t_stddev_per-image"]
    pd.testing.assert_frame_equal(full[cols], again[cols])


def test_a_pair_can_reuse_a_teacher_trained_elsewhere(tmp_path):
    from augkd.training import TrainConfig, train

    teacher = train(TrainConfig(role="teacher", model="resnet8", epochs=1, progress=False,
                                device="cpu"), tmp_path / "mine", log=lambda s: None).run_dir
    spec = write_spec(tmp_path, pairs=[{"teacher": "resnet8", "student": "resnet8",
                                        "teacher_run": str(teacher)}],
                      grid__aug=["identity"], grid__epochs=[1])
    assert main([str(spec), "--out", str(tmp_path / "sweep"), "--no-progress"]) == 0
    assert not (tmp_path / "sweep" / "teachers").exists()  # nothing trained again
    table = pd.read_csv(tmp_path / "sweep" / "results.csv")
    assert len(table) == 1 and table["last_test_acc"].iloc[0] > 10.0


def test_bad_student_or_teacher_settings_fail_before_anything_runs(tmp_path):
    with pytest.raises(SpecError, match="batch_size"):
        load_spec(write_spec(tmp_path, student={"batch_size": "x"}))
    with pytest.raises(SpecError, match="lr"):
        load_spec(write_spec(tmp_path, teacher={"epochs": 1, "lr": "fast"}))
    with pytest.raises(SpecError, match="tstddev"):
        load_spec(write_spec(tmp_path, tstddev=5))


def test_a_lock_left_by_a_killed_sweep_does_not_block_the_restart(tmp_path):
    spec = write_spec(tmp_path, grid__aug=["identity"], grid__epochs=[1], teacher__epochs=1)
    out = tmp_path / "sweep"
    (out / "teachers").mkdir(parents=True)
    (out / "teachers" / "resnet20.lock").write_text("12345")  # its holder is long gone
    assert main([str(spec), "--out", str(out), "--no-progress"]) == 0
    assert (out / "teachers" / "resnet20" / "model.pt").is_file()


def test_changed_settings_on_a_finished_sweep_are_refused(tmp_path, capsys):
    spec = write_spec(tmp_path, grid__aug=["identity"], grid__epochs=[1], teacher__epochs=1)
    out = str(tmp_path / "sweep")
    assert main([str(spec), "--out", out, "--no-progress"]) == 0
    assert main([str(spec), "--out", out, "--dry-run"]) == 0  # same settings: all done
    assert "todo" not in capsys.readouterr().out
    for change, field in (("teacher.epochs=2", "epochs"), ("tstddev.epochs=2", "epochs"),
                          ("student.temperature=2.0", "temperature")):
        assert main([str(spec), "--out", out, "--set", change, "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert "other settings" in err and field in err, err


@pytest.mark.slow
def test_two_workers_run_every_job_once_with_the_results_of_one(tmp_path, capfd):
    """--workers 2: each job claimed by exactly one process; results equal one worker's."""
    spec = {
        "name": "workers", "dataset": {"name": "digits", "options": {"train_subset": 300}},
        "pairs": [{"teacher": "resnet8", "student": "resnet8"}], "teacher": {"epochs": 1},
        "grid": {"aug": ["identity", "flip", "cutmix"], "epochs": [1], "seed": [0, 1],
                 "balancer": ["manual"], "mode": ["per-batch"]},
        "tstddev": {"epochs": 2, "group_size": 4}, "device": "cpu",
    }
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    assert main([str(path), "--out", str(tmp_path / "one"), "--no-progress"]) == 0
    capfd.readouterr()
    assert main([str(path), "--out", str(tmp_path / "two"), "--no-progress",
                 "--workers", "2"]) == 0
    out = capfd.readouterr().out
    # "[worker I] [k/n] KEY" when a worker starts a job
    keys = [line.split("] ", 2)[2] for line in out.splitlines()
            if line.startswith("[worker ") and " done in " not in line
            and "] [" in line and ("tstddev/" in line or "students/" in line)]
    jobs = [j.key for j in load_spec(path, [f"out={tmp_path / 'two'}"]).jobs()
            if j.kind != "teacher"]
    assert sorted(keys) == sorted(jobs)  # every job, each exactly once
    assert {line[len("[worker "):].split("]")[0] for line in out.splitlines()
            if line.startswith("[worker ")} == {"0", "1"}  # both took part
    cols = ["aug", "seed", "last_test_loss", "last_test_acc", "t_stddev_per-batch"]
    one = pd.read_csv(tmp_path / "one" / "results.csv")[cols]
    two = pd.read_csv(tmp_path / "two" / "results.csv")[cols]
    pd.testing.assert_frame_equal(one, two, rtol=1e-4)


def test_workers_must_be_positive(tmp_path, capsys):
    assert main([str(SMOKE), "--out", str(tmp_path / "w"), "--workers", "0"]) != 0
    assert "--workers must be an integer >= 1, got 0" in capsys.readouterr().err


def test_a_grid_balancer_spec_reaches_the_student_and_names_its_folder(tmp_path):
    from augkd.sweep.spec import student_config

    sweep = load_spec(write_spec(tmp_path, grid__balancer=["manual", "gradnorm(alpha=1.0)"]))
    students = [j for j in sweep.jobs() if j.kind == "student"]
    keys = {j.key.split("/")[-1].split("-")[0] for j in students}
    assert keys == {"manual", "gradnorm_alpha_1.0_"}  # a plain name keeps its old folder
    job = next(j for j in students if j.balancer != "manual")
    cfg = student_config(sweep.spec, job, teacher="t")
    assert cfg.balancer_options() == {"alpha": 1.0}


def test_grid_optimizer_and_schedule_reach_the_student_and_name_its_folder(tmp_path):
    """The optimization family is a grid axis like the balancer: a default value keeps the
    folder names of sweeps from before the axis; another is written into the name."""
    from augkd.sweep.spec import student_config

    sweep = load_spec(write_spec(tmp_path, grid__optimizer=["sgd", "adamw(beta2=0.99)"],
                                 grid__schedule=["multistep", "cosine(warmup=1)"],
                                 grid__epochs=[2]))
    students = [j for j in sweep.jobs() if j.kind == "student"]
    names = {j.key.split("/")[-1].rsplit("-per", 1)[0] for j in students}
    assert names == {"manual", "adamw_beta2_0.99_-manual", "cosine_warmup_1_-manual",
                     "adamw_beta2_0.99_-cosine_warmup_1_-manual"}
    job = next(j for j in students if j.optimizer != "sgd" and j.schedule != "multistep")
    cfg = student_config(sweep.spec, job, teacher="t")
    assert (cfg.optimizer, cfg.schedule) == ("adamw(beta2=0.99)", "cosine(warmup=1)")
    with pytest.raises(SpecError, match=r"grid\.schedule: cosine: bad value warmup=5"):
        load_spec(write_spec(tmp_path, grid__schedule=["cosine(warmup=5)"], grid__epochs=[2]))


def test_a_sweep_folder_from_before_the_optimizer_axes_still_belongs_to_its_spec(tmp_path):
    """A folder's spec.yaml written before grid.optimizer / grid.schedule existed reads as
    having their defaults: the same spec continues there; a new value adds to it."""
    sweep = load_spec(write_spec(tmp_path, out=str(tmp_path / "sweep")))
    runner = SweepRunner(sweep)
    old = dict(sweep.spec, grid={k: v for k, v in sweep.spec["grid"].items()
                                 if k not in ("optimizer", "schedule")})
    sweep.out.mkdir(parents=True)
    (sweep.out / "spec.yaml").write_text(yaml.safe_dump(old))
    runner.check_folder()
    more = load_spec(write_spec(tmp_path, grid__schedule=["multistep", "constant"],
                                out=str(sweep.out)))
    SweepRunner(more).check_folder()
