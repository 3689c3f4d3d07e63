"""From per-seed measurements to a decision: estimates with their errors, tiers, the
recommendation and the warnings."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from augkd.metrics.tiers import (
    ALPHA,
    Tiers,
    effect_vs_noise,
    estimate,
    leader_tiers,
)
from augkd.ranking.config import (
    AGB_CLOSE_SE,
    MIN_DAS_FOR_CORRELATION,
    MIN_STUDENT_EPOCHS,
    RECIPE_EPOCHS,
    TEACHER_FLOOR,
    RankConfig,
)


def _estimates(per_seed: pd.DataFrame, column: str, run_se: str | None = None):
    """DA -> :class:`~augkd.metrics.tiers.Estimate` of ``column`` over its seeds."""
    return {aug: estimate(rows[column].tolist(),
                          rows[run_se].tolist() if run_se in rows else None)
            for aug, rows in per_seed.groupby("aug", sort=False)}


def aggregate(per_seed: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, Tiers]]:
    """One row per DA, lowest T. stddev first, and the tiers of each measured quantity.

    Columns: ``rank`` (the position), ``tier``, ``aug``, ``t_stddev`` (mean over seeds),
    ``t_stddev_se`` (see :func:`augkd.metrics.tiers.estimate`), ``t_stddev_std`` (seed
    spread, NaN with one seed); with students also ``s_test_loss``, ``s_test_loss_se`` and
    ``s_test_loss_std`` and ``s_test_loss_tier`` (NaN with one seed: no noise estimate),
    ``s_test_acc(_std)``; ``n_seeds``; ``agb_lambda`` when AGB searched. The tiers are keyed
    ``t_stddev`` and (with two seeds or more) ``s_test_loss``.
    """
    grouped = per_seed.groupby("aug", sort=False)
    table = pd.DataFrame({"n_seeds": grouped.size()})
    tiers: dict[str, Tiers] = {}
    for column, run_se in (("t_stddev", "t_stddev_se"), ("s_test_loss", None)):
        if column not in per_seed:
            continue
        est = _estimates(per_seed, column, run_se)
        table[column] = [est[a].mean for a in table.index]
        table[column + "_se"] = [est[a].se for a in table.index]
        table[column + "_std"] = [est[a].std for a in table.index]
        if all(np.isfinite(e.se) for e in est.values()):
            tiers[column] = leader_tiers(est)
    if "s_test_acc" in per_seed:
        table["s_test_acc"] = grouped["s_test_acc"].mean()
        table["s_test_acc_std"] = grouped["s_test_acc"].std(ddof=1)  # NaN with one seed
    if "agb_lambda" in per_seed:  # the lambda AGB's search chose, per seed
        table["agb_lambda"] = grouped["agb_lambda"].agg(
            lambda v: "/".join(f"{x:g}" for x in v))
    table["tier"] = [tiers["t_stddev"].tier_of(a) for a in table.index]
    order = ["tier", "t_stddev", "t_stddev_se", "t_stddev_std"]
    if "s_test_loss" in table:
        table["s_test_loss_tier"] = ([tiers["s_test_loss"].tier_of(a) for a in table.index]
                                     if "s_test_loss" in tiers else np.nan)
        order += ["s_test_loss", "s_test_loss_se", "s_test_loss_std", "s_test_loss_tier"]
    if "s_test_acc" in table:
        order += ["s_test_acc", "s_test_acc_std"]
    extra = ["agb_lambda"] if "agb_lambda" in table else []
    table = table[order + ["n_seeds"] + extra].sort_values("t_stddev", kind="stable")
    table = table.rename_axis("aug").reset_index()
    table.insert(0, "rank", range(1, len(table) + 1))
    first = ["rank", "tier", "aug"]
    return table[first + [c for c in table if c not in first]], tiers


def uncertainty_note(per_seed: pd.DataFrame) -> str:
    """What ± means in the table, in one line."""
    seeds = int(per_seed.groupby("aug").size().min())
    groups = int(per_seed["n_groups"].min()) if "n_groups" in per_seed else None
    where = f" over its {groups} groups" if groups else ""
    if seeds == 1:
        students = " (S. test loss has none with one seed)" if "s_test_loss" in per_seed else ""
        return (f"± is the standard error of one run's T. stddev, by bootstrap{where}; "
                f"1 seed{students}")
    return (f"± is the standard error of the mean over {seeds} seeds: the seed std / "
            f"sqrt({seeds}), never below the one-run bootstrap error{where} / sqrt({seeds})")


def caveats(cfg: RankConfig, table: pd.DataFrame, tiers: dict[str, Tiers],
            summary: dict[str, Any], teacher_top1: float | None,
            num_classes: int) -> list[str]:
    """The warnings that make an answer weak, each one line naming its figures."""
    notes = []
    if teacher_top1 is not None:
        chance = 100.0 / num_classes
        floor = chance + TEACHER_FLOOR * (100.0 - chance)
        if teacher_top1 < floor:
            notes.append(
                f"the teacher's test top-1 is {teacher_top1:.1f}% ({num_classes} classes, "
                f"chance {chance:.1f}%): below {floor:.1f}%, halfway from chance to 100%, its "
                "probabilities sit near uniform and the T. stddev order may mean little")
    if len(tiers["t_stddev"].groups) == 1 and len(table) > 1:
        notes.append("the measurement separates no DA from another (one tier): measure more "
                     "epochs or seeds before choosing by T. stddev")
    if not cfg.validate:
        return notes
    if len(table) < MIN_DAS_FOR_CORRELATION:
        notes.append(f"the correlation rests on {len(table)} DAs (fewer than "
                     f"{MIN_DAS_FOR_CORRELATION}); its p-value says little")
    if cfg.student_epochs < MIN_STUDENT_EPOCHS:
        epochs = f"{cfg.student_epochs} epoch{'s' if cfg.student_epochs > 1 else ''}"
        notes.append(f"the students trained {epochs}, far shorter than the "
                     f"recipe's {RECIPE_EPOCHS} (warned below {MIN_STUDENT_EPOCHS}, the shortest "
                     "at which reports/cifar10-cpu reproduced the correlation)")
    if cfg.seeds < 2:
        notes.append("one seed: no seed noise for S. test loss, so no ANOVA and no S. test loss "
                     "tiers; use --seeds 3 or more")
    effect = summary.get("effect_vs_noise", {}).get("s_test_loss")
    if effect and effect["anova_p"] >= ALPHA:
        notes.append(f"the DA effect on S. test loss does not exceed seed noise (ANOVA p "
                     f"{effect['anova_p']:.2g}): the correlation may fit noise")
    agb = summary.get("agb_search")
    if agb and agb["close_calls"]:
        notes.append(
            f"AGB's lambda search: in {agb['close_calls']} of {agb['searches']} searches another "
            f"lambda scored within {AGB_CLOSE_SE:g} SE of the chosen one on "
            f"{agb['holdout_images']} held-out images (SE about {agb['top1_se_points']:.1f} "
            "points): there the choice is noise")
    return notes


def judge(cfg: RankConfig, per_seed: pd.DataFrame, table: pd.DataFrame,
          tiers: dict[str, Tiers], teacher_top1: float | None,
          num_classes: int) -> dict[str, Any]:
    """The summary entries that say how sure the ranking is: uncertainty, tiers, the
    recommendation, the ANOVA and AGB search figures (with students) and the warnings."""
    best = tiers["t_stddev"].best
    out: dict[str, Any] = {
        "uncertainty": {"t_stddev": uncertainty_note(per_seed),
                        "seeds": int(table["n_seeds"].min())},
        "tiers": tiers["t_stddev"].as_json(),
        "recommended": {"aug": best[0], "tied_with": list(best[1:])},
    }
    if "s_test_loss" in tiers:
        out["s_test_loss_tiers"] = tiers["s_test_loss"].as_json()
    if "s_test_loss" in per_seed and cfg.seeds >= 2 and len(table) >= 2:
        out["effect_vs_noise"] = {
            c: effect_vs_noise({a: r[c].tolist() for a, r in per_seed.groupby("aug")})
            for c in ("s_test_loss", "s_test_acc", "t_stddev")}
    if "agb_holdout_images" in per_seed and per_seed["agb_holdout_images"].notna().any():
        searched = per_seed[per_seed["agb_holdout_images"].notna()]
        out["agb_search"] = {
            "holdout_images": int(searched["agb_holdout_images"].min()),
            "top1_se_points": float(searched["agb_holdout_se"].median()),
            "searches": len(searched),
            "close_calls": int((searched["agb_close"].fillna("").astype(str) != "").sum()),
            "rule": f"another lambda within {AGB_CLOSE_SE:g} binomial SE of the chosen one's "
                    "held-out top-1",
        }
    out["warnings"] = caveats(cfg, table, tiers, out, teacher_top1, num_classes)
    return out


