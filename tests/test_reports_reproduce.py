"""Every committed report's tables, rebuilt from the raw files committed beside them.

Each report folder under ``reports/`` holds its raw data (per-run or per-seed CSVs, a log, a
summary) and the tables made from them. These tests rebuild the tables with the same functions
the report scripts (``experiments/*_report.py``) use and compare them with the committed files,
so a report stays reproducible from what is in the repository. The CSVs hold floats at full
precision, so numbers must agree to 1e-9 relative; the Markdown tables, which round, must appear
in the READMEs exactly as the functions print them.
"""

from __future__ import annotations

import importlib
import json
import math
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
REPORTS = REPO / "reports"
RTOL, ATOL = 1e-9, 1e-12


@pytest.fixture(scope="module")
def scripts():
    """The report scripts of experiments/, imported as modules (they import each other)."""
    sys.path.insert(0, str(REPO / "experiments"))
    try:
        yield {name: importlib.import_module(f"{name}_report") for name in
               ("cifar10_cpu", "temperature", "tuning", "distillers", "external_da", "digits")}
    finally:
        sys.path.remove(str(REPO / "experiments"))


def assert_same_table(built: pd.DataFrame, committed: pd.DataFrame, where: str) -> None:
    """Same columns and rows; numbers equal to RTOL (NaN equals NaN), other cells equal."""
    built, committed = built.reset_index(drop=True), committed.reset_index(drop=True)
    assert list(built.columns) == list(committed.columns), where
    assert len(built) == len(committed), where
    for column in committed.columns:
        b, c = built[column], committed[column]
        if pd.api.types.is_numeric_dtype(c) and pd.api.types.is_numeric_dtype(b):
            np.testing.assert_allclose(b.to_numpy(float), c.to_numpy(float), rtol=RTOL,
                                       atol=ATOL, equal_nan=True, err_msg=f"{where}: {column}")
        else:  # a CSV reads an empty cell back as NaN
            assert [_cell(v) for v in b] == [_cell(v) for v in c], f"{where}: {column}"


def _cell(value) -> str | None:
    return None if pd.isna(value) or value == "" else str(value)


def assert_same_numbers(built, committed, where: str) -> None:
    """Nested dicts / lists of numbers equal to RTOL, with the same keys."""
    if isinstance(committed, dict):
        assert set(built) == set(committed), where
        for key in committed:
            assert_same_numbers(built[key], committed[key], f"{where}.{key}")
    elif isinstance(committed, float) and math.isnan(committed):
        assert math.isnan(built), where
    else:
        assert built == pytest.approx(committed, rel=RTOL, abs=ATOL), where


def read_csv_index(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, index_col=0)


# --------------------------------------------------------------------------------------------


def test_cifar10_cpu_joint_runs_are_those_of_the_log(scripts):
    folder = REPORTS / "cifar10-cpu"
    built = scripts["cifar10_cpu"].joint_runs_from_log((folder / "study.log").read_text())
    committed = pd.read_csv(folder / "joint_results.csv")
    assert len(committed) == 27  # 9 DAs x 3 seeds
    assert_same_table(built, committed, "joint_results.csv")


def test_cifar10_cpu_tables(scripts):
    module, folder = scripts["cifar10_cpu"], REPORTS / "cifar10-cpu"
    results = pd.read_csv(folder / "results.csv")
    joint = pd.read_csv(folder / "joint_results.csv")
    tables = module.build_tables(results, "t_stddev_per-batch", joint)
    per_da = read_csv_index(folder / "per_da.csv")
    assert_same_table(tables["per_da"].reset_index(), per_da.reset_index(), "per_da.csv")
    assert_same_numbers(tables["correlations"],
                        json.loads((folder / "correlations.json").read_text()),
                        "correlations.json")
    effect = json.loads((folder / "effect_vs_noise.json").read_text())
    walls = effect.pop("wall_seconds")
    assert_same_numbers(tables["effect_vs_noise"], effect, "effect_vs_noise.json")
    facts = module.log_facts((folder / "study.log").read_text())
    assert walls["main"] == facts["main_elapsed_s"] == 6102.0  # 1:41:42 in study.log
    assert walls["joint"] == 1919.0  # 22:45:51 -> 23:17:50
    assert_same_table(tables["joint"], pd.read_csv(folder / "joint_forward_ablation.csv"),
                      "joint_forward_ablation.csv")
    readme = (folder / "README.md").read_text()
    for table in (module.da_table_md(tables["per_da"]),
                  module.correlation_md(tables["correlations"]),
                  module.joint_md(tables["joint"])):
        assert table in readme


def test_cifar10_cpu_teacher_is_the_one_of_its_log(scripts):
    folder = REPORTS / "cifar10-cpu"
    teacher = scripts["cifar10_cpu"].log_facts((folder / "study.log").read_text())["teacher"]
    assert (teacher["model"], teacher["test_top1"], teacher["test_loss"]) == \
        ("resnet20", 60.24, 1.1441)
    assert "test top-1 60.24 % (loss 1.1441)" in (folder / "README.md").read_text()


def test_temperature_cpu_tables(scripts):
    module, folder = scripts["temperature"], REPORTS / "temperature-cpu"
    tables = module.build_tables(pd.read_csv(folder / "results.csv"))
    assert_same_table(tables["table"], pd.read_csv(folder / "table.csv"), "table.csv")
    assert_same_table(tables["t2_ablation"], pd.read_csv(folder / "t2_ablation.csv"),
                      "t2_ablation.csv")
    assert_same_table(tables["vs_labels"], pd.read_csv(folder / "vs_labels.csv"),
                      "vs_labels.csv")
    assert tables["table_md"] == (folder / "table.md").read_text()
    readme = (folder / "README.md").read_text()
    for block in tables["readme"].split("\n\n"):
        assert block.strip() in readme
    # the README's count of T^2 gaps at Welch p < 0.05, and their common sign
    t2 = tables["t2_ablation"]
    assert (t2["welch_p"] < 0.05).sum() == 1 and (t2["difference"] > 0).all()


def test_tuning_cpu_tables(scripts):
    module, folder = scripts["tuning"], REPORTS / "tuning-cpu"
    tables = module.build_tables(pd.read_csv(folder / "runs.csv"))
    assert_same_table(tables["table"], pd.read_csv(folder / "table.csv"), "table.csv")
    assert_same_table(tables["vs_agb"], pd.read_csv(folder / "vs_agb.csv"), "vs_agb.csv")
    assert tables["table_md"] == (folder / "table.md").read_text()
    assert tables["readme"] in (folder / "README.md").read_text()


def test_distillers_cpu_tables(scripts):
    module, folder = scripts["distillers"], REPORTS / "distillers-cpu"
    results = pd.read_csv(folder / "results.csv")
    table, wins = module.build_tables(results)
    assert_same_table(table, pd.read_csv(folder / "table.csv"), "table.csv")
    assert_same_table(wins, pd.read_csv(folder / "wins.csv"), "wins.csv")
    markdown = module.markdown(table, wins)
    assert markdown == (folder / "table.md").read_text()
    assert markdown.split("\n\n")[0] in (folder / "README.md").read_text()
    summary = json.loads((folder / "summary.json").read_text())
    summary.pop("teacher", None)
    assert module.summarize(results, table, wins) == summary


def test_external_da_cpu_tables(scripts):
    module, folder = scripts["external_da"], REPORTS / "external-da-cpu"
    tables = module.build_tables(pd.read_csv(folder / "per_seed.csv"))
    assert_same_table(tables["results"], pd.read_csv(folder / "results.csv"), "results.csv")
    assert_same_table(tables["neighbours"], pd.read_csv(folder / "neighbours.csv"),
                      "neighbours.csv")
    assert tables["readme"] in (folder / "README.md").read_text()


@pytest.mark.parametrize("mode", ["per-image", "per-batch"])
def test_digits_tables(scripts, mode):
    from augkd.metrics import correlations
    from augkd.ranking import aggregate

    folder = REPORTS / "digits" / "resnet20-resnet8" / mode
    table, tiers = aggregate(pd.read_csv(folder / "per_seed.csv"))
    assert_same_table(table, pd.read_csv(folder / "results.csv"), f"digits {mode} results.csv")
    summary = json.loads((folder / "summary.json").read_text())
    built = correlations(table["t_stddev"].to_numpy(), table["s_test_loss"].to_numpy())
    for name in ("pearson", "spearman", "kendall"):
        assert_same_numbers(built[name], summary[name], f"digits {mode} {name}")
    assert summary["tiers"] == tiers["t_stddev"].as_json()


def test_every_figure_a_readme_shows_is_committed():
    readmes = sorted(REPORTS.glob("*/README.md"))
    assert len(readmes) >= 5
    for readme in readmes:
        for target in re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", readme.read_text()):
            assert (readme.parent / target).is_file(), f"{readme}: {target}"


@pytest.fixture(scope="module")
def evidence():
    sys.path.insert(0, str(REPO / "experiments"))
    try:
        yield importlib.import_module("evidence_reports")
    finally:
        sys.path.remove(str(REPO / "experiments"))


def test_two_way_anova_matches_an_ols_fit(evidence):
    """The balanced two-way ANOVA of the study reports: each F is the extra-sum-of-squares F of
    the least-squares fit that adds the term (a to the mean, b to a, a x b to both; in a
    balanced design the order does not matter), over the full model's residual mean square."""
    rng = np.random.default_rng(0)
    rows = [{"a": a, "b": b, "y": a * 0.3 + np.log2(b) * 0.2 + (a == 2) * b * 0.05
             + rng.normal() * 0.1} for a in range(3) for b in (4, 8, 16, 32) for _ in range(3)]
    df = pd.DataFrame(rows)
    got = evidence.two_way_anova(df, "a", "b", "y")
    y = df["y"].to_numpy()
    A = pd.get_dummies(df["a"], drop_first=True).to_numpy(float)
    B = pd.get_dummies(df["b"], drop_first=True).to_numpy(float)
    AB = np.hstack([A[:, [i]] * B[:, [j]] for i in range(A.shape[1]) for j in range(B.shape[1])])
    one = np.ones((len(y), 1))

    def rss(*blocks):
        X = np.hstack([one, *blocks])
        beta = np.linalg.lstsq(X, y, rcond=None)[0]
        return float(((y - X @ beta) ** 2).sum()), X.shape[1]

    fits = [rss(), rss(A), rss(A, B), rss(A, B, AB)]
    ms_e = fits[3][0] / (len(y) - fits[3][1])
    for name, (small, big) in (("a", fits[0:2]), ("b", fits[1:3]), ("a x b", fits[2:4])):
        f = (small[0] - big[0]) / (big[1] - small[1]) / ms_e
        assert got[name]["F"] == pytest.approx(f, rel=1e-9), name
    with pytest.raises(ValueError, match="same >= 2 runs"):
        evidence.two_way_anova(df.iloc[1:], "a", "b", "y")


def test_welch_matches_scipy(evidence):
    a, b = np.array([1.0, 1.2, 0.9, 1.1]), np.array([1.5, 1.4, 1.8])
    got = evidence.welch(pd.Series(a), pd.Series(b))
    ref = __import__("scipy.stats", fromlist=["stats"]).ttest_ind(b, a, equal_var=False)
    assert got["p"] == pytest.approx(ref.pvalue, rel=1e-12)
    ci = ref.confidence_interval(0.95)
    assert (got["ci_low"], got["ci_high"]) == pytest.approx((ci.low, ci.high), rel=1e-9)


@pytest.mark.parametrize("name, per_batch, teacher", [
    ("cifar10-cpu-per-image", "cifar10-cpu/results.csv", "60.24"),
    ("cifar10-cpu-modes", "cifar10-cpu-modes/per_batch.csv", "61.55")])
def test_per_image_against_per_batch_tables(tmp_path, name, per_batch, teacher):
    """A per-image against per-batch report's tables (students, T. stddev and, when both modes
    ran on one teacher, the mode's own effects), rebuilt from its students.csv and tstddev.csv
    and the per-batch results it names, are the ones committed and the ones its README shows."""
    import shutil

    sys.path.insert(0, str(REPO / "experiments"))
    try:
        module = importlib.import_module("per_image_students_report")
    finally:
        sys.path.remove(str(REPO / "experiments"))
    folder = REPORTS / name
    for file in ("tstddev.csv", "students.csv"):
        shutil.copy(folder / file, tmp_path / file)
    source = (module.PER_BATCH_SOURCE if teacher == "60.24"
              else f"{name}/per_batch.csv, the {teacher} % teacher")
    module.main(str(tmp_path), REPORTS / per_batch, teacher, source)
    readme = (folder / "README.md").read_text()
    tables = ["per_da.md", "tstddev.md"] + (["modes.md"] if teacher == "61.55" else [])
    assert (tmp_path / "modes.md").is_file() == (teacher == "61.55")
    for table in tables:
        built = (tmp_path / table).read_text()
        assert built == (folder / table).read_text()
        assert built.strip() in readme


@pytest.mark.parametrize("study, folder", [("kd-vs-crd", "kd-vs-crd-cpu"),
                                           ("long-epochs", "long-epochs-cpu"),
                                           ("pick-any", "pick-any-cpu"),
                                           ("second-pair", "second-pair-cpu")])
def test_evidence_study_tables(evidence, tmp_path, study, folder):
    """A study report's tables.md, rebuilt from its committed results.csv (and reference.csv,
    the first pair beside study b's second; ce_only.csv, study c's control), is the one
    committed and the one its README shows."""
    import shutil

    committed = REPORTS / folder
    for extra in ("reference.csv", "ce_only.csv"):
        if (committed / extra).is_file():
            shutil.copy(committed / extra, tmp_path / extra)
    text = evidence.STUDIES[study](pd.read_csv(committed / "results.csv"), tmp_path)
    assert text == (committed / "tables.md").read_text()
    assert text.strip() in (committed / "README.md").read_text()


def test_second_pair_tables_on_the_first_pair_give_the_issue_s_numbers(evidence, tmp_path):
    """Study b's tables, fed reports/cifar10-cpu (the first pair), give the figures that the
    evidence issue quoted from it by an independent re-analysis: the six middle DAs' T. stddev
    ANOVA p 0.23 and their Spearman(T. stddev, S. test loss) -0.03, Pearson 0.864 over nine."""
    results = pd.read_csv(REPORTS / "cifar10-cpu" / "results.csv")
    text = evidence.second_pair(results, tmp_path)
    anova = pd.read_csv(tmp_path / "anova.csv").set_index("ANOVA")
    assert anova.loc["T. stddev, middle six", "p"] == pytest.approx(0.23, abs=0.005)
    assert anova.loc["S. test loss, all nine", "p"] < 1e-7
    corr = json.loads((tmp_path / "correlations.json").read_text())
    (side,) = corr.values()
    assert side["middle_six_spearman"]["r"] == pytest.approx(-0.03, abs=0.005)
    assert side["across_das"]["pearson"]["r"] == pytest.approx(0.864, abs=0.0005)
    assert "tier 3: crop+flip, mixup, flip, cutout, cutmix, identity (tied)" in text
    assert "first pair" not in text  # no reference.csv, no second side


def test_pick_any_pairs_every_da_with_its_pick(evidence, tmp_path):
    """pick-any's tests table has one row per (DA, metric) whose pick(DA) is in the sweep, and
    its difference is the difference of the two seed means."""
    first = pd.read_csv(REPORTS / "cifar10-cpu" / "results.csv")
    plain = first[first["aug"].isin(["mixup", "cutmix"])]
    picked = plain.assign(aug="pick(" + plain["aug"] + ", by=teacher)",
                          last_test_loss=plain["last_test_loss"] - 0.01)
    lonely = first[first["aug"] == "identity"]
    evidence.pick_any(pd.concat([plain, picked, lonely]), tmp_path)
    tests = pd.read_csv(tmp_path / "tests.csv")
    assert sorted(set(tests["DA"])) == ["cutmix", "mixup"]
    loss = tests[tests["metric"] == "S. test loss"].set_index("DA")
    assert loss["pick - plain"].to_numpy() == pytest.approx([-0.01, -0.01], rel=1e-9)
    assert (loss["Bonferroni p"] == (loss["Welch p"] * 2).clip(upper=1)).all()


def test_pick_cutmix_students_equal_the_cutmixpick_t_students_of_study_c():
    """reports/pick-any-cpu's README says pick(cutmix, by=teacher) trained the same students as
    study c's KD + cutmixpick-t (same teacher, seeds and recipe): the committed rows agree."""
    c = pd.read_csv(REPORTS / "kd-vs-crd-cpu" / "results.csv")
    d = pd.read_csv(REPORTS / "pick-any-cpu" / "results.csv")
    cols = ["last_test_loss", "last_test_acc"]
    alias = c[(c["aug"] == "cutmixpick-t") & (c["distill"] == "kd")].set_index("seed")[cols]
    generic = d[d["aug"] == "pick(cutmix, by=teacher)"].set_index("seed")[cols]
    assert len(alias) == 5
    pd.testing.assert_frame_equal(alias.sort_index(), generic.sort_index())
