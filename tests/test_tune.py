"""augkd.tune: Optuna searches of the distill weight on digits, killed, resumed and shared."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import torch

from augkd.training import TrainConfig, train
from augkd.training.run import RunDir
from augkd.tune import AnnealingSampler, TuneConfig, make_sampler, trial_config, tune
from augkd.tune.cli import main
from tests.helpers import FAST

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def teacher(tmp_path_factory, digits):
    out = tmp_path_factory.mktemp("tune-teacher") / "run"
    train(TrainConfig(role="teacher", model="resnet8", epochs=4, **FAST), out, data=digits,
          log=lambda s: None)
    return out


def student(teacher, **kw) -> TrainConfig:
    return TrainConfig(**{"role": "student", "model": "resnet8", "teacher": str(teacher),
                          "epochs": 1, **FAST, **kw})


def cli_args(teacher, out, *extra) -> list[str]:
    return ["--teacher", str(teacher), "--model", "resnet8", "--dataset", "digits",
            "--device", "cpu", "--no-progress", "--out", str(out), *extra]


def load(out: Path) -> optuna.Study:
    return optuna.load_study(study_name="augkd-tune", storage=f"sqlite:///{out / 'study.db'}")


def complete(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))


def test_a_tpe_study_runs_end_to_end_and_every_trial_is_a_run_folder(teacher, tmp_path):
    out = tmp_path / "tpe"
    spec = tmp_path / "tune.yaml"  # a spec: TrainConfig keys and the search under tune:
    spec.write_text("distill: pkt\nepochs: 1\ntune: {trials: 4, sampler: tpe}\n")
    assert main(cli_args(teacher, out, "--config", str(spec))) == 0
    trials = complete(load(out))
    assert len(trials) == 4
    summary = json.loads((out / "tune.json").read_text())
    best = max(trials, key=lambda t: t.value)
    assert summary["best_w_distill"] == pytest.approx(best.params["w_distill"])
    assert summary["best_holdout_top1"] == pytest.approx(best.value)
    assert summary["search_epochs"] == 4
    for t in trials:
        beta = t.params["w_distill"]
        assert 0.02 <= beta <= 30000
        run = RunDir(out / t.user_attrs["folder"])
        cfg = run.read_config()
        assert (cfg.balancer, cfg.distill, cfg.w_task, cfg.w_distill) == ("manual", "pkt", 1.0,
                                                                           pytest.approx(beta))
        run_summary = json.loads(run.summary.read_text())
        assert run_summary["evaluated_on"] == "holdout"
        assert run_summary["last"]["test_top1"] == pytest.approx(t.value)
    rows = (out / "trials.csv").read_text().splitlines()
    assert rows[0].startswith("number,state,w_distill") and len(rows) == 5


def test_the_search_never_reads_the_test_split(teacher, digits, tmp_path):
    settings = TuneConfig(trials=2, sampler="random")
    clean = tune(student(teacher), settings, tmp_path / "clean", data=digits, log=lambda s: None)
    poisoned = dataclasses.replace(
        digits, test_images=torch.zeros_like(digits.test_images),
        test_labels=(digits.test_labels + 1) % digits.num_classes)
    other = tune(student(teacher), settings, tmp_path / "poisoned", data=poisoned,
                 log=lambda s: None)
    scores = [[(r["w_distill"], r["holdout_top1"], r["holdout_loss"]) for r in res.trials]
              for res in (clean, other)]
    assert scores[0] == scores[1]
    # and the held-out part is the same 10 % that AGB's lambda search holds out
    assert json.loads((tmp_path / "clean" / "trials" / "trial-0000" / "summary.json")
                      .read_text())["evaluated_on"] == "holdout"


def test_the_final_run_trains_the_best_weight_on_the_test_protocol(teacher, digits, tmp_path):
    res = tune(student(teacher), TuneConfig(trials=2, sampler="random", final_epochs=2),
               tmp_path / "t", data=digits, log=lambda s: None)
    cfg = RunDir(tmp_path / "t" / "final").read_config()
    assert cfg.w_distill == pytest.approx(res.best_w_distill) and cfg.epochs == 2
    assert cfg.lr_decay_fractions != (1.0,)  # the full schedule, not the trials' constant lr
    assert json.loads((tmp_path / "t" / "final" / "summary.json").read_text())[
        "evaluated_on"] == "test"
    assert res.final["test_top1"] == pytest.approx(
        json.loads((tmp_path / "t" / "tune.json").read_text())["final"]["test_top1"])


def _spawn(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "augkd.tune", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _wait_for(cond, proc: subprocess.Popen, timeout: float = 240.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if proc.poll() is not None:
            raise AssertionError(f"tune exited early: {proc.stderr.read().decode()[-2000:]}")
        if time.monotonic() > end:
            proc.kill()
            raise AssertionError("timed out waiting for the search")
        time.sleep(0.05)


def test_a_killed_search_resumes_with_its_finished_trials_and_its_running_one(teacher,
                                                                           tmp_path):
    out = tmp_path / "killed"
    args = cli_args(teacher, out, "--epochs", "3", "--trials", "4", "--sampler", "tpe",
                    "--heartbeat", "1")
    proc = _spawn(args)
    third = out / "trials" / "trial-0002" / "metrics.jsonl"

    def mid_third_trial() -> bool:
        return third.is_file() and len(third.read_text().splitlines()) >= 1

    _wait_for(mid_third_trial, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = {t.number: (t.params, t.value) for t in complete(load(out))}
    assert sorted(before) == [0, 1]
    epochs_done = len(third.read_text().splitlines())
    assert epochs_done < 3  # killed inside the third trial
    time.sleep(2.5)  # past the grace period of the silent trial's heartbeat
    assert main(args) == 0
    study = load(out)
    after = complete(study)
    assert len(after) == 4
    assert {t.number: (t.params, t.value) for t in after if t.number in before} == before
    failed = study.get_trials(states=(optuna.trial.TrialState.FAIL,))
    assert [t.number for t in failed] == [2]
    retry = [t for t in after if t.params == failed[0].params and t.number > 2]
    assert len(retry) == 1 and retry[0].user_attrs["folder"] == "trials/trial-0002"
    epochs = [r["epoch"] for r in RunDir(third.parent).read_metrics()]
    assert epochs == [1, 2, 3]  # continued from its checkpoint, no epoch twice


def test_two_workers_on_one_sqlite_study_finish_distinct_trials(teacher, tmp_path):
    out = tmp_path / "two"
    assert main(cli_args(teacher, out, "--epochs", "2", "--trials", "4", "--sampler", "random",
                         "--workers", "2")) == 0
    trials = complete(load(out))
    assert len(trials) >= 4  # each worker stops once the study holds 4 finished trials
    folders = [t.user_attrs["folder"] for t in trials]
    assert len(set(folders)) == len(folders) == len({t.number for t in trials})
    assert {t.user_attrs["worker"] for t in trials} == {0, 1}
    assert len({t.params["w_distill"] for t in trials}) == len(trials)  # seeds differ per worker
    assert json.loads((out / "tune.json").read_text())["complete"] == len(trials)


def test_hyperband_prunes_on_the_per_epoch_held_out_score(teacher, digits, tmp_path):
    res = tune(student(teacher, epochs=3),
               TuneConfig(trials=6, sampler="random", pruner="hyperband"), tmp_path / "hb",
               data=digits, log=lambda s: None)
    study = load(tmp_path / "hb")
    for t in study.get_trials():
        metrics = RunDir(tmp_path / "hb" / t.user_attrs["folder"]).read_metrics()
        assert sorted(t.intermediate_values) == [r["epoch"] for r in metrics]
        assert [t.intermediate_values[r["epoch"]] for r in metrics] == pytest.approx(
            [r["test_top1"] for r in metrics])
        if t.state == optuna.trial.TrialState.PRUNED:
            assert len(metrics) < 3
    assert res.search_epochs == sum(len(t.intermediate_values) for t in study.get_trials())


def test_a_changed_search_is_refused_in_the_same_folder(teacher, digits, tmp_path):
    tune(student(teacher), TuneConfig(trials=1), tmp_path / "s", data=digits, log=lambda s: None)
    with pytest.raises(ValueError, match="other settings.*tune.sampler"):
        tune(student(teacher), TuneConfig(trials=2, sampler="random"), tmp_path / "s",
             data=digits, log=lambda s: None)
    # more trials of the same search continue it
    res = tune(student(teacher), TuneConfig(trials=2), tmp_path / "s", data=digits,
               log=lambda s: None)
    assert len(res.trials) == 2


@pytest.mark.parametrize("kw, word", [
    (dict(trials=0), "trials"), (dict(sampler="cmaes"), "sampler"), (dict(pruner="median"),
                                                                     "pruner"),
    (dict(beta_low=0), "beta_low"), (dict(beta_low=5, beta_high=1), "beta_high"),
    (dict(workers=0), "workers"), (dict(final_epochs=-1), "final_epochs"),
])
def test_bad_search_settings_name_the_field(kw, word):
    with pytest.raises(ValueError, match=word):
        TuneConfig(**kw)


def test_cli_errors_are_one_line(teacher, tmp_path, capsys):
    spec = tmp_path / "tune.yaml"
    spec.write_text("model: resnet8\nbalancer: agb\ntune: {trials: 2}\n")
    assert main(cli_args(teacher, tmp_path / "x", "--config", str(spec))) == 2
    assert "'balancer' does not apply to tuning trials" in capsys.readouterr().err
    spec.write_text("model: resnet8\ntune: {trails: 2}\n")
    assert main(cli_args(teacher, tmp_path / "x", "--config", str(spec))) == 2
    assert "unknown tune setting(s) 'trails'" in capsys.readouterr().err


def test_trial_config_is_the_manual_balancer_at_constant_lr(teacher):
    cfg = trial_config(student(teacher, distill="cc", epochs=5), TuneConfig(w_task=1.0), 7.5)
    assert (cfg.balancer, cfg.w_task, cfg.w_distill, cfg.agb_search) == ("manual", 1.0, 7.5,
                                                                         False)
    assert cfg.lr_milestones == [5]  # no decay inside the trial, like AGB's warm-ups


# ---- the simulated-annealing sampler -------------------------------------------------------

def _anneal_study(seed: int, n: int = 30, step: float = 0.25) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize",
                                sampler=AnnealingSampler(seed=seed, step=step))
    study.optimize(lambda t: -abs(math.log10(t.suggest_float("b", 0.02, 30000, log=True)) - 1),
                   n_trials=n)
    return study


def test_annealing_stays_in_bounds_and_repeats_for_a_seed():
    one, two = _anneal_study(3), _anneal_study(3)
    values = [t.params["b"] for t in one.trials]
    assert values == [t.params["b"] for t in two.trials]
    assert all(0.02 <= v <= 30000 for v in values)


def test_annealing_proposes_neighbours_in_log_space():
    # a flat objective accepts every move: the chain is a random walk of the given step, in
    # the unit cube of log(beta); 0.06 is six standard deviations of a 0.01 step
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize",
                                sampler=AnnealingSampler(seed=1, step=0.01))
    study.optimize(lambda t: 0.0 * t.suggest_float("b", 0.02, 30000, log=True), n_trials=25)
    unit = [math.log(t.params["b"] / 0.02) / math.log(30000 / 0.02) for t in study.trials]
    assert max(abs(b - a) for a, b in zip(unit, unit[1:], strict=False)) < 0.06


def test_a_better_trial_always_becomes_the_chain_s_point():
    sampler = AnnealingSampler(temperature=1e-9, seed=0)  # cold: only improvements accepted
    study = optuna.create_study(direction="maximize", sampler=sampler)
    for value in (1.0, 3.0, 2.0):
        study.enqueue_trial({"b": value})
        study.optimize(lambda t: t.suggest_float("b", 0.5, 5.0), n_trials=1)
    sampler._catch_up(study)
    assert sampler._current.params == {"b": 3.0}


def test_make_sampler_names_the_known_ones():
    assert isinstance(make_sampler("anneal", 0), AnnealingSampler)
    with pytest.raises(ValueError, match="known: tpe, random, anneal"):
        make_sampler("grid", 0)


def test_a_compute_budget_stops_the_search_at_that_many_epochs(teacher, digits, tmp_path):
    res = tune(student(teacher), TuneConfig(trials=10, sampler="random", max_epochs=3),
               tmp_path / "b", data=digits, log=lambda s: None)
    assert len(res.trials) == 3 and res.search_epochs == 3
