"""The book as a whole: table of contents, stored notebook outputs, and the built HTML."""

import importlib.util
import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
BOOK = ROOT / "book"


def toc_files():
    """Every file named in _toc.yml (root, parts, chapters, sections), as repo-relative stems."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    found = [toc["root"]]

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                found.append(entry["file"])
            walk(entry.get("sections"))
            walk(entry.get("chapters"))

    walk(toc.get("parts"))
    walk(toc.get("chapters"))
    return found


def book_pages():
    return sorted(p for p in BOOK.rglob("*") if p.suffix in (".md", ".ipynb")
                  and ".ipynb_checkpoints" not in p.parts)


def book_notebooks():
    return [p for p in book_pages() if p.suffix == ".ipynb"]


def test_toc_lists_every_page_and_every_entry_exists():
    listed = {str(Path(f).with_suffix("")) for f in toc_files()}
    pages = {str(p.relative_to(ROOT).with_suffix("")) for p in book_pages()}
    assert not pages - listed, f"pages in book/ missing from _toc.yml: {sorted(pages - listed)}"
    assert not listed - pages, f"_toc.yml names files that do not exist: {sorted(listed - pages)}"


def test_toc_has_no_empty_parts():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    for part in toc.get("parts", []):
        assert part.get("chapters"), f"part {part.get('caption')!r} has no chapters (the build rejects it)"


def _load_check_notebooks():
    """The same check `.ci/book` runs before building (one implementation for both)."""
    spec = importlib.util.spec_from_file_location("check_notebooks", ROOT / ".ci" / "check_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("path", book_notebooks(), ids=lambda p: p.name)
def test_notebook_is_stored_executed_in_order_without_errors(path):
    found = list(_load_check_notebooks().problems(path))
    assert not found, f"{path.name}: {found}; re-run .venv/bin/python .ci/execute_notebooks.py"


@pytest.mark.parametrize("path", book_notebooks(), ids=lambda p: p.name)
def test_notebook_stores_no_volatile_output(path):
    nb = json.loads(path.read_text())
    for i, cell in enumerate(nb["cells"]):
        for out in cell.get("outputs", []):
            text = "".join(out.get("text", "")) + "".join(out.get("data", {}).get("text/plain", ""))
            assert "/work/" not in text and str(ROOT) not in text, f"{path.name} cell {i} prints a path"
            assert not re.search(r" at 0x[0-9a-f]+>", text), (
                f"{path.name} cell {i} stores an object repr with a memory address "
                "(e.g. a matplotlib artist): end the cell with plt.show() or ';'")


def test_book_was_built():
    index = ROOT / "_build" / "html" / "index.html"
    assert index.is_file(), "no _build/html/index.html: build the book with `bash .ci/book`"
    assert (ROOT / "_build" / "html" / "_static" / "mathjax" / "tex-chtml.js").is_file(), \
        "MathJax is not served locally: the sphinx-mathjax-offline extension did not run"
