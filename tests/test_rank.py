"""``python -m augkd.rank`` end to end on digits in quick configurations."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from augkd.augment import PAPER_DAS
from augkd.rank import main

QUICK = ["--teacher-epochs", "3", "--epochs", "1", "--no-progress"]


@pytest.fixture(scope="module")
def ranked(tmp_path_factory):
    out = tmp_path_factory.mktemp("rank") / "default"
    assert main(QUICK + ["--out", str(out)]) == 0
    return out


def test_rank_writes_one_row_per_da_best_first(ranked, capsys):
    table = pd.read_csv(ranked / "results.csv")
    assert sorted(table["aug"]) == sorted(PAPER_DAS)
    assert list(table["t_stddev"]) == sorted(table["t_stddev"])  # lowest (best) first
    assert list(table["rank"]) == list(range(1, 10))
    assert (table["t_stddev"] > 0).all() and (table["n_seeds"] == 1).all()
    summary = json.loads((ranked / "summary.json").read_text())
    assert summary["format"] == "augkd-results/1"
    assert summary["protocol"]["dataset"] == "digits"
    assert summary["protocol"]["mode"] == "per-image"
    assert "pearson" not in summary  # no students were trained
    assert len(list((ranked / "tstddev").glob("*.pt"))) == 9


def test_second_run_reuses_the_cached_teacher(ranked, tmp_path, capsys):
    assert main(QUICK + ["--out", str(tmp_path / "again"), "--augs", "identity", "cutmix"]) == 0
    out = capsys.readouterr().out
    assert "using the cached resnet20 teacher" in out
    assert "ranking (per-image" in out


def test_validate_adds_students_and_correlations(tmp_path):
    out = tmp_path / "validated"
    argv = QUICK + ["--out", str(out), "--augs", "identity", "mixup", "cutmix",
                    "--validate", "--student-epochs", "1", "--seeds", "2",
                    "--report-dir", str(tmp_path / "reports")]
    assert main(argv) == 0
    table = pd.read_csv(out / "results.csv")
    assert len(table) == 3 and (table["n_seeds"] == 2).all()
    for col in ("s_test_loss", "s_test_acc", "s_test_loss_std", "t_stddev_std"):
        assert table[col].notna().all(), col
    summary = json.loads((out / "summary.json").read_text())
    for name in ("pearson", "spearman", "kendall"):
        assert -1 <= summary[name]["r"] <= 1 and 0 <= summary[name]["p"] <= 1
    assert len(list((out / "students").iterdir())) == 6
    html = (tmp_path / "reports" / out.name / "report.html").read_text()
    assert "data:image/png;base64," in html


def test_both_modes_write_two_folders(tmp_path):
    out = tmp_path / "modes"
    assert main(QUICK + ["--out", str(out), "--augs", "flip", "cutout", "--both-modes"]) == 0
    for mode in ("per-image", "per-batch"):
        summary = json.loads((out / mode / "summary.json").read_text())
        assert summary["protocol"]["mode"] == mode


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--augs", "identity", "cutmx"], "cutmx"),
        (["--teacher", "missing/run"], "missing/run"),
        (["--student", "resnet999"], "resnet999"),
        (["--epochs", "0"], "--epochs"),
        (["--tstddev-subset", "0"], "--tstddev-subset"),
    ],
)
def test_bad_input_is_one_clear_line(argv, message, capsys):
    assert main(QUICK + argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and message in err and "\n" not in err


def test_tstddev_on_a_class_stratified_subset_per_seed(digits_teacher, tmp_path):
    """--tstddev-subset N: each seed measures on its own stratified subset of N images (so the
    seed spread includes the subset's): 200 images at batch 20, 1 epoch, 2 views per batch,
    groups of 2 -> 10 groups per run; the protocol records N; a subset larger than the
    training split is refused naming both."""
    out = tmp_path / "rank"
    assert main(["--teacher", str(digits_teacher), "--augs", "flip", "--epochs", "1",
                 "--batch-size", "20", "--group-size", "2", "--seeds", "2",
                 "--tstddev-subset", "200", "--device", "cpu", "--no-progress",
                 "--out", str(out)]) == 0
    per_seed = pd.read_csv(out / "per_seed.csv")
    assert per_seed["n_groups"].tolist() == [10, 10]
    assert per_seed["t_stddev"].nunique() == 2  # two subsets, two draws
    assert json.loads((out / "summary.json").read_text())["protocol"]["tstddev_subset"] == 200
    assert main(["--teacher", str(digits_teacher), "--augs", "flip", "--tstddev-subset",
                 "100000", "--device", "cpu", "--no-progress", "--out", str(tmp_path / "x")]) == 2
