"""The HTML report as a person sees it: rendered in headless Chromium, driven by Playwright.

The report of a small study (a folder with student results and a teacher-only folder) is opened
from disk, as a user opens it, and read the way a reader would: every plot loaded and visible
with ink in it, every table filled, nothing wider than the window, no console error, and no
request for anything but the file itself and its ``data:`` images.

The browser is Debian's Chromium (``/usr/bin/chromium``, or ``AUGKD_CHROMIUM``); `.ci/run`
installs it. Without a browser these tests skip, unless ``AUGKD_REQUIRE_BROWSER=1`` (set by
`.ci/run`), where they fail instead, so CI cannot pass by skipping them.

``python tests/test_report_browser.py REPORT.html OUT.png`` writes a full-page screenshot.
"""

from __future__ import annotations

import io
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from augkd.metrics import correlations
from augkd.report import build_report, write_results

#: Without these, Chromium keeps calling Google's hosts, which a closed network refuses.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]

AUGS = ["identity", "flip", "crop+flip", "cutout", "autoaugment", "mixup", "cutmix",
        "cutmixpick-s", "cutmixpick-t"]
# the CIFAR-10 CPU study's per-DA means (reports/cifar10-cpu/per_da.csv): seven DAs within
# 4 % of each other in T. stddev, the crowded case for the scatter's labels
T_STDDEV = np.array([11.589, 11.381, 11.200, 11.413, 15.213, 11.304, 11.414, 9.469, 8.889]) * 1e-3
S_LOSS = np.array([1.2918, 1.2660, 1.2696, 1.2668, 1.3075, 1.2852, 1.2594, 1.2547, 1.2247])
LONG_PATH = "/data/" + "/".join(["a_long_folder_name_with_no_break"] * 6) + "/cifar10_jpeg.tar.xz"


def _chromium() -> str | None:
    path = os.environ.get("AUGKD_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    return path if Path(path).is_file() else None


def _no_browser(reason: str) -> None:
    if os.environ.get("AUGKD_REQUIRE_BROWSER") == "1":
        pytest.fail(f"AUGKD_REQUIRE_BROWSER=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _no_browser("Playwright is not installed (pip install -e '.[test]')")
    executable = _chromium()
    if executable is None:
        _no_browser("no Chromium at /usr/bin/chromium or $AUGKD_CHROMIUM "
                    "(Debian: apt-get install chromium)")
    with sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=executable, headless=True,
                                      args=CHROMIUM_ARGS)
        yield launched
        launched.close()


class Visit:
    """One page opened from disk, with everything it asked for and complained about."""

    def __init__(self, browser, path: Path, width: int = 1280) -> None:
        self.url = path.resolve().as_uri()
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.context = browser.new_context(viewport={"width": width, "height": 900},
                                           device_scale_factor=1)
        # nothing may leave the machine: every request but the file itself is aborted, and
        # recorded either way
        self.context.route("**/*", lambda route: route.continue_()
                           if route.request.url == self.url else route.abort())
        self.page = self.context.new_page()
        self.page.on("request", lambda request: self.requests.append(request.url))
        self.page.on("console", lambda msg: msg.type == "error" and self.errors.append(msg.text))
        self.page.on("pageerror", lambda err: self.errors.append(str(err)))
        self.page.on("requestfailed", lambda request: self.errors.append(
            f"request failed: {request.url}"))
        self.page.goto(self.url, wait_until="load")

    def outside(self) -> list[str]:
        """The requests for anything but the page itself and ``data:`` URLs."""
        return [u for u in self.requests if u != self.url and not u.startswith("data:")]

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def visit(browser):
    opened: list[Visit] = []

    def open_page(path: Path, width: int = 1280) -> Visit:
        opened.append(Visit(browser, path, width))
        return opened[-1]

    yield open_page
    for v in opened:
        v.close()


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    """A small study's report: one folder with students, one with the teacher only."""
    root = tmp_path_factory.mktemp("study")
    table = pd.DataFrame({
        "aug": AUGS, "t_stddev": T_STDDEV, "t_stddev_std": T_STDDEV * 0.02,
        "s_test_loss": S_LOSS, "s_test_loss_std": [0.012] * 9,
        "s_test_acc": np.linspace(54.0, 56.4, 9), "s_test_acc_std": [0.5] * 9, "n_seeds": [5] * 9,
    })
    protocol = {"dataset": "imagefolder", "dataset_source": LONG_PATH, "teacher": "resnet20",
                "student": "resnet8", "student_epochs": 15, "mode": "per-batch", "seeds": 5}
    write_results(root / "resnet20-resnet8", table,
                  {"protocol": protocol, **correlations(T_STDDEV, S_LOSS, n_boot=200)})
    write_results(root / "teacher-only", table[["aug", "t_stddev"]],
                  {"protocol": {"teacher": "resnet56", "dataset": "cifar10"}})
    return build_report([root / "resnet20-resnet8", root / "teacher-only"], root / "report",
                        title="A small study")


def _ink(png: bytes) -> tuple[float, int]:
    """The share of pixels that are not (near) white, and the number of distinct colours."""
    from PIL import Image

    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).reshape(-1, 3)
    share = float((pixels.min(axis=1) < 235).mean())
    return share, len(np.unique(pixels, axis=0))


# --------------------------------------------------------------------------------------------


def test_every_plot_is_loaded_visible_and_drawn(study, visit) -> None:
    page = visit(study).page
    images = page.locator("img")
    assert images.count() == 3  # scatter + ranking, then the teacher-only panel's ranking
    facts = images.evaluate_all("""els => els.map(e => {
        const r = e.getBoundingClientRect(), s = getComputedStyle(e);
        return {alt: e.alt, complete: e.complete, nw: e.naturalWidth, nh: e.naturalHeight,
                w: r.width, h: r.height, right: r.right, display: s.display,
                visibility: s.visibility, opacity: s.opacity};
    })""")
    width = page.evaluate("document.documentElement.clientWidth")
    for i, f in enumerate(facts):
        assert f["complete"] and f["nw"] > 0 and f["nh"] > 0, f  # decoded
        assert f["w"] > 200 and f["h"] > 150, f  # shown at a readable size
        assert f["display"] != "none" and f["visibility"] == "visible" and f["opacity"] == "1"
        assert f["right"] <= width, f  # inside the window
        assert abs(f["w"] / f["h"] - f["nw"] / f["nh"]) < 0.02, f  # not stretched
        assert f["w"] <= f["nw"], f  # never blown up past its pixels
        assert images.nth(i).is_visible()
        share, colours = _ink(images.nth(i).screenshot())
        assert share > 0.03 and colours > 16, (f["alt"], share, colours)  # a drawing, not blank


def test_every_table_is_filled(study, visit) -> None:
    page = visit(study).page
    tables = page.locator("table.tbl")
    assert tables.count() == 5  # correlations, results, protocol; then results, protocol
    shapes = tables.evaluate_all("""ts => ts.map(t => ({
        head: [...t.querySelectorAll('thead th')].map(c => c.innerText.trim()),
        rows: [...t.querySelectorAll('tbody tr')].map(
            r => [...r.querySelectorAll('td')].map(c => c.innerText.trim())),
        visible: t.getBoundingClientRect().height > 0,
    }))""")
    for shape in shapes:
        assert shape["visible"] and len(shape["head"]) >= 2 and all(shape["head"]), shape
        assert shape["rows"], shape
        for row in shape["rows"]:
            assert len(row) == len(shape["head"]) and any(row), shape
    # headers and row names (DA, key) read on one line: only values may wrap
    broken = tables.locator("th, td:first-child").evaluate_all("""cells => cells.filter(c => {
        const r = document.createRange(); r.selectNodeContents(c);
        return new Set([...r.getClientRects()].map(b => Math.round(b.top))).size > 1;
    }).map(c => c.innerText)""")
    assert broken == []
    correlation, results = shapes[0], shapes[1]
    assert [r[0] for r in correlation["rows"]] == ["Pearson r", "Spearman ρ", "Kendall τ"]
    assert all(r[1] and r[2] for r in correlation["rows"])  # value and p
    assert results["head"][:3] == ["rank", "DA", "T. stddev"]
    by_t_stddev = [AUGS[i] for i in np.argsort(T_STDDEV, kind="stable")]
    assert [r[1] for r in results["rows"]] == by_t_stddev
    assert all("±" in r[2] for r in results["rows"])  # mean ± std


@pytest.mark.parametrize("width", [1280, 720])
def test_nothing_is_wider_than_the_window(study, visit, width) -> None:
    page = visit(study, width).page
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    # at a laptop's width, no table even scrolls inside its box (the long path wraps)
    hidden = page.locator(".tbl-wrap").evaluate_all(
        "ws => ws.filter(w => w.scrollWidth > w.clientWidth + 1).length")
    if width >= 1280:
        assert hidden == 0
    if width >= 1180:  # the two figures side by side
        tops = page.locator(".figs").first.locator("img").evaluate_all(
            "els => els.map(e => e.getBoundingClientRect().top)")
        assert tops[0] == tops[1]


def test_no_console_errors_and_no_request_leaves_the_file(study, visit) -> None:
    v = visit(study)
    v.page.wait_for_load_state("networkidle")
    assert v.errors == []
    assert v.outside() == []
    assert v.url in v.requests


def test_the_request_check_sees_an_outside_request(tmp_path, visit) -> None:
    """The control: a page that asks for something outside is caught (and stopped)."""
    page = tmp_path / "leaky.html"
    page.write_text('<!DOCTYPE html><html><body><img src="http://example.invalid/plot.png">'
                    '<link rel="stylesheet" href="https://example.invalid/s.css"></body></html>')
    v = visit(page)
    v.page.wait_for_load_state("networkidle")
    assert sorted(v.outside()) == ["http://example.invalid/plot.png",
                                   "https://example.invalid/s.css"]
    assert v.errors  # the aborted loads are reported


def test_scatter_labels_overlap_nothing(tmp_path) -> None:
    """The crowded CIFAR-10 case: no label over another label, over a marker or off the axes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from augkd.report.labels import label_points

    fig = Figure(figsize=(5.8, 4.6), dpi=150, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    x = T_STDDEV * 100
    ax.scatter(x, S_LOSS, s=70)
    ax.margins(x=0.14, y=0.12)
    labels = label_points(ax, x, S_LOSS, AUGS, 70)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = [a.get_bbox_patch().get_window_extent(renderer) for a in labels]
    frame = ax.get_window_extent(renderer)
    points = ax.transData.transform(np.column_stack([x, S_LOSS]))
    radius = (70 ** 0.5 / 2) * fig.dpi / 72
    assert [a.get_text() for a in labels] == AUGS
    for i, b in enumerate(boxes):
        assert frame.x0 <= b.x0 and b.x1 <= frame.x1 and frame.y0 <= b.y0 and b.y1 <= frame.y1
        for j, o in enumerate(boxes[:i]):
            assert not b.overlaps(o), (AUGS[i], AUGS[j])
        nearest_x = np.clip(points[:, 0], b.x0, b.x1)
        nearest_y = np.clip(points[:, 1], b.y0, b.y1)
        covered = np.hypot(nearest_x - points[:, 0], nearest_y - points[:, 1]) < radius
        assert not covered.any(), (AUGS[i], [AUGS[k] for k in np.flatnonzero(covered)])


def screenshot(html: Path, png: Path, width: int = 1280) -> None:
    """A full-page screenshot of ``html`` at ``width`` CSS pixels, as a 256-colour PNG."""
    from PIL import Image
    from playwright.sync_api import sync_playwright

    executable = _chromium()
    if executable is None:
        raise SystemExit("no Chromium at /usr/bin/chromium or $AUGKD_CHROMIUM")
    with sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        page = launched.new_page(viewport={"width": width, "height": 900})
        page.goto(html.resolve().as_uri(), wait_until="load")
        shot = page.screenshot(full_page=True)
        launched.close()
    Image.open(io.BytesIO(shot)).convert("RGB").quantize(256).save(png, optimize=True)


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4):
        raise SystemExit("usage: python tests/test_report_browser.py REPORT.html OUT.png [WIDTH]")
    screenshot(Path(sys.argv[1]), Path(sys.argv[2]), *map(int, sys.argv[3:]))
