"""The book builds strictly: no Sphinx warning, no broken reference, no failing cell.

The full build renders the committed outputs (nbval re-executes every chapter and
compares them, so executing here too would only double the time). The small books below
show that the same strict settings turn a failing cell or a broken link into a failed build.
"""
import os
from pathlib import Path
from urllib.parse import urljoin, urlparse

import nbformat
import pytest
import yaml

from tests.site import browser_page, chromium_path, serve, visit
from tools.build_book import ROOT, build


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The whole book, built once for this module; fails the first test that uses it
    when the build has any warning."""
    output = tmp_path_factory.mktemp("book")
    code = build(ROOT, output, execute="off").returncode
    return code, output / "_build" / "html"


def toc_pages():
    """Every page named in _toc.yml, as the path of its HTML file."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc["parts"]:
        files += [chapter["file"] for chapter in part["chapters"]]
    return [f"{name}.html" for name in files]


def test_the_book_builds_with_zero_warnings(site):
    code, html = site
    assert code == 0, "the strict build failed: see the Sphinx warnings in the captured output"
    missing = [page for page in toc_pages() if not (html / page).is_file()]
    assert not missing, missing


def small_book(folder: Path, notebook_source: str, page_text: str = "# Page\n") -> Path:
    """A two-page book with the course's own configuration."""
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    config["bibtex_bibfiles"] = ["references.bib"]
    config["sphinx"]["local_extensions"] = {"book_fixes": str(ROOT / "tools")}
    (folder / "references.bib").write_text("")
    config["exclude_patterns"] = ["_build"]
    (folder / "_config.yml").write_text(yaml.safe_dump(config))
    (folder / "_toc.yml").write_text("format: jb-book\nroot: index\nchapters:\n  - file: chapter\n")
    (folder / "index.md").write_text(page_text)
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook.cells = [nbformat.v4.new_markdown_cell("# Chapter"), nbformat.v4.new_code_cell(notebook_source)]
    nbformat.write(notebook, folder / "chapter.ipynb")
    return folder


def test_a_small_clean_book_builds(tmp_path):
    book = small_book(tmp_path, "print(1 + 1)")
    result = build(book, book, execute="force", capture=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def test_a_failing_cell_fails_the_build(tmp_path):
    book = small_book(tmp_path, "raise ValueError('this cell fails')")
    result = build(book, book, execute="force", capture=True)
    assert result.returncode != 0
    assert "this cell fails" in result.stdout + result.stderr


def test_a_broken_link_fails_the_build(tmp_path):
    book = small_book(tmp_path, "print(1 + 1)", page_text="# Page\n\nSee [the missing chapter](missing.md).\n")
    result = build(book, book, execute="force", capture=True)
    assert result.returncode != 0
    assert "missing.md" in result.stdout + result.stderr


# --- The site in a real browser -------------------------------------------------------

SCREENSHOTS = ROOT / "_build" / "screenshots"


@pytest.fixture(scope="module")
def browser(site):
    code, html = site
    if code:
        pytest.fail("the book did not build, so there is no site to open")
    if not chromium_path():
        message = "Chromium is not installed (Debian package `chromium`; `make test` installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with serve(html) as base_url, browser_page(base_url) as page:
        yield base_url, page


@pytest.fixture(scope="module")
def reports(browser):
    """Visit every page of the table of contents once; keep a screenshot of each."""
    base_url, page = browser
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    found = {}
    for name in toc_pages():
        found[name] = visit(page, base_url + name)
        page.screenshot(path=str(SCREENSHOTS / (name.replace("/", "__") + ".png")))
    return found


def problems(reports, key):
    return {page: report[key] for page, report in reports.items() if report[key]}


def test_every_page_loads_without_console_errors(reports):
    assert all(report["status"] == 200 for report in reports.values())
    assert problems(reports, "console_errors") == {}


def test_every_image_loads_and_has_alt_text(reports):
    assert problems(reports, "broken_images") == {}
    assert problems(reports, "images_without_alt") == {}


def test_every_internal_link_resolves(reports, site):
    _, html = site
    broken = {}
    for page, report in reports.items():
        for url in report["internal_links"]:
            path = html / urlparse(url).path.lstrip("/")
            if path.is_dir():
                path = path / "index.html"
            if not path.is_file():
                broken.setdefault(page, []).append(url)
    assert broken == {}


def test_no_serious_or_critical_accessibility_violations(reports):
    assert problems(reports, "accessibility") == {}


def test_search_finds_a_chapter(browser):
    base_url, page = browser
    page.goto(base_url + "search.html?q=KNNImputer", wait_until="load")
    page.wait_for_selector("#search-results ul.search li", timeout=15000)
    hits = page.eval_on_selector_all("#search-results ul.search li a", "els => els.map(e => e.getAttribute('href'))")
    assert any("02-handling-missing-data" in hit for hit in hits), hits


def test_next_links_walk_through_every_page(browser):
    base_url, page = browser
    visited = []
    url = base_url + toc_pages()[0]
    while url and len(visited) < 200:
        page.goto(url, wait_until="load")
        visited.append(urlparse(page.url).path.lstrip("/"))
        next_link = page.query_selector("a.right-next")
        url = urljoin(page.url, next_link.get_attribute("href")) if next_link else None
    assert visited == toc_pages()
