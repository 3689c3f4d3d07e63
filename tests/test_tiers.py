"""How sure a ranking is: one-run errors, seed errors, tiers, ANOVA, warnings, and their output.

Every outcome here is fixed by the numbers given (no test depends on a random draw's luck):
a pair whose means differ by far less than their noise is tied, one that differs by far more is
not.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from augkd.metrics.tiers import (
    Estimate,
    accuracy_se,
    bootstrap_t_stddev_se,
    describe_tiers,
    effect_vs_noise,
    estimate,
    leader_tiers,
)
from augkd.metrics.tstddev import t_stddev_from_group_means
from augkd.ranking import RankConfig, aggregate, caveats, judge
from augkd.ranking.measure import agb_search_error
from augkd.ranking.table import print_table


def one_run(mean: float, se: float) -> Estimate:
    """A one-seed measurement with a bootstrap SE (its error counts as known)."""
    return estimate([mean], [se])


# ------------------------------------------------------------------------------ tier decisions


def test_a_pair_far_inside_its_noise_is_tied() -> None:
    tiers = leader_tiers({"a": one_run(0.0100, 0.0005), "b": one_run(0.0101, 0.0005)})
    assert tiers.groups == (("a", "b"),)
    gap = tiers.gaps[0]
    assert gap.diff == pytest.approx(0.0001) and gap.p > 0.8 and not gap.separated


def test_a_pair_far_outside_its_noise_is_not_tied() -> None:
    tiers = leader_tiers({"b": one_run(0.0200, 0.0005), "a": one_run(0.0100, 0.0005)})
    assert tiers.groups == (("a",), ("b",))
    assert tiers.order == ("a", "b") and tiers.tier_of("b") == 2
    assert tiers.gaps[0].p < 1e-40 and tiers.gaps[0].separated


def test_seed_values_decide_the_same_way() -> None:
    close = leader_tiers({"a": estimate([1.00, 1.02, 0.98]), "b": estimate([1.01, 0.99, 1.03])})
    assert close.groups == (("a", "b"),)
    far = leader_tiers({"a": estimate([1.00, 1.02, 0.98]), "b": estimate([2.00, 2.02, 1.98])})
    assert far.groups == (("a",), ("b",))
    assert far.gaps[0].df == pytest.approx(4.0)  # Welch-Satterthwaite, equal variances


def test_the_cifar10_cpu_study_gives_the_tiers_its_data_supports() -> None:
    """reports/cifar10-cpu (5 seeds): the six middle DAs (ANOVA p 0.23 among them) are tied."""
    per_da = {  # mean, seed std of T. stddev
        "cutmixpick-t": (0.008889, 0.000198), "cutmixpick-s": (0.009469, 0.000257),
        "crop+flip": (0.011200, 0.000137), "mixup": (0.011304, 0.000218),
        "flip": (0.011381, 0.000240), "cutout": (0.011413, 0.000331),
        "cutmix": (0.011414, 0.000050), "identity": (0.011589, 0.000319),
        "autoaugment": (0.015213, 0.000222),
    }
    est = {a: Estimate(m, s / math.sqrt(5), s, 5, 4.0, "seeds") for a, (m, s) in per_da.items()}
    tiers = leader_tiers(est)
    assert tiers.groups == (("cutmixpick-t",), ("cutmixpick-s",),
                            ("crop+flip", "mixup", "flip", "cutout", "cutmix", "identity"),
                            ("autoaugment",))
    assert tiers.describe().startswith("tier 1: cutmixpick-t; tier 2: cutmixpick-s; tier 3: "
                                       "crop+flip, mixup")
    assert "(tied)" in tiers.describe() and tiers.best == ("cutmixpick-t",)


def test_a_slope_of_small_steps_does_not_chain_into_one_tier() -> None:
    """Each step is within the noise, the ends are not: tiers follow the leader, not the
    previous DA."""
    est = {f"d{i}": one_run(0.0100 + 0.0004 * i, 0.0002) for i in range(8)}
    tiers = leader_tiers(est)
    assert len(tiers.groups) > 2
    for group in tiers.groups:  # every DA is tied with its tier's best
        lead = est[group[0]].mean
        assert all(est[name].mean - lead < 0.0002 * math.sqrt(2) * 3.3 for name in group)
    assert tiers.gaps[0].p_adjusted == pytest.approx(min(1.0, 7 * tiers.gaps[0].p))


def test_tiers_need_an_error_for_every_da() -> None:
    with pytest.raises(ValueError, match="no standard error for b"):
        leader_tiers({"a": one_run(1.0, 0.1), "b": estimate([2.0])})
    single = leader_tiers({"a": one_run(1.0, 0.1)})
    assert single.groups == (("a",),) and single.gaps == ()
    assert describe_tiers([["a"], ["b", "c"]]) == "tier 1: a; tier 2: b, c (tied)"


# ----------------------------------------------------------------------------- the estimates


def test_one_seed_uses_its_bootstrap_and_has_no_std() -> None:
    e = estimate([0.01], [0.0004])
    assert (e.mean, e.se, e.n, e.source) == (0.01, 0.0004, 1, "bootstrap")
    assert math.isnan(e.std) and math.isinf(e.df)
    bare = estimate([1.25])  # a student's loss from one seed: no error at all
    assert math.isnan(bare.se) and bare.source == ""


def test_seed_spread_never_falls_below_the_one_run_error() -> None:
    lucky = estimate([0.0100, 0.0100], [0.0004, 0.0004])  # two seeds agreeing by chance
    assert lucky.se == pytest.approx(0.0004 / math.sqrt(2)) and lucky.source == "bootstrap"
    wide = estimate([0.0100, 0.0120], [0.0004, 0.0004])  # seeds spread more than one run says
    assert wide.se == pytest.approx(np.std([0.0100, 0.0120], ddof=1) / math.sqrt(2))
    assert wide.source == "seeds" and wide.df == 1.0


def test_bootstrap_se_is_reproducible_and_near_the_normal_theory_value() -> None:
    g = torch.Generator().manual_seed(0)
    groups, classes, sigma = 400, 10, 0.01
    means = (0.1 + sigma * torch.randn(groups, classes, generator=g)).double()
    se = bootstrap_t_stddev_se(means)
    assert se == bootstrap_t_stddev_se(means)  # seeded
    # iid normal classes: SE of a sample std ~ sigma / sqrt(2 (G - 1)), averaged over C classes
    theory = sigma / math.sqrt(2 * (groups - 1)) / math.sqrt(classes)
    assert 0.75 * theory < se < 1.33 * theory
    assert t_stddev_from_group_means(means) == pytest.approx(sigma, rel=0.05)
    with pytest.raises(ValueError, match="G >= 2"):
        bootstrap_t_stddev_se(means[:1])


def test_effect_vs_noise_is_a_one_way_anova() -> None:
    flat = effect_vs_noise({"a": [1.0, 1.2], "b": [1.1, 0.9], "c": [1.0, 1.1]})
    assert flat["anova_p"] > 0.5 and flat["seeds"] == 2 and flat["das"] == 3
    clear = effect_vs_noise({"a": [1.0, 1.01], "b": [2.0, 2.01]})
    assert clear["anova_p"] < 1e-3 and clear["range"] == pytest.approx(1.0)
    assert clear["seed_noise_std"] == pytest.approx(np.std([1.0, 1.01], ddof=1))
    with pytest.raises(ValueError, match="2 seeds"):
        effect_vs_noise({"a": [1.0], "b": [2.0]})


def test_accuracy_se_is_binomial_in_points() -> None:
    assert accuracy_se(50.0, 100) == pytest.approx(5.0)
    assert accuracy_se(90.0, 200) == pytest.approx(100 * math.sqrt(0.09 / 200))
    assert accuracy_se(100.0, 200) > 0  # a perfect score still has an error


# ------------------------------------------------------------------ rank's table and warnings


def per_seed_one_run() -> pd.DataFrame:
    return pd.DataFrame({
        "aug": ["identity", "flip", "cutmix"], "seed": [0, 0, 0],
        "t_stddev": [0.0100, 0.0101, 0.0200], "t_stddev_se": [0.0005] * 3, "n_groups": [44] * 3,
    })


def test_one_seed_tables_leave_the_std_blank_and_carry_se_and_tier(tmp_path) -> None:
    table, tiers = aggregate(per_seed_one_run())
    assert list(table["aug"]) == ["identity", "flip", "cutmix"]
    assert list(table["tier"]) == [1, 1, 2] and list(table["rank"]) == [1, 2, 3]
    assert table["t_stddev_std"].isna().all() and (table["t_stddev_se"] == 0.0005).all()
    assert list(table.columns[:3]) == ["rank", "tier", "aug"]
    table.to_csv(tmp_path / "r.csv", index=False)
    row = (tmp_path / "r.csv").read_text().splitlines()[1]
    assert ",,1" in row  # the std cell is empty, not 0.0
    assert tiers["t_stddev"].best == ("identity", "flip")


def test_the_answer_reads_as_a_decision(capsys) -> None:
    cfg = RankConfig(augs=("identity", "flip", "cutmix"))
    per_seed = per_seed_one_run()
    table, tiers = aggregate(per_seed)
    summary = judge(cfg, per_seed, table, tiers, teacher_top1=95.0, num_classes=10)
    assert summary["recommended"] == {"aug": "identity", "tied_with": ["flip"]}
    assert summary["tiers"]["tiers"] == [["identity", "flip"], ["cutmix"]]
    assert summary["warnings"] == []
    print_table(table, summary, "per-image", log=print)
    out = capsys.readouterr().out
    assert "recommended: identity (tied with flip)" in out
    assert "± is the standard error of one run's T. stddev, by bootstrap over its 44 groups" in out
    assert "tier 1: identity, flip (tied); tier 2: cutmix" in out
    assert "0.010000 ± 0.000500" in out


def test_warnings_name_a_weak_teacher_few_das_and_short_students() -> None:
    cfg = RankConfig(augs=("identity", "flip", "cutmix"), validate=True, student_epochs=2)
    per_seed = per_seed_one_run().assign(s_test_loss=[1.2, 1.3, 1.1], s_test_acc=[60, 58, 61])
    table, tiers = aggregate(per_seed)
    assert "s_test_loss" not in tiers and table["s_test_loss_tier"].isna().all()
    notes = caveats(cfg, table, tiers, {}, teacher_top1=38.0, num_classes=10)
    text = " | ".join(notes)
    assert "top-1 is 38.0% (10 classes, chance 10.0%): below 55.0%" in text
    assert "rests on 3 DAs (fewer than 6)" in text
    assert "trained 2 epochs, far shorter than the recipe's 240" in text
    assert "one seed: no seed noise for S. test loss" in text
    strong = RankConfig(augs=("identity", "flip", "cutmix"))
    assert caveats(strong, table, tiers, {}, teacher_top1=60.2, num_classes=10) == []
    assert any("50.5%" in n for n in caveats(strong, table, tiers, {}, 40.0, 100))


def test_validate_with_seeds_reports_the_anova_and_loss_tiers() -> None:
    cfg = RankConfig(augs=("identity", "flip", "cutmix"), validate=True, seeds=3,
                     student_epochs=30)
    rows = []
    for aug, t, loss in (("identity", 0.0100, 1.30), ("flip", 0.0101, 1.31),
                         ("cutmix", 0.0200, 1.10)):
        for seed, wobble in enumerate((-0.01, 0.0, 0.01)):
            rows.append({"aug": aug, "seed": seed, "t_stddev": t + wobble * 1e-3,
                         "t_stddev_se": 0.0002, "n_groups": 44, "s_test_loss": loss + wobble,
                         "s_test_acc": 60.0 + 100 * wobble})
    per_seed = pd.DataFrame(rows)
    table, tiers = aggregate(per_seed)
    summary = judge(cfg, per_seed, table, tiers, teacher_top1=95.0, num_classes=10)
    assert summary["effect_vs_noise"]["s_test_loss"]["anova_p"] < 1e-4
    assert summary["s_test_loss_tiers"]["tiers"] == [["cutmix"], ["identity", "flip"]]
    assert list(table["s_test_loss_tier"]) == [2, 2, 1]  # rows in T. stddev order
    assert summary["uncertainty"]["seeds"] == 3
    assert "mean over 3 seeds" in summary["uncertainty"]["t_stddev"]
    assert not table["t_stddev_std"].isna().any()
    assert "rests on 3 DAs" in " ".join(summary["warnings"])


def test_agb_search_reports_its_held_out_size_and_close_calls(tmp_path, digits) -> None:
    from augkd.training import TrainConfig

    path = tmp_path / "agb_search.csv"
    path.write_text("lambda,holdout_top1,holdout_loss,epochs\n0.1,80.0,0.7,1\n0.3,81.0,0.69,1\n"
                    "0.5,70.0,0.9,1\n")
    cfg = TrainConfig(role="teacher", model="resnet8", dataset="digits")
    info = agb_search_error(path, cfg, digits)
    n = round(0.1 * len(digits.train_images))
    assert info["agb_holdout_images"] == n and info["agb_holdout_top1"] == 81.0
    assert info["agb_holdout_se"] == pytest.approx(accuracy_se(81.0, n))
    assert info["agb_close"] == "0.1"  # 1 point apart on ~135 images: within 2 SE; 0.5 is not
    assert agb_search_error(tmp_path / "none.csv", cfg, digits) == {}


# ---------------------------------------------------------------------------- results + report


def test_rank_writes_tiers_and_the_report_draws_them(tmp_path, capsys) -> None:
    from augkd.rank import main
    from augkd.report import build_report, load_results

    out = tmp_path / "tiers"
    argv = ["--teacher-epochs", "3", "--epochs", "1", "--no-progress", "--out", str(out),
            "--augs", "identity", "flip", "mixup"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "recommended: " in printed and "± is the standard error" in printed
    res = load_results(out)
    assert {"tier", "t_stddev_se", "t_stddev_std"} <= set(res.table.columns)
    assert res.table["t_stddev_std"].isna().all() and (res.table["t_stddev_se"] > 0).all()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["recommended"]["aug"] == summary["tiers"]["tiers"][0][0]
    assert "Bonferroni" in summary["tiers"]["method"] and summary["uncertainty"]["seeds"] == 1
    per_seed = pd.read_csv(out / "per_seed.csv")
    assert (per_seed["t_stddev_se"] > 0).all()

    html = build_report([out], tmp_path / "report")
    md = (tmp_path / "report" / "report.md").read_text(encoding="utf-8")
    assert "### How sure the ranking is" in md and "Recommended: " in md
    assert "| tier | DA | T. stddev ± SE |" in md
    assert "How sure the ranking is" in html.read_text(encoding="utf-8")
    assert "Other summary entries" not in md or "recommended" not in md.split(
        "Other summary entries")[1]


def test_old_results_folders_render_as_before(tmp_path) -> None:
    from augkd.report import build_report, write_results

    table = pd.DataFrame({"aug": ["a", "b"], "t_stddev": [0.01, 0.02],
                          "t_stddev_std": [0.001, 0.001], "n_seeds": [3, 3]})
    write_results(tmp_path / "old", table, {"protocol": {}})
    build_report([tmp_path / "old"], tmp_path / "report")
    md = (tmp_path / "report" / "report.md").read_text(encoding="utf-8")
    assert "| rank | DA | T. stddev |" in md and "010000 ± 0.001000" in md
    assert "How sure" not in md


def test_a_one_seed_student_loss_is_shown_without_an_error(tmp_path) -> None:
    from augkd.report import build_report, write_results

    per_seed = per_seed_one_run().assign(s_test_loss=[1.2, 1.3, 1.1], s_test_acc=[60, 58, 61])
    table, _ = aggregate(per_seed)
    write_results(tmp_path / "one", table, {"protocol": {}})
    build_report([tmp_path / "one"], tmp_path / "report")
    md = (tmp_path / "report" / "report.md").read_text(encoding="utf-8")
    header = next(line for line in md.splitlines() if line.startswith("| tier |"))
    assert "T. stddev ± SE" in header and "| S. test loss |" in header
    assert "seed std" not in header  # one seed: no spread to show
