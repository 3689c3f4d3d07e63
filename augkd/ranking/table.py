"""The ranking as a text table, for the terminal and the log."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from augkd.metrics.tiers import (
    ALPHA,
    describe_tiers,
)


def _text_table(table: pd.DataFrame) -> str:
    """``table`` as left-aligned text columns, two spaces apart, headers first."""
    cells = [[str(c) for c in table.columns]] + [[str(v) for v in row]
                                                  for row in table.itertuples(index=False)]
    widths = [max(len(row[j]) for row in cells) for j in range(len(table.columns))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()
                     for row in cells)


def _with_error(mean: float, se: float, digits: int) -> str:
    return f"{mean:.{digits}f}" + (f" ± {se:.{digits}f}" if np.isfinite(se) else "")


def print_table(table: pd.DataFrame, summary: dict[str, Any], mode: str, log=print) -> None:
    """The ranking as a terminal table, best (lowest T. stddev) first, with what ± means, the
    tiers, the recommendation, (with students) the correlation and the ANOVA, and warnings.

    Ties are shown by the tier column, not by ordinal ranks."""
    seeds = summary["uncertainty"]["seeds"]
    shown = pd.DataFrame({"tier": table["tier"], "DA": table["aug"]})
    shown["T. stddev ± SE"] = [_with_error(m, e, 6)
                               for m, e in zip(table.t_stddev, table.t_stddev_se, strict=True)]
    if "s_test_loss" in table:
        shown["S. test loss" + (" ± SE" if seeds > 1 else "")] = [
            _with_error(m, e, 4) for m, e in zip(table.s_test_loss, table.s_test_loss_se,
                                                 strict=True)]
        if table["s_test_loss_tier"].notna().all():
            shown["loss tier"] = table["s_test_loss_tier"].astype(int)
        shown["S. test acc (%)"] = [f"{v:.2f}" for v in table["s_test_acc"]]
    log(f"\nranking ({mode}; lowest T. stddev first; {seeds} seed{'s' if seeds > 1 else ''}):")
    log(_text_table(shown))
    log(f"  {summary['uncertainty']['t_stddev']}")
    tiers = summary["tiers"]
    log(f"  tiers (each DA against its tier's best: Welch test, Bonferroni, alpha "
        f"{tiers['alpha']:g}): "
        + describe_tiers(tiers["tiers"]))
    best = summary["recommended"]
    tied = f" (tied with {', '.join(best['tied_with'])})" if best["tied_with"] else ""
    log(f"recommended: {best['aug']}{tied}")
    for name in ("pearson", "spearman", "kendall"):
        if name in summary:
            c = summary[name]
            log(f"  {name:8s} r = {c['r']:+.3f}  p = {c['p']:.3g}  ({c['n']} DAs)")
    effect = summary.get("effect_vs_noise", {}).get("s_test_loss")
    if effect:
        verdict = "exceeds" if effect["anova_p"] < ALPHA else "does not exceed"
        log(f"  DA effect on S. test loss {verdict} seed noise: spread of the DA means "
            f"{effect['spread_std']:.4f} (std), seed noise {effect['seed_noise_std']:.4f}, "
            f"ANOVA F {effect['anova_f']:.2f}, p {effect['anova_p']:.3g}")
    if "s_test_loss_tiers" in summary:
        log("  S. test loss tiers: " + describe_tiers(summary["s_test_loss_tiers"]["tiers"]))
    agb = summary.get("agb_search")
    if agb:
        log(f"  AGB's lambda search scored each lambda on {agb['holdout_images']} held-out "
            f"images (SE of a held-out top-1 about {agb['top1_se_points']:.1f} points)")
    for warning in summary["warnings"]:
        log(f"warning: {warning}")


