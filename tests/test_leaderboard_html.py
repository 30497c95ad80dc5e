"""The leaderboard's HTML page, loaded in a real headless browser (Debian's chromium).

The page is built from the SYNTHETIC fixture runs of test_leaderboard.py
(scores drawn from known Gaussians: fixtures, not results). Without chromium
on the PATH these tests are skipped with the reason; CI installs it and sets
HEPAD_BENCH_REQUIRE_SYSTEM_TOOLS=1, which makes them fail instead (the
``chromium`` fixture in conftest.py).
"""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from test_leaderboard import FixtureCorrelation, FixtureMuLimit, registry_with, write_fixture_results

from hepad_bench.leaderboard import build_leaderboards

def dump_dom(browser: str, page: Path, profile: Path) -> str:
    """The DOM after the page's scripts ran, as chromium serialises it."""
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--virtual-time-budget=10000",
           "--dump-dom", page.resolve().as_uri()]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


class PageParser(HTMLParser):
    """Collects the body's attributes, images, links and every table's cells."""

    def __init__(self) -> None:
        super().__init__()
        self.body: dict[str, str] = {}
        self.images: list[str] = []
        self.links: list[str] = []
        self.tables: list[list[list[str]]] = []
        self._cell: list[str] | None = None
        self.bold_cells: list[str] = []
        self._bold = False
        self.external = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "body":
            self.body = {k: v or "" for k, v in attrs.items()}
        elif tag == "img":
            self.images.append(attrs.get("src", ""))
        elif tag == "a":
            self.links.append(attrs.get("href", ""))
        elif tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []
            self._bold = "best" in (attrs.get("class") or "")
        if tag in ("script", "link") and (attrs.get("src") or attrs.get("href")):
            self.external.append(attrs.get("src") or attrs.get("href"))

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            text = "".join(self._cell).strip()
            self.tables[-1][-1].append(text)
            if self._bold:
                self.bold_cells.append(text)
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


@pytest.fixture(scope="module")
def page(chromium, tmp_path_factory):
    """(index.html, its folder, the browser); asks for the browser first, so a skip builds nothing."""
    root = tmp_path_factory.mktemp("html")
    results = write_fixture_results(root / "results")
    build_leaderboards(results, root / "out", registry_with(FixtureMuLimit, FixtureCorrelation))
    return root / "out" / "index.html", root, chromium


def test_page_renders_tables_and_images_in_browser(page):
    index, root, browser = page
    dom = PageParser()
    dom.feed(dump_dom(browser, index, root / "profile"))
    # the inline script ran and found every figure loaded (naturalWidth > 0)
    assert dom.body.get("data-images") == "ok", dom.body
    assert dom.body.get("data-images-loaded") == "6/6"
    assert sorted(Path(src).name for src in dom.images) == sorted(
        f"{kind}_{signal}.png" for kind in ("roc", "scores", "correlation") for signal in ("sigA", "sigB"))
    assert not dom.external  # offline page: no external CSS or JS

    main, mu = dom.tables
    assert main[0][:4] == ["detector", "version", "kind", "seeds"]
    assert "sigA: AUC" in main[0] and "sigB: AUC" in main[0]
    assert [r[0] for r in main[1:]][:2] == ["alpha", "beta"] and len(main) == 1 + 5
    assert mu[0] == ["detector", "seeds", "sigA: mu_up / DNN", "sigB: mu_up / DNN"]
    rows = {r[0]: r[2:] for r in mu[1:]}
    assert rows["supervised-dnn"] == ["1 (reference)", "1 (reference)"]  # the normalisation itself is not ranked
    # beta's ratios (about 1.5) beat alpha's (about 3) beyond their intervals: the only bold cells
    assert sorted(dom.bold_cells) == sorted(rows["beta"])
    # provenance and the data files are linked
    text = index.read_text()
    assert "Dataset toy-ds version 3" in text and "seeds 1, 2, 3" in text and "hepad-bench 0.1.0" in text
    for name in ("toy-ds/leaderboard.csv", "toy-ds/numbers.parquet", "toy-ds/mu_limit.csv"):
        assert name in dom.links and (index.parent / name).is_file()


def test_missing_image_is_reported_by_the_page(page, tmp_path):
    index, _, browser = page
    copy = tmp_path / "site"
    shutil.copytree(index.parent, copy)
    (copy / "toy-ds" / "plots" / "roc_sigB.png").unlink()
    dom = PageParser()
    dom.feed(dump_dom(browser, copy / "index.html", tmp_path / "profile"))
    assert dom.body.get("data-images") == "broken"
    assert dom.body.get("data-images-loaded") == "5/6"
