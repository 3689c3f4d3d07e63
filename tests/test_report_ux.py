"""Reports as a researcher reads them: beside their results, the pair as given, the fit's sign,
no "± 0" for one seed, captions that say what the error bars are."""

from __future__ import annotations

import pandas as pd

from augkd.report import write_results
from augkd.report.cli import main
from augkd.report.render import fit_label


def _one_seed_results(folder):
    table = pd.DataFrame({"aug": ["identity", "flip", "cutmix"],
                          "t_stddev": [0.010, 0.012, 0.015],
                          "t_stddev_std": [0.0, 0.0, 0.0],
                          "s_test_loss": [1.1, 1.2, 1.3], "s_test_loss_std": [0.0, 0.0, 0.0],
                          "s_test_acc": [60.0, 59.0, 58.0], "n_seeds": [1, 1, 1]})
    write_results(folder, table, {"protocol": {"teacher": "resnet20", "student": "resnet8",
                                               "dataset": "digits"}})
    return folder


def test_the_report_goes_beside_its_results(tmp_path, monkeypatch, capsys):
    results = _one_seed_results(tmp_path / "runs" / "rank-digits")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main([str(results)]) == 0
    assert (results / "report" / "report.html").is_file()
    assert not (elsewhere / "reports").exists()
    assert f"wrote {results / 'report' / 'report.html'}" in capsys.readouterr().out
    assert main([str(results), "--out", str(tmp_path / "chosen")]) == 0
    assert (tmp_path / "chosen" / "report.md").is_file()


def test_one_seed_shows_no_zero_errors_and_says_why(tmp_path):
    results = _one_seed_results(tmp_path / "r")
    assert main([str(results)]) == 0
    md = (results / "report" / "report.md").read_text(encoding="utf-8")
    assert "± 0.0" not in md and "seed std" not in md
    assert "resnet20 → resnet8 · digits" in md
    assert "Scatter: No error bars: one seed per DA" in md
    assert "Ranking: No error bars: one seed and no standard error recorded." in md


def test_a_missing_student_is_left_out_of_the_header(tmp_path):
    table = pd.DataFrame({"aug": ["a", "b"], "t_stddev": [0.01, 0.02],
                          "t_stddev_se": [0.001, 0.001], "n_seeds": [1, 1]})
    write_results(tmp_path / "r", table, {"protocol": {"teacher": "resnet20", "student": None,
                                                       "dataset": "digits"}})
    assert main([str(tmp_path / "r")]) == 0
    md = (tmp_path / "r" / "report" / "report.md").read_text(encoding="utf-8")
    assert "None" not in md.split("###")[0] and "resnet20 · digits" in md
    assert "Error bars: ± one standard error of T. stddev, by bootstrap over the groups" in md


def test_the_fit_reads_with_its_sign():
    assert fit_label(1.853, -1.896) == \
        "least squares: S. test loss = 1.853 − 1.896 × T. stddev"
    assert fit_label(0.5, 2.0) == "least squares: S. test loss = 0.5 + 2 × T. stddev"
