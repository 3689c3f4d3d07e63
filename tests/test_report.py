"""Tests of augkd.report: the results-folder format and the report CLI."""

from __future__ import annotations

import base64
import json
import re

import numpy as np
import pandas as pd
import pytest

from augkd.metrics import correlations
from augkd.report import FORMAT, ResultsError, load_results, write_results
from augkd.report.__main__ import main

AUGS = ["identity", "flip", "crop+flip", "cutout", "autoaugment", "mixup", "cutmix",
        "cutmixpick-s", "cutmixpick-t"]
T_STDDEV = np.array([5.473, 5.45, 5.30, 5.10, 4.95, 4.85, 4.719, 4.30, 4.154]) * 1e-3
S_LOSS = np.array([1.098, 1.101, 1.08, 1.06, 1.05, 1.04, 1.028, 0.99, 0.975])
PROTOCOL = {"dataset": "cifar100", "teacher": "wrn_40_2", "student": "wrn_16_2", "epochs": 240,
            "seeds": [0, 1, 2], "mode": "paper"}


def student_table() -> pd.DataFrame:
    return pd.DataFrame({
        "rank": np.arange(9, 0, -1),  # as augkd.rank writes it; the report recomputes it
        "aug": AUGS,
        "t_stddev": T_STDDEV,
        "t_stddev_std": T_STDDEV * 0.01,
        "s_test_loss": S_LOSS,
        "s_test_loss_std": [0.01] * 8 + [np.nan],
        "s_test_acc": np.linspace(74.0, 76.0, 9),
        "s_test_acc_std": [0.2] * 9,
        "n_seeds": [3] * 9,
    })


@pytest.fixture
def with_student(tmp_path):
    folder = tmp_path / "wrn_40_2-wrn_16_2"
    summary = {"protocol": PROTOCOL, **correlations(T_STDDEV, S_LOSS, n_boot=200)}
    write_results(folder, student_table(), summary)
    return folder


@pytest.fixture
def teacher_only(tmp_path):
    folder = tmp_path / "teacher-only"
    write_results(folder, student_table()[["aug", "t_stddev"]], {"protocol": {"teacher": "r56"}})
    return folder


def embedded_pngs(html: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([^"]+)"', html)]


# --------------------------------------------------------------------------------------------
# The results-folder format


def test_write_then_load_round_trips(with_student) -> None:
    res = load_results(with_student)
    pd.testing.assert_frame_equal(res.table, student_table(), check_dtype=False)
    assert res.table["t_stddev"].tolist() == T_STDDEV.tolist()  # full precision kept
    assert res.summary["format"] == FORMAT and res.protocol == PROTOCOL
    assert res.has_student and set(res.correlations) == {"pearson", "spearman", "kendall"}
    assert res.name == "wrn_40_2-wrn_16_2"
    assert not list(with_student.glob("*.tmp"))  # atomic writes leave no temporaries


def test_nan_in_summary_is_written_as_null(tmp_path) -> None:
    write_results(tmp_path / "r", student_table(), {"protocol": {}, "extra": float("nan")})
    assert json.loads((tmp_path / "r" / "summary.json").read_text())["extra"] is None


def test_write_rejects_a_foreign_format_and_missing_columns(tmp_path) -> None:
    with pytest.raises(ResultsError, match="format"):
        write_results(tmp_path / "a", student_table(), {"format": "other/2"})
    with pytest.raises(ResultsError, match="t_stddev"):
        write_results(tmp_path / "b", student_table()[["aug"]], {})


def test_teacher_only_folder_has_no_student(teacher_only) -> None:
    res = load_results(teacher_only)
    assert not res.has_student and res.correlations == {}


def test_load_errors_on_folders(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_results(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ResultsError, match="is empty"):
        load_results(tmp_path / "empty")
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "notes.txt").write_text("x")
    with pytest.raises(ResultsError, match=r"not an augkd results folder.*notes\.txt"):
        load_results(tmp_path / "foreign")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ResultsError, match="not a folder"):
        load_results(tmp_path / "file")


def test_load_errors_on_contents(with_student) -> None:
    summary_path, table_path = with_student / "summary.json", with_student / "results.csv"
    good_summary, good_table = summary_path.read_text(), table_path.read_text()

    summary_path.write_text(json.dumps({"format": "augkd-results/0"}))
    with pytest.raises(ResultsError, match="augkd-results/0"):
        load_results(with_student)
    summary_path.write_text("{not json")
    with pytest.raises(ResultsError, match="not valid JSON"):
        load_results(with_student)
    summary_path.write_text(good_summary)

    student_table().drop(columns="t_stddev").to_csv(table_path, index=False)
    with pytest.raises(ResultsError, match="lacks column.*t_stddev"):
        load_results(with_student)
    table_path.unlink()
    with pytest.raises(ResultsError, match="lacks results.csv"):
        load_results(with_student)
    table_path.write_text(good_table)
    load_results(with_student)


# --------------------------------------------------------------------------------------------
# The report CLI


def test_report_is_self_contained_html_and_markdown(with_student, tmp_path, capsys) -> None:
    out = tmp_path / "report"
    assert main([str(with_student), "--out", str(out), "--title", "My <report>"]) == 0
    html = (out / "report.html").read_text(encoding="utf-8")
    pngs = embedded_pngs(html)
    assert len(pngs) == 2  # scatter + ranking
    assert all(p.startswith(b"\x89PNG\r\n\x1a\n") for p in pngs)
    assert "My &lt;report&gt;" in html  # text is escaped
    assert not re.search(r'src="(?!data:)', html)  # nothing external
    for aug in AUGS:
        assert aug in html
    assert "Pearson" in html and "wrn_16_2" in html  # correlations and protocol shown

    md = (out / "report.md").read_text(encoding="utf-8")
    linked = re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", md)
    assert len(linked) == 2
    for name in linked:
        assert (out / name).read_bytes().startswith(b"\x89PNG")
    assert "| rank |" in md and "cutmixpick-t" in md
    assert "report.html" in capsys.readouterr().out


def test_ranking_table_is_sorted_by_t_stddev(with_student, tmp_path) -> None:
    main([str(with_student), "--out", str(tmp_path / "o")])
    md = (tmp_path / "o" / "report.md").read_text(encoding="utf-8")
    results = md.split("### Results")[1].split("###")[0]
    order = [line.split("|")[2].strip() for line in results.splitlines() if line.startswith("| ")]
    assert order[1:] == list(reversed(AUGS))  # header first, then lowest T. stddev first


def test_folder_without_student_results_still_renders(teacher_only, tmp_path) -> None:
    out = tmp_path / "o"
    assert main([str(teacher_only), "--out", str(out)]) == 0
    html = (out / "report.html").read_text(encoding="utf-8")
    assert len(embedded_pngs(html)) == 1  # the ranking only
    assert "No student results" in html
    assert len(list(out.glob("*.png"))) == 1


def test_several_folders_give_one_report_in_the_default_place(
    with_student, teacher_only, tmp_path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path / "elsewhere" if (tmp_path / "elsewhere").mkdir() else tmp_path)
    assert main([str(with_student), str(teacher_only)]) == 0
    # beside the first results folder, not in the current folder
    out = with_student.parent / "report-wrn_40_2-wrn_16_2-teacher-only"
    assert not (tmp_path / "elsewhere" / "reports").exists()
    html = (out / "report.html").read_text(encoding="utf-8")
    assert len(embedded_pngs(html)) == 3
    assert html.count("<h2") == 2


def test_cli_reports_bad_folders_in_one_line(tmp_path, capsys) -> None:
    assert main([str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("augkd.report: error:") and "does not exist" in err
    assert "\n" not in err


def test_build_report_from_python(with_student, tmp_path) -> None:
    from augkd.report import build_report

    html = build_report([with_student], tmp_path / "py")
    assert html == tmp_path / "py" / "report.html"
    assert len(embedded_pngs(html.read_text(encoding="utf-8"))) == 2


def test_report_colours_any_number_of_custom_das(tmp_path):
    import pandas as pd

    from augkd.report import build_report, write_results

    names = [f"cutmix(beta={b})" for b in (0.25, 0.5, 2.0, 4.0)] + ["identity", "custom"]
    table = pd.DataFrame({"aug": names, "t_stddev": [0.01 + 0.001 * i for i in range(6)],
                          "s_test_loss": [1.0 + 0.1 * i for i in range(6)],
                          "s_test_acc": [90.0 - i for i in range(6)], "n_seeds": [1] * 6})
    write_results(tmp_path / "custom", table, {"protocol": {"dataset": "digits"}})
    html = build_report([tmp_path / "custom"], tmp_path / "out").read_text()
    assert html.count("data:image/png;base64,") >= 2
    for name in names:
        assert name in html


def test_long_da_specs_are_wrapped_in_full_in_the_ranking_plot():
    from augkd.report.render import _wrap_spec

    assert _wrap_spec("3. cutmix") == "3. cutmix"
    long = "5. kornia:ColorJiggle(brightness=0.3, contrast=0.3, saturation=0.3, hue=0.05, p=1.0)"
    lines = _wrap_spec(long).split("\n")
    assert lines[0] == "5. kornia:ColorJiggle(brightness=0.3,"
    assert all(len(line) <= 40 for line in lines) and "\u2026" not in long
    assert " ".join(lines) == long  # nothing cut, broken at its commas
    pipeline = "kornia:RandomAffine(degrees=15, p=1.0) | RandomPerspective(p=1.0)"
    assert _wrap_spec(pipeline).split("\n")[-1] == "| RandomPerspective(p=1.0)"
