"""``recsys-fast report --html``: one self-contained page with the README's tables and the
plots inlined, nothing fetched from the network; rendered in headless Chromium where one is
installed."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from recsys_fast import bench_cli as cli
from recsys_fast.harness import report
from recsys_fast.harness.cases.registry import Case, Registry, Verdict
from recsys_fast.harness.report.html import MARKER, markdown_to_html
from recsys_fast.harness.run.bench import run_bench
from recsys_fast.harness.run.runner import RunSettings

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def _registry() -> Registry:
    """naive and optimised sums, and a case whose skip reason holds HTML and a pipe."""
    reg = Registry()

    def setup(ctx, scale):
        return {"n": {"tiny": 50_000, "100k": 150_000}[scale], "scale": scale}

    def check(ctx, st, result):
        ref = ctx.naive_reference("toy_sum", st["scale"])
        return Verdict("equal" if np.isclose(ref, result) else "mismatch: off", "naive")

    reg.add(Case("toy_sum", "naive", "cpu", setup, lambda st: float(sum(range(st["n"])))))
    reg.add(Case("toy_sum", "optimised", "cpu", setup,
                 lambda st: float(np.arange(st["n"]).sum()), check=check))
    reg.add(Case("toy_sum", "sklearn", "cpu", setup, lambda st: 0.0,
                 memory_estimate=lambda spec: 7 << 40))
    return reg


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    """results/index.html (and README.md) rendered from one small run."""
    from recsys_fast.harness.run import runner

    out = tmp_path_factory.mktemp("html") / "results"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(runner, "gpu_available", lambda: False)
        mp.setenv("RECSYS_FAST_MACHINE_ID", "test-machine")
        run_bench(scales=["tiny", "100k"], registry=_registry(), out_dir=out, gemm_n=64,
                  progress=False, settings=RunSettings(repeat=3, max_time=0.5))
    report.write_report([], out, html=True)
    return out / "index.html"


class _Page(HTMLParser):
    """Tables (lists of rows of cell texts), image sources and every URL-bearing attribute."""

    def __init__(self):
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.images: list[str] = []
        self.urls: list[str] = []
        self.tags: set[str] = set()
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        attrs = dict(attrs)
        self.urls += [v for k, v in attrs.items() if k in ("src", "href", "action") and v]
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        elif tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def _parse(text: str) -> _Page:
    p = _Page()
    p.feed(text)
    return p


def _markdown_tables(text: str) -> list[list[list[str]]]:
    """The README's pipe tables as cell texts (markup dropped, as a browser shows them)."""
    tables, current = [], None
    for line in text.splitlines():
        if line.startswith("|"):
            if current is None:
                current = []
                tables.append(current)
            if re.fullmatch(r"\|(---\|)+", line):
                continue
            cells = re.split(r"(?<!\\)\|", line.strip()[1:-1])
            current.append([re.sub(r"\*\*|`", "", c).strip().replace("\\|", "|")
                            for c in cells])
        else:
            current = None
    return tables


def test_page_has_the_readme_tables(page):
    readme = (page.parent / "README.md").read_text()
    html_tables = _parse(page.read_text()).tables
    md_tables = _markdown_tables(readme)
    assert len(md_tables) >= 3  # naive -> optimised, peers or all cases, skipped
    assert html_tables == md_tables
    assert any("needs 7.0 TiB" in " ".join(r) for t in html_tables for r in t)


def test_plots_are_inlined_png_data_uris(page):
    readme = (page.parent / "README.md").read_text()
    images = _parse(page.read_text()).images
    assert len(images) == len(re.findall(r"^!\[", readme, re.M)) >= 1
    for src in images:
        assert src.startswith("data:image/png;base64,"), src[:60]
        assert base64.b64decode(src.split(",", 1)[1]).startswith(PNG_MAGIC)


def test_page_fetches_nothing(page):
    text = page.read_text()
    parsed = _parse(text)
    assert all(u.startswith("data:") for u in parsed.urls), parsed.urls
    assert not parsed.tags & {"script", "link", "iframe", "object", "embed"}, parsed.tags
    assert not re.search(r"https?://|@import|url\(", text, re.I)
    assert text.startswith("<!DOCTYPE html>") and MARKER in text.splitlines()[1]


def test_page_has_the_cpu_to_dask_table(tmp_path):
    from test_report import LOCAL, _dask_doc

    from recsys_fast import results_store as results

    doc = _dask_doc([("cpu", "100k", 0.1, None), ("dask", "100k", 0.25, LOCAL)],
                    "2030-01-01T00:00:00+00:00")
    out = tmp_path / "results"
    report.write_report([results.write_results(doc, tmp_path / "in")], out, plots=False,
                        html=True)
    text = (out / "index.html").read_text()
    assert "<h3>CPU → dask</h3>" in text
    table = next(t for t in _parse(text).tables if "dask vs cpu: speedup [95 % CI]" in t[0])
    assert table[0] == ["kernel", "scale", "impl", "cpu", "dask",
                        "dask vs cpu: speedup [95 % CI]", "cluster", "run"]
    [row] = table[1:]
    assert row[:5] == ["toy_sum", "100k", "optimised", "100 ms", "250 ms"]
    assert row[5].startswith("0.4x [") and row[5].endswith("(dask 2.5x slower)")
    assert row[6:] == ["LocalCluster, 2 workers x 1 thread", "R1"]
    assert table in _markdown_tables((out / "README.md").read_text())


def test_markup_in_results_is_escaped(tmp_path):
    body = markdown_to_html(["## a <b>", "", "| x | y |", "|---|---|",
                             "| <script>alert(1)</script> | p \\| q **r** `s*t` |"], tmp_path)
    assert "<script>" not in body and "&lt;script&gt;" in body
    table = _parse(body).tables[0]
    assert table == [["x", "y"], ["<script>alert(1)</script>", "p | q r s*t"]]
    assert "<strong>r</strong>" in body and "<code>s*t</code>" in body


def test_cli_flag_and_a_page_the_report_did_not_write(page, tmp_path, capsys):
    out = tmp_path / "results"
    shutil.copytree(page.parent, out)
    (out / "index.html").write_text("<html>someone's own page</html>")
    assert cli.main(["report", "--html", "--out", str(out)]) == 2  # refused, nothing replaced
    assert "index.html exists and was not written" in capsys.readouterr().err
    assert (out / "index.html").read_text() == "<html>someone's own page</html>"
    assert cli.main(["report", "--html", "--force", "--out", str(out)]) == 0
    assert "self-contained page written to" in capsys.readouterr().out
    assert MARKER in (out / "index.html").read_text()
    (out / "index.html").unlink()
    assert cli.main(["report", "--out", str(out)]) == 0
    assert not (out / "index.html").exists()  # only with --html


def _browser() -> str | None:
    return next((b for b in map(shutil.which, BROWSERS) if b), None)


@pytest.mark.browser
def test_page_renders_offline_in_headless_chromium(page, tmp_path):
    browser = _browser()
    if browser is None:
        pytest.skip(f"no headless browser found (looked for {', '.join(BROWSERS)})")
    flags = ["--headless", "--disable-gpu", "--no-sandbox", "--no-first-run",
             f"--user-data-dir={tmp_path / 'profile'}", "--proxy-server=127.0.0.1:9",
             "--proxy-bypass-list=<-loopback>"]  # any network fetch would fail
    dom = subprocess.run([browser, *flags, "--dump-dom", page.as_uri()], capture_output=True,
                         text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    rendered = _parse(dom.stdout)
    source = _parse(page.read_text())
    assert rendered.tables == source.tables and len(rendered.tables) >= 3
    assert len(rendered.images) == len(source.images) >= 1
    shot = tmp_path / "shot.png"
    proc = subprocess.run([browser, *flags, f"--screenshot={shot}", "--window-size=1200,4000",
                           page.as_uri()], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and shot.exists(), proc.stderr[-2000:]
    import matplotlib.image

    px = (matplotlib.image.imread(shot)[..., :3] * 255).round().astype(int)
    # matplotlib's first colour (tab:blue, 31,119,180) only appears where a plot was drawn
    blue = (np.abs(px - np.array([31, 119, 180])).max(axis=-1) <= 12).sum()
    assert blue > 200, f"no plot pixels in the screenshot ({blue} tab:blue pixels)"


def test_page_opens_on_the_summary(page):
    """The first heading after the title is the summary, then its table, before any run's
    long tables."""
    text = page.read_text()
    assert text.index("At a glance") < text.index("<table") < text.index("Naive → optimised")
    rendered = _parse(text)
    assert rendered.tables[0][0][:3] == ["kernel", "scale", "ours vs naive (CPU)"]


_PROBE = """<script>window.addEventListener('load', () => {
 const h = [...document.querySelectorAll('h2')].find(e => e.textContent.includes('At a glance'));
 let t = h; while (t && t.tagName !== 'TABLE') t = t.nextElementSibling;
 const head = t.rows[0].getBoundingClientRect(), first = t.rows[1].getBoundingClientRect();
 document.body.setAttribute('data-probe', JSON.stringify({heading: h.getBoundingClientRect().top,
   head: head.bottom, first: first.bottom, height: window.innerHeight}));
});</script>"""


@pytest.mark.browser
def test_summary_is_on_the_first_screen_at_1280_by_800(page, tmp_path):
    """Rendered by headless Chromium at 1280 x 800 (a copy of the page with a measuring
    script): the summary's heading, header row and first row lie above the fold."""
    import html as html_mod

    browser = _browser()
    if browser is None:
        pytest.skip(f"no headless browser found (looked for {', '.join(BROWSERS)})")
    probe = tmp_path / "probe.html"
    probe.write_text(page.read_text().replace("</body>", _PROBE + "</body>"))
    flags = ["--headless", "--disable-gpu", "--no-sandbox", "--no-first-run",
             f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,800",
             "--virtual-time-budget=5000"]
    dom = subprocess.run([browser, *flags, "--dump-dom", probe.as_uri()], capture_output=True,
                         text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    found = re.search(r'data-probe="([^"]*)"', dom.stdout)
    assert found, "the measuring script did not run"
    got = json.loads(html_mod.unescape(found.group(1)))
    assert 0 <= got["heading"] < got["head"] < got["first"] <= got["height"], got
