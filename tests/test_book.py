"""The book builds strictly: no Sphinx warning, no broken reference, no failing cell.

The full build renders the committed outputs (nbval re-executes every chapter and
compares them, so executing here too would only double the time). The small books below
show that the same strict settings turn a failing cell or a broken link into a failed build.
"""
import json
import shutil
from pathlib import Path

import nbformat
import pytest
import yaml

from tools.build_book import ROOT, build


def test_the_book_builds_with_zero_warnings(tmp_path):
    assert build(ROOT, tmp_path, execute="off") == 0
    html = tmp_path / "_build" / "html"
    for page in ["book/intro.html", "notebooks/01-missing-values.html"]:
        assert (html / page).is_file(), page


def small_book(folder: Path, notebook_source: str, page_text: str = "# Page\n") -> Path:
    """A two-page book with the course's own configuration."""
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    config["bibtex_bibfiles"] = ["references.bib"]
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
    assert build(book, book, execute="force") == 0


def test_a_failing_cell_fails_the_build(tmp_path):
    book = small_book(tmp_path, "raise ValueError('this cell fails')")
    assert build(book, book, execute="force") != 0


def test_a_broken_link_fails_the_build(tmp_path):
    book = small_book(tmp_path, "print(1 + 1)", page_text="# Page\n\nSee [the missing chapter](missing.md).\n")
    assert build(book, book, execute="force") != 0
