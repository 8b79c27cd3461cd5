"""The typeset PDF of the whole book (`bash .ci/pdf`, run by `bash .ci/test` after the HTML build).

It holds every page of _toc.yml (each chapter's title appears in the text), no reference is left
unresolved (LaTeX prints "??" for those), and no text runs off the page (long code lines wrap).
Needs poppler's pdftotext, which `.ci/pdf` installs with TeX Live.
"""

import json
import re
import shutil
import subprocess
from html import unescape
from pathlib import Path

import pytest

from tests.test_book import toc_files

ROOT = Path(__file__).resolve().parent.parent
PDF = ROOT / "_build" / "latex" / "vae-from-scratch.pdf"
MARGIN_PT = 18  # a quarter inch: text may come no closer to the paper's edge


def page_title(stem):
    """The first heading of a book page (markdown or notebook)."""
    path = next((ROOT / f"{stem}{suffix}" for suffix in (".md", ".ipynb") if (ROOT / f"{stem}{suffix}").exists()))
    if path.suffix == ".ipynb":
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        text = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    else:
        text = path.read_text(encoding="utf-8")
    return re.search(r"^#\s+(.+?)\s*$", text, re.M).group(1)


def normalize(text):
    """Lower case, one space, no math markup or punctuation that typesetting changes."""
    text = re.sub(r"\$[^$]*\$", " ", text)
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


@pytest.fixture(scope="module")
def pdf_text():
    if shutil.which("pdftotext") is None:
        pytest.fail("pdftotext is missing: apt-get install poppler-utils (bash .ci/pdf does this as root)")
    if not PDF.is_file():
        pytest.fail(f"{PDF.relative_to(ROOT)} is missing: build it with `bash .ci/pdf`")
    return subprocess.run(["pdftotext", "-enc", "UTF-8", str(PDF), "-"], check=True, capture_output=True,
                          text=True).stdout


def test_normalize_ignores_layout_and_math():
    assert normalize("Why $p_\\theta(x)$ is  intractable") == "why is intractable"
    assert normalize("THE EVIDENCE\nLOWER-BOUND") == "the evidence lower bound"


@pytest.mark.parametrize("stem", [s for s in toc_files() if s != "book/intro"])
def test_pdf_contains_every_chapter(stem, pdf_text):
    title = normalize(page_title(stem))
    assert title in normalize(pdf_text), f"{stem}: its title {page_title(stem)!r} is not in the PDF"


def test_pdf_has_no_unresolved_reference(pdf_text):
    lines = [line.strip() for line in pdf_text.splitlines() if "??" in line]
    assert not lines, f"unresolved references in the PDF: {lines[:5]}"


def words_off_the_page(bbox_html, margin=MARGIN_PT):
    """Words of `pdftotext -bbox` output that come closer than `margin` pt to a page edge."""
    found = []
    for page in re.finditer(r'<page width="([\d.]+)" height="([\d.]+)">(.*?)</page>', bbox_html, re.S):
        width = float(page.group(1))
        for word in re.finditer(r'<word xMin="([\d.]+)" yMin="[\d.]+" xMax="([\d.]+)" yMax="[\d.]+">(.*?)</word>',
                                page.group(3)):
            if float(word.group(1)) < margin or float(word.group(2)) > width - margin:
                found.append(unescape(word.group(3)))
    return found


def test_words_off_the_page_finds_a_cut_line():
    page = ('<page width="612.0" height="792.0"><word xMin="72.0" yMin="1" xMax="540.0" yMax="2">ok</word>'
            '<word xMin="560.0" yMin="1" xMax="640.5" yMax="2">cut_here()</word></page>')
    assert words_off_the_page(page) == ["cut_here()"]


def test_no_text_runs_off_the_page():
    if shutil.which("pdftotext") is None or not PDF.is_file():
        pytest.fail("needs pdftotext and the PDF (bash .ci/pdf)")
    bbox = subprocess.run(["pdftotext", "-bbox", str(PDF), "-"], check=True, capture_output=True,
                          text=True).stdout
    off = words_off_the_page(bbox)
    assert not off, f"{len(off)} words reach the paper's edge (code not wrapped?): {off[:10]}"
