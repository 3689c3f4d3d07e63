"""Render results folders into one self-contained HTML report and a Markdown report.

Per results folder, one panel:

* a scatter of T. stddev (x) against S. test loss (y), every DA labelled, a least-squares line
  and Pearson / Spearman / Kendall with p-values in the title (only with student results);
* the ranking as a bar chart, lowest T. stddev first, error bars where an SE (else a std)
  exists; with tiers (``augkd.rank``'s ``tier`` column) the tiers are shaded bands and the
  DAs carry no ordinal numbers, since tied DAs have no order;
* how sure the ranking is (from ``summary.json``): what ± means, the tiers, the
  recommendation, the S. test loss tiers and ANOVA, and the warnings;
* the correlations with their bootstrap intervals, the results table and the protocol.

``report.html`` embeds its PNGs as base64 data URIs (one file, no external resources);
``report.md`` references PNG files written beside it. Figures are drawn on
:class:`matplotlib.figure.Figure` objects with the Agg canvas, so no display and no pyplot
global state are involved.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as _dt
import html
import io
import json
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

import augkd
from augkd.metrics.correlation import correlations as compute_correlations
from augkd.report.labels import label_points
from augkd.report.results import CORRELATIONS, Results

__all__ = ["ReportPaths", "default_out_dir", "render_report"]

# The paper's nine DAs, in its T. stddev order (worst first), get fixed colours so a DA looks
# the same in every panel and every report; other names follow in first-seen order.
_KNOWN_AUGS = (
    "identity", "flip", "crop+flip", "cutout", "autoaugment", "mixup", "cutmix",
    "cutmixpick-s", "cutmixpick-t",
)
_GREEK = {"pearson": ("Pearson", "r"), "spearman": ("Spearman", "ρ"), "kendall": ("Kendall", "τ")}
_COLUMN_TITLES = {
    "aug": "DA",
    "s_test_loss_tier": "S. test loss tier",
    "t_stddev": "T. stddev",
    "s_test_loss": "S. test loss",
    "s_test_acc": "S. test acc (%)",
    "n_seeds": "seeds",
}
_DIGITS = {"t_stddev": 6, "s_test_loss": 4, "s_test_acc": 2}
_DPI = 150
# Figures are drawn at _DPI and shown at the CSS size of their inches (96 px each), so their
# text is as large as the page's and two figures sit side by side on a laptop screen.
_CSS_PX_PER_INCH = 96
_FIG_WIDTH = 5.8
_SCATTER_INCHES = (_FIG_WIDTH, 4.6)


@dataclasses.dataclass(frozen=True)
class ReportPaths:
    """Where a report was written: ``html`` and ``md`` files and the ``pngs`` beside them."""

    html: Path
    md: Path
    pngs: tuple[Path, ...]


# --------------------------------------------------------------------------------------------
# Helpers


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]+", "-", name).strip("-.") or "results"


def default_out_dir(results: Sequence[Results]) -> Path:
    """Where a report goes unless told: beside its results, in ``RESULTS/report/`` for one
    folder, and for several in ``report-<names joined by ->`` beside the first one."""
    if len(results) == 1:
        return Path(results[0].folder) / "report"
    name = "-".join(_slug(r.name) for r in results)
    return Path(results[0].folder).parent / ("report-" + name)[:96].rstrip("-")


def _palette(names: Sequence[str]) -> dict[str, tuple[float, float, float]]:
    """The nine paper DAs keep fixed colours; any other name gets one of its own."""
    base = sns.color_palette("tab10", 10)
    fixed = {a: base[i] for i, a in enumerate(_KNOWN_AUGS)}
    others = [a for a in dict.fromkeys(names) if a not in fixed]
    # tab10's last colour is free; more custom DAs get evenly spaced hues
    extra = [base[9]] + list(sns.color_palette("husl", max(1, len(others) - 1)))
    colours = {a: fixed[a] for a in _KNOWN_AUGS if a in names}
    colours.update(zip(others, extra, strict=False))
    return colours


def _fmt_p(p: float) -> str:
    if p is None or not math.isfinite(p):
        return "n/a"
    return f"{p:.2g}" if p >= 1e-3 else f"{p:.1e}"


def _fmt_float(value: Any, digits: int) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    return f"{value:.{digits}f}"


def _png(fig: Figure) -> bytes:
    if not isinstance(fig.canvas, FigureCanvasAgg):
        FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI, facecolor="white")
    return buf.getvalue()


def _style() -> Any:
    return sns.axes_style("whitegrid", {"grid.color": ".9", "axes.edgecolor": ".6"})


# --------------------------------------------------------------------------------------------
# Figures


def _student_points(res: Results) -> pd.DataFrame:
    if not res.has_student:
        return pd.DataFrame(columns=res.table.columns)
    table = res.table
    keep = np.isfinite(table["t_stddev"]) & np.isfinite(table["s_test_loss"])
    return table[keep].reset_index(drop=True)


def _panel_correlations(res: Results) -> tuple[dict[str, dict[str, Any]], str]:
    """Correlations from summary.json, else computed from the table; and where they came from."""
    if res.correlations:
        return res.correlations, "summary.json"
    points = _student_points(res)
    try:
        return (
            compute_correlations(points["t_stddev"], points["s_test_loss"]),
            "computed by the report from results.csv",
        )
    except ValueError as err:
        return {}, f"not available: {err}"


def _power_of_ten(values: np.ndarray) -> int:
    """The exponent k that puts the largest finite ``|value|`` in [1, 10) (0 if none)."""
    finite = np.abs(values[np.isfinite(values)])
    top = float(finite.max()) if len(finite) else 0.0
    return int(math.floor(math.log10(top))) if top > 0 else 0


def _unit(exponent: int) -> str:
    return f" (×10$^{{{exponent}}}$)" if exponent else ""


def _scatter(res: Results, palette: dict, corr: dict[str, dict[str, Any]]) -> bytes:
    points = _student_points(res)
    raw_x = points["t_stddev"].to_numpy(float)
    exponent = _power_of_ten(raw_x)
    scale = 10.0 ** exponent  # the x axis shows T. stddev / scale; its label names the scale
    x = raw_x / scale
    y = points["s_test_loss"].to_numpy(float)
    size = 70.0
    with _style(), sns.plotting_context("notebook", font_scale=0.95):
        fig = Figure(figsize=_SCATTER_INCHES, dpi=_DPI, layout="constrained")
        FigureCanvasAgg(fig)
        ax = fig.subplots()
        spread = _seeds(points) > 1  # one seed has no spread: no zero-width bars
        xerr = points["t_stddev_std"].fillna(0).to_numpy(float) / scale \
            if spread and "t_stddev_std" in points else None
        yerr = points["s_test_loss_std"].fillna(0).to_numpy(float) \
            if spread and "s_test_loss_std" in points else None
        if xerr is not None or yerr is not None:
            ax.errorbar(x, y, xerr=xerr, yerr=yerr, fmt="none", ecolor=".6", elinewidth=0.9,
                        capsize=2.5, zorder=2)
        if len(x) >= 2 and np.ptp(x) > 0:
            slope, intercept = np.polyfit(x, y, 1)
            margin = 0.06 * np.ptp(x)
            xs = np.array([x.min() - margin, x.max() + margin])
            ax.plot(xs, slope * xs + intercept, ls="--", lw=1.2, color=".45", zorder=1,
                    label=fit_label(intercept, slope / scale))
            fig.legend(loc="outside lower center", frameon=False, fontsize=9.5)
        sns.scatterplot(x=x, y=y, hue=list(points["aug"]), palette=palette, s=size,
                        edgecolor="white", linewidth=1.0, legend=False, ax=ax, zorder=3)
        ax.margins(x=0.14, y=0.12)
        ax.set_xlabel(f"T. stddev, teacher only{_unit(exponent)}")
        ax.set_ylabel("S. test loss")
        if corr:
            parts = [
                f"{_GREEK[k][0]} {_GREEK[k][1]} = {corr[k]['r']:.3f} (p = {_fmt_p(corr[k]['p'])})"
                for k in CORRELATIONS if k in corr
            ]
            title = parts[0] + ("\n" + "   ".join(parts[1:]) if len(parts) > 1 else "")
        else:
            title = "correlation not available (needs at least 3 DAs with student results)"
        ax.set_title(title, fontsize=10.5, loc="left")
        label_points(ax, x, y, [_plain(a) for a in points["aug"]], size)
        return _png(fig)


def fit_label(intercept: float, slope: float) -> str:
    """The least-squares line as it reads: ``S. test loss = 1.853 − 1.896 × T. stddev``."""
    sign = "−" if slope < 0 else "+"
    return (f"least squares: S. test loss = {intercept:.4g} {sign} {abs(slope):.4g} "
            "× T. stddev")


def _plain(label: str) -> str:
    """``label`` drawn as written: matplotlib reads text between two ``$`` as mathtext (a DA
    named ``$\\frac{$`` would fail to parse)."""
    return label.replace("$", r"\$")


def _wrap_spec(label: str, width: int = 32) -> str:
    """A long DA spec on as many lines of about ``width`` characters as it needs, broken after
    a ``,`` or before a ``|``, never cut: a long kornia or albumentations pipeline stays
    readable in full instead of ending at the figure's edge."""
    if len(label) <= width:
        return label
    lines: list[str] = []
    for piece in re.split(r"(?<=,)\s+|\s+(?=\|)", label):
        if lines and len(lines[-1]) + 1 + len(piece) <= width:
            lines[-1] += " " + piece
        else:
            lines.append(piece)
    return "\n".join(lines)


def _seeds(table: pd.DataFrame) -> int:
    """The most seeds behind any row (1 when the table does not say)."""
    if "n_seeds" in table and table["n_seeds"].notna().any():
        return int(table["n_seeds"].max())
    return 1


def _error_column(table: pd.DataFrame) -> str | None:
    """The column of the ranking's error bars: the SE where one exists, else the seed std
    (none with one seed: its std is not a spread)."""
    for column in ("t_stddev_se", "t_stddev_std"):
        if column == "t_stddev_std" and _seeds(table) < 2:
            continue
        if column in table and table[column].notna().any():
            return column
    return None


def _bars_caption(table: pd.DataFrame, scatter: bool = False) -> str:
    """What a figure's error bars are, in one sentence."""
    seeds = _seeds(table)
    if scatter:
        if seeds < 2:
            return "No error bars: one seed per DA, so no seed spread to show."
        return (f"Error bars: ± one standard deviation over the {seeds} seeds, of T. stddev "
                "(horizontal) and of S. test loss (vertical).")
    column = _error_column(table)
    if column == "t_stddev_se":
        how = ("by bootstrap over the groups of one run" if seeds < 2 else
               f"of the mean over {seeds} seeds, sqrt(max(s², b²) / n) with s the seed std and "
               "b the runs' bootstrap SE")
        return f"Error bars: ± one standard error of T. stddev, {how}."
    if column == "t_stddev_std":
        return f"Error bars: ± one standard deviation of T. stddev over {seeds} seeds."
    return "No error bars: one seed and no standard error recorded."


def _has_tiers(table: pd.DataFrame) -> bool:
    return "tier" in table and bool(table["tier"].notna().all())


def _ranking(res: Results, palette: dict) -> bytes:
    table = res.table.sort_values("t_stddev", kind="stable").reset_index(drop=True)
    values = table["t_stddev"].to_numpy(float)
    exponent = _power_of_ten(values)
    scale = 10.0 ** exponent
    err_column = _error_column(table)
    err = table[err_column].fillna(0).to_numpy(float) / scale if err_column else None
    tiers = table["tier"].astype(int).to_numpy() if _has_tiers(table) else None
    with _style(), sns.plotting_context("notebook", font_scale=0.95):
        if tiers is None:
            labels = [_plain(_wrap_spec(f"{i + 1}. {a}")) for i, a in enumerate(table["aug"])]
        else:  # tied DAs have no order: no ordinal numbers, the tier bands say it
            labels = [_plain(_wrap_spec(str(a))) for a in table["aug"]]
        lines = sum(max(1, label.count("\n") + 1) for label in labels)
        widest = max(len(line) for label in labels for line in label.split("\n"))
        width = _FIG_WIDTH + max(0.0, 0.075 * (widest - 16))  # room for long (external) specs
        height = 1.2 + 0.4 * len(table) + 0.25 * (lines - len(table)) + 0.3 * (tiers is not None)
        fig = Figure(figsize=(width, height), dpi=_DPI, layout="constrained")
        ax = fig.subplots()
        pos = np.arange(len(table))
        ax.barh(pos, values / scale, xerr=err, color=[palette[a] for a in table["aug"]],
                edgecolor="white", height=0.7, error_kw={"ecolor": ".3", "capsize": 3, "lw": 1})
        ax.set_yticks(pos, labels, fontsize=9 if widest > 24 else None)
        ends = values / scale + (err if err is not None else 0.0)
        for p, v, end in zip(pos, values / scale, ends, strict=True):
            if math.isfinite(v):
                ax.annotate(f"{v:.3f}", (end, p), xytext=(5, 0), textcoords="offset points",
                            va="center", fontsize=9.5, color=".25")
        title = "ranking: lowest T. stddev first\n(the predicted best DA on top)"
        if tiers is not None:
            _tier_bands(ax, tiers)
            seeds = int(table["n_seeds"].min()) if "n_seeds" in table else None
            bars = {"t_stddev_se": "± SE", "t_stddev_std": "± seed std"}.get(err_column, "")
            bits = [b for b in (f"bars {bars}" if bars else "",
                                f"{seeds} seed{'s' if seeds != 1 else ''}" if seeds else "") if b]
            title = ("ranking: lowest T. stddev first; shaded bands = tiers\n(DAs in one tier "
                     "are tied" + (f"; {', '.join(bits)}" if bits else "") + ")")
        ax.set_ylim(len(table) - 0.5, -0.5)  # the best (lowest T. stddev) on top
        ax.set_xlabel(f"T. stddev{_unit(exponent)}")
        ax.set_title(title, fontsize=10.5, loc="left")
        ax.grid(axis="y", visible=False)
        ax.margins(x=0.12)
        return _png(fig)


def _tier_bands(ax: Any, tiers: np.ndarray) -> None:
    """Shade every other tier and name each one right of the axes, beside its rows."""
    for n, tier in enumerate(dict.fromkeys(tiers.tolist())):
        rows = np.flatnonzero(tiers == tier)
        low, high = rows.min() - 0.5, rows.max() + 0.5
        if n % 2 == 0:
            ax.axhspan(low, high, color=".93", zorder=0, lw=0)
        if n:
            ax.axhline(low, color=".6", lw=0.8, ls=":", zorder=1)
        label = f"tier {tier}" + ("\n(tied)" if len(rows) > 1 else "")
        ax.annotate(label, (1.0, (low + high) / 2), xycoords=("axes fraction", "data"),
                    xytext=(6, 0), textcoords="offset points", ha="left", va="center",
                    fontsize=9, color=".3", style="italic", annotation_clip=False)


# --------------------------------------------------------------------------------------------
# Tables


def _display_table(res: Results) -> pd.DataFrame:
    """The results table as strings: rank (or, with tiers, the tier), DA, mean ± error columns,
    then any other columns. The error is the SE where an ``_se`` column exists (the seed std
    then gets its own column), else the std."""
    table = res.table.sort_values("t_stddev", kind="stable").reset_index(drop=True)
    tiered = _has_tiers(table)
    out = (pd.DataFrame({"tier": [str(int(t)) for t in table["tier"]]}) if tiered
           else pd.DataFrame({"rank": range(1, len(table) + 1)}))
    for column in table.columns:
        if column in ("rank", "tier"):
            continue  # recomputed above from t_stddev, or the first column
        base = column.rsplit("_", 1)[0]
        if column.endswith("_se") and base in _DIGITS and base in table:
            continue  # shown as "mean ± SE" in its base column
        if column.endswith("_std") and base in _DIGITS and base in table \
                and base + "_se" not in table:
            continue  # shown as "mean ± std" in its base column
        title = _COLUMN_TITLES.get(column, column)
        if column in _DIGITS:
            digits = _DIGITS[column]
            # the SE where one exists (a one-seed student loss has none), else the seed std
            # (none with one seed: a std of one value is 0, not a spread)
            kind = next((s for s in ("_se", "_std") if column + s in table
                         and table[column + s].notna().any()
                         and (s == "_se" or _seeds(table) > 1)), None)
            error = table[column + kind] if kind else None
            if kind == "_se":
                title += " ± SE"
            elif kind == "_std" and tiered:  # beside "± SE" columns, say which ± this is
                title += " ± seed std"
            cells = []
            for i, v in enumerate(table[column]):
                cell = _fmt_float(float(v), digits)
                if error is not None and cell and math.isfinite(float(error.iloc[i])):
                    cell += f" ± {_fmt_float(float(error.iloc[i]), digits)}"
                cells.append(cell)
            out[title] = cells
        elif column.endswith("_std") and base in _DIGITS:
            if table[column].notna().any() and _seeds(table) > 1:  # the seed spread beside a
                # mean ± SE column
                out[f"{_COLUMN_TITLES.get(base, base)} seed std"] = [
                    _fmt_float(float(v), _DIGITS[base]) for v in table[column]]
        elif column == "s_test_loss_tier":
            out[title] = [str(int(v)) if pd.notna(v) else "" for v in table[column]]
        elif column == "n_seeds":
            out[title] = [str(int(v)) if pd.notna(v) else "" for v in table[column]]
        elif pd.api.types.is_float_dtype(table[column]):
            out[title] = [f"{v:.4g}" if pd.notna(v) else "" for v in table[column]]
        else:
            out[title] = ["" if pd.isna(v) else str(v) for v in table[column]]
    return out


def _correlation_table(corr: dict[str, dict[str, Any]]) -> pd.DataFrame:
    rows = []
    for key in CORRELATIONS:
        if key not in corr:
            continue
        entry = corr[key]
        low, high = entry.get("ci_low"), entry.get("ci_high")
        ci = ""
        if isinstance(low, int | float) and isinstance(high, int | float):
            ci = f"[{low:.3f}, {high:.3f}]"
        rows.append({
            "coefficient": f"{_GREEK[key][0]} {_GREEK[key][1]}",
            "value": _fmt_float(entry.get("r"), 3),
            "p": _fmt_p(entry.get("p")),
            "bootstrap CI": ci,
            "points": "" if entry.get("n") is None else str(entry.get("n")),
        })
    return pd.DataFrame(rows)


def _key_values(mapping: dict[str, Any]) -> pd.DataFrame:
    def show(v: Any) -> str:
        text = v if isinstance(v, str) else json.dumps(v, ensure_ascii=False, default=str)
        return text if len(text) <= 240 else text[:237] + "..."

    return pd.DataFrame({"key": list(mapping), "value": [show(v) for v in mapping.values()]})


# Markdown markup in a value: inline markup backslash-escaped (CommonMark and Python-Markdown both
# take these escapes), block markup escaped at the start; <, >, & and ~ become entities, so no
# value is read as HTML, an autolink, an entity or a strikethrough.
_MD_ESCAPED = re.compile(r"([\\`*_\[\]!|])")
# block markup needs a space (or the line's end) after its marker: "0.864" and "-0.105" are text
_MD_BLOCK_START = re.compile(r"^(\s*)([#+\-=]|\d+(?=[.)]))(?=[.)]?(\s|$))")
_MD_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", "~": "&#126;"}


def _md(value: Any) -> str:
    """``value`` as Markdown text that renders as itself: no element, attribute or link of
    its own (a DA name, column name or summary value may hold ``<script>`` or ``[x](url)``)."""
    text = " ".join(str(value).splitlines())
    text = _MD_ESCAPED.sub(r"\\\1", text)
    text = _MD_BLOCK_START.sub(lambda m: m.group(1) + ("\\" + m.group(2) if not
                                                       m.group(2).isdigit() else m.group(2)
                                                       + "\\"), text)
    text = "".join(_MD_ENTITIES.get(c, c) for c in text)
    # bare URLs (GFM's autolinks): break the scheme's "://" and "www." with an entity
    text = text.replace("://", "&#58;//")
    return re.sub(r"(?i)\bwww\.", lambda m: m.group(0)[:3] + "&#46;", text)


def _markdown_table(df: pd.DataFrame) -> str:
    def cell(v: Any) -> str:
        return _md(v)

    head = "| " + " | ".join(cell(c) for c in df.columns) + " |"
    rule = "|" + "|".join("---" for _ in df.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, rule, *body])


_NUMBER = re.compile(r"[-+]?(\d[\d.,]*(e[-+]?\d+)?|n/a)( ± \d[\d.]*(e[-+]?\d+)?)?"
                     r"|\[[-+\d.e]+, [-+\d.e]+\]", re.IGNORECASE)


def _html_table(df: pd.DataFrame) -> str:
    """``df`` as an HTML table in a wrapper that scrolls sideways rather than widen the page;
    columns that hold only numbers are right-aligned in tabular figures."""
    esc = html.escape
    cells = [[str(v) for v in df[c]] for c in df.columns]
    numeric = [any(cells[j]) and all(_NUMBER.fullmatch(v) or not v for v in cells[j])
               for j in range(len(df.columns))]

    def cls(j: int) -> str:
        return ' class="num"' if numeric[j] else ""

    head = "".join(f"<th{cls(j)}>{esc(str(c))}</th>" for j, c in enumerate(df.columns))
    body = "".join(
        "<tr>" + "".join(f"<td{cls(j)}>{esc(cells[j][i])}</td>" for j in range(len(df.columns)))
        + "</tr>" for i in range(len(df))
    )
    return (f'<div class="tbl-wrap"><table class="tbl"><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table></div>")


def _png_size(data: bytes) -> tuple[int, int]:
    """Width and height in pixels, from a PNG's IHDR chunk."""
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def _html_img(data: bytes, alt: str) -> str:
    """An embedded PNG shown at the CSS size of its inches (see ``_CSS_PX_PER_INCH``)."""
    width, height = (round(v * _CSS_PX_PER_INCH / _DPI) for v in _png_size(data))
    src = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
    return f'<img alt="{html.escape(alt)}" width="{width}" height="{height}" src="{src}">'


# --------------------------------------------------------------------------------------------
# Panels and the document


@dataclasses.dataclass
class _Panel:
    res: Results
    slug: str
    subtitle: str
    scatter: bytes | None
    scatter_note: str
    ranking: bytes
    corr: pd.DataFrame
    corr_source: str
    table: pd.DataFrame
    protocol: pd.DataFrame
    extra: pd.DataFrame
    certainty: list[str] = dataclasses.field(default_factory=list)
    captions: tuple[str, ...] = ()  # what the figures' error bars are


#: summary.json entries shown as "How sure the ranking is" rather than as raw entries.
_CERTAINTY_KEYS = ("uncertainty", "tiers", "recommended", "s_test_loss_tiers", "agb_search",
                   "warnings")


def _tier_text(entry: Any) -> str:
    groups = entry.get("tiers") if isinstance(entry, dict) else None
    if not isinstance(groups, list):
        return ""
    return "; ".join(f"tier {i}: {', '.join(map(str, g))}" + (" (tied)" if len(g) > 1 else "")
                     for i, g in enumerate(groups, start=1) if isinstance(g, list))


def _certainty(summary: dict[str, Any]) -> list[str]:
    """How sure the ranking is, as plain sentences from summary.json (empty for folders
    written before augkd.rank measured uncertainties)."""
    lines = []
    rec = summary.get("recommended")
    if isinstance(rec, dict) and rec.get("aug"):
        tied = rec.get("tied_with") or []
        lines.append(f"Recommended: {rec['aug']}"
                     + (f" (tied with {', '.join(map(str, tied))})" if tied else "") + ".")
    note = (summary.get("uncertainty") or {}).get("t_stddev")
    if note:
        lines.append(f"T. stddev: {note}.")
    tiers = summary.get("tiers")
    if _tier_text(tiers):
        alpha = tiers.get("alpha")
        lines.append(f"T. stddev tiers ({tiers.get('method', '')}"
                     + (f", alpha {alpha:g}" if isinstance(alpha, int | float) else "")
                     + f"): {_tier_text(tiers)}.")
    if _tier_text(summary.get("s_test_loss_tiers")):
        lines.append(f"S. test loss tiers: {_tier_text(summary['s_test_loss_tiers'])}.")
    effect = (summary.get("effect_vs_noise") or {}).get("s_test_loss")
    if isinstance(effect, dict) and isinstance(effect.get("anova_p"), int | float):
        verdict = "exceeds" if effect["anova_p"] < 0.05 else "does not exceed"
        lines.append(f"The DA effect on S. test loss {verdict} seed noise: one-way ANOVA over "
                     f"{effect.get('das')} DAs x {effect.get('seeds')} seeds, F "
                     f"{effect.get('anova_f', float('nan')):.2f}, p {_fmt_p(effect['anova_p'])}.")
    agb = summary.get("agb_search")
    if isinstance(agb, dict) and agb.get("holdout_images"):
        lines.append(f"AGB's lambda search scored each lambda on {agb['holdout_images']} "
                     f"held-out images (SE of a held-out top-1 about "
                     f"{agb.get('top1_se_points', float('nan')):.1f} points).")
    lines += [f"Warning: {w}" for w in summary.get("warnings") or [] if isinstance(w, str)]
    return lines


def _subtitle(protocol: dict[str, Any]) -> str:
    pair = " → ".join(str(protocol[k]) for k in ("teacher", "student")
                      if protocol.get(k) is not None)
    bits = [b for b in (pair, str(protocol.get("dataset", ""))) if b]
    return " · ".join(bits)


def _build_panel(res: Results, slug: str, palette: dict) -> _Panel:
    corr, source = _panel_correlations(res) if res.has_student else ({}, "")
    scatter, note = None, ""
    if res.has_student:
        scatter = _scatter(res, palette, corr)
    else:
        note = ("No student results in this folder (no S. test loss): the scatter against "
                "S. test loss and the correlations are skipped; the ranking is by T. stddev only.")
    certainty = _certainty(res.summary)
    skip = {"format", "protocol", *CORRELATIONS, *(_CERTAINTY_KEYS if certainty else ())}
    extra = {k: v for k, v in res.summary.items() if k not in skip}
    return _Panel(
        res=res, slug=slug, subtitle=_subtitle(res.protocol), scatter=scatter, scatter_note=note,
        ranking=_ranking(res, palette), corr=_correlation_table(corr), corr_source=source,
        table=_display_table(res), protocol=_key_values(res.protocol), extra=_key_values(extra),
        certainty=certainty,
        captions=tuple(c for c in (
            "Scatter: " + _bars_caption(_student_points(res), scatter=True)
            if scatter is not None else "",
            "Ranking: " + _bars_caption(res.table)) if c),
    )


_CSS = """
body{font-family:-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;color:#222;
  max-width:1180px;margin:2em auto;padding:0 1em;line-height:1.45}
h1{font-size:1.7em;margin-bottom:.2em} h2{border-bottom:2px solid #ddd;padding-bottom:.2em;
  margin-top:2.2em;overflow-wrap:anywhere} h3{font-size:1.05em;margin:1.3em 0 .4em;color:#444}
.meta,.sub,.note{color:#666} .note{background:#f6f6f6;border-left:4px solid #bbb;padding:.6em 1em}
.figs{display:flex;flex-wrap:wrap;gap:1em;align-items:flex-start}
.figs img{max-width:100%;height:auto;border:1px solid #eee}
.tbl-wrap{max-width:100%;overflow-x:auto}
table.tbl{border-collapse:collapse;font-size:.92em;margin:.3em 0}
table.tbl th,table.tbl td{padding:.3em .8em;border-bottom:1px solid #e4e4e4;text-align:left;
  vertical-align:top}
table.tbl th,table.tbl td:first-child{white-space:nowrap}
table.tbl td:last-child{overflow-wrap:anywhere}
table.tbl .num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
table.tbl th{background:#f3f3f3} table.tbl tr:hover td{background:#fafafa}
"""


def _html(title: str, panels: list[_Panel], generated: str) -> str:
    esc = html.escape
    parts = [
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        f"<title>{esc(title)}</title>", f"<style>{_CSS}</style>", "</head>", "<body>",
        f"<h1>{esc(title)}</h1>", f'<p class="meta">{esc(generated)}</p>',
    ]
    if len(panels) > 1:
        parts.append("<ul>" + "".join(
            f'<li><a href="#{esc(p.slug)}">{esc(p.res.name)}</a></li>' for p in panels
        ) + "</ul>")
    for p in panels:
        parts.append(f'<h2 id="{esc(p.slug)}">{esc(p.res.name)}</h2>')
        if p.subtitle:
            parts.append(f'<p class="sub">{esc(p.subtitle)}</p>')
        figs = []
        if p.scatter is not None:
            figs.append(_html_img(p.scatter, "T. stddev vs S. test loss"))
        figs.append(_html_img(p.ranking, "ranking by T. stddev"))
        if p.scatter_note:
            parts.append(f'<p class="note">{esc(p.scatter_note)}</p>')
        parts.append('<div class="figs">' + "".join(figs) + "</div>")
        parts += [f'<p class="meta">{esc(c)}</p>' for c in p.captions]
        if len(p.corr):
            parts += ["<h3>Correlation of T. stddev with S. test loss</h3>", _html_table(p.corr),
                      f'<p class="meta">source: {esc(p.corr_source)}</p>']
        if p.certainty:
            parts += ["<h3>How sure the ranking is</h3>",
                      "<ul>" + "".join(f"<li>{esc(line)}</li>" for line in p.certainty) + "</ul>"]
        parts += ["<h3>Results</h3>", _html_table(p.table)]
        parts += ["<h3>Protocol</h3>",
                  _html_table(p.protocol) if len(p.protocol) else "<p>(not recorded)</p>"]
        if len(p.extra):
            parts += ["<h3>Other summary entries</h3>", _html_table(p.extra)]
    parts += ["</body>", "</html>", ""]
    return "\n".join(parts)


def _markdown(title: str, panels: list[_Panel], generated: str, pngs: dict[str, str]) -> str:
    lines = [f"# {_md(title)}", "", f"_{_md(generated)}_", ""]
    for p in panels:
        lines += [f"## {_md(p.res.name)}", ""]
        if p.subtitle:
            lines += [_md(p.subtitle), ""]
        if p.scatter is not None:
            lines += [f"![T. stddev vs S. test loss]({pngs[p.slug + ':scatter']})", ""]
        else:
            lines += [f"> {_md(p.scatter_note)}", ""]
        lines += [f"![ranking by T. stddev]({pngs[p.slug + ':ranking']})", ""]
        lines += [f"_{_md(c)}_\n" for c in p.captions]
        if len(p.corr):
            lines += ["### Correlation of T. stddev with S. test loss", "",
                      _markdown_table(p.corr), "", f"source: {_md(p.corr_source)}", ""]
        if p.certainty:
            lines += ["### How sure the ranking is", "",
                      *(f"- {_md(line)}" for line in p.certainty), ""]
        lines += ["### Results", "", _markdown_table(p.table), ""]
        lines += ["### Protocol", "",
                  _markdown_table(p.protocol) if len(p.protocol) else "(not recorded)", ""]
        if len(p.extra):
            lines += ["### Other summary entries", "", _markdown_table(p.extra), ""]
    return "\n".join(lines)


def render_report(
    results: Sequence[Results], out: str | Path, *, title: str | None = None
) -> ReportPaths:
    """Write ``report.html`` (self-contained) and ``report.md`` with its PNGs into ``out``.

    Args:
        results: loaded results folders; one panel each, in the given order.
        out: output folder (created if needed).
        title: the report's title; default "T. stddev report: <folder names>".

    Returns:
        :class:`ReportPaths` of the written files.
    """
    if not results:
        raise ValueError("render_report needs at least one results folder")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    title = title or "T. stddev report: " + ", ".join(r.name for r in results)
    palette = _palette([a for r in results for a in r.table["aug"]])

    panels: list[_Panel] = []
    seen: dict[str, int] = {}
    for res in results:
        slug = _slug(res.name)
        seen[slug] = seen.get(slug, 0) + 1
        if seen[slug] > 1:
            slug = f"{slug}-{seen[slug]}"
        panels.append(_build_panel(res, slug, palette))

    pngs: dict[str, str] = {}
    written: list[Path] = []
    for p in panels:
        for kind, data in (("scatter", p.scatter), ("ranking", p.ranking)):
            if data is None:
                continue
            path = out / f"{p.slug}-{kind}.png"
            path.write_bytes(data)
            pngs[f"{p.slug}:{kind}"] = path.name
            written.append(path)

    now = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    generated = f"generated by augkd {augkd.__version__} on {now}"
    html_path, md_path = out / "report.html", out / "report.md"
    html_path.write_text(_html(title, panels, generated), encoding="utf-8")
    md_path.write_text(_markdown(title, panels, generated, pngs), encoding="utf-8")
    return ReportPaths(html=html_path, md=md_path, pngs=tuple(written))
