"""Figures: every chapter figure is numbered, captioned and described, and drawn in the book's style.

A plotting cell of a chapter notebook carries cell metadata
``{"mystnb": {"figure": {"caption": ..., "name": "fig-chN-<slug>"}, "image": {"alt": ...}}}``;
MyST-NB turns it into a numbered figure ("Fig. N.k") whose image has that alt text. Without it the
image has no number and no caption, and its alt text is the image's hashed file name, which is what
a screen reader would read. ``notebook_figure_problems`` checks the notebooks and
``html_figure_problems`` the built pages; each is unit-tested below on constructed bad input.
"""

import json
import re
from pathlib import Path

import pytest

from tests.test_book import toc_files

ROOT = Path(__file__).resolve().parent.parent
HTML = ROOT / "_build" / "html"
IMAGE_TYPES = ("image/png", "image/svg+xml", "image/jpeg")
_HASHED = re.compile(r"(^|/)[0-9a-f]{16,}\.(png|svg|jpe?g)$|_images/|\.(png|svg|jpe?g)$", re.I)


def chapter_notebooks():
    return [ROOT / f"{stem}.ipynb" for stem in toc_files() if (ROOT / f"{stem}.ipynb").is_file()]


def _text(value):
    return "".join(value) if isinstance(value, list) else str(value or "")


def notebook_figure_problems(notebook, name="notebook"):
    """Problems with the figures of a notebook (a dict in nbformat 4), as readable strings."""
    problems = []
    for index, cell in enumerate(notebook.get("cells", []), start=1):
        if cell.get("cell_type") != "code":
            continue
        images = [out for out in cell.get("outputs", [])
                  if any(kind in out.get("data", {}) for kind in IMAGE_TYPES)]
        if not images:
            continue
        where = f"{name} cell {index} (execution count {cell.get('execution_count')})"
        mystnb = cell.get("metadata", {}).get("mystnb") or {}
        figure, image = mystnb.get("figure") or {}, mystnb.get("image") or {}
        if not _text(figure.get("caption")).strip():
            problems.append(f"{where}: figure without metadata.mystnb.figure.caption")
        if not _text(figure.get("name")).strip():
            problems.append(f"{where}: figure without metadata.mystnb.figure.name (its label)")
        alt = _text(image.get("alt")).strip()
        if not alt:
            problems.append(f"{where}: figure without metadata.mystnb.image.alt")
        elif len(alt.split()) < 3 or _HASHED.search(alt):
            problems.append(f"{where}: alt text {alt!r} does not say what the figure shows")
        if len(images) > 1:
            problems.append(f"{where}: {len(images)} images in one cell share one caption and label; "
                            "draw one figure per cell (panels in one figure)")
    return problems


def html_figure_problems(html, name="page"):
    """Problems with the notebook-output images of a built HTML page."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    problems = []
    for img in soup.select(".cell_output img, div.output img"):
        src = img.get("src", "")
        alt = (img.get("alt") or "").strip()
        where = f"{name}: image {src.rsplit('/', 1)[-1]}"
        if not alt or _HASHED.search(alt) or alt == src:
            problems.append(f"{where} has alt text {alt!r} (a file name, not a description)")
        figure = img.find_parent("figure")
        caption = figure.find("figcaption") if figure else None
        number = caption.select_one(".caption-number") if caption else None
        if number is None or not re.search(r"\d", number.get_text()):
            problems.append(f"{where} has no numbered caption")
        elif not caption.get_text().replace(number.get_text(), "").strip():
            problems.append(f"{where} has a number but an empty caption")
    return problems


# --- the checks themselves, on constructed notebooks and pages -------------------------------------

def _cell(metadata=None, outputs=None):
    return {"cell_type": "code", "execution_count": 1, "metadata": metadata or {}, "source": "plt.show()",
            "outputs": outputs if outputs is not None else
            [{"output_type": "display_data", "data": {"image/png": "iVBORw0KGgo=", "text/plain": "<Figure>"},
              "metadata": {}}]}


GOOD_METADATA = {"mystnb": {"figure": {"caption": "The ELBO rises during training.", "name": "fig-ch5-elbo"},
                            "image": {"alt": "A line plot of the ELBO against the epoch, rising."}}}


def test_notebook_check_accepts_a_captioned_figure_and_plain_cells():
    notebook = {"cells": [_cell(GOOD_METADATA), _cell(outputs=[]),
                          {"cell_type": "markdown", "metadata": {}, "source": "# Title"}]}
    assert notebook_figure_problems(notebook) == []


@pytest.mark.parametrize("metadata, expected", [
    ({}, "caption"),
    ({"mystnb": {"figure": {"caption": "A caption.", "name": "fig-x"}}}, "image.alt"),
    ({"mystnb": {"figure": {"name": "fig-x"}, "image": {"alt": "A plot of two lines."}}}, "caption"),
    ({"mystnb": {"figure": {"caption": "A caption."}, "image": {"alt": "A plot of two lines."}}}, "name"),
    ({"mystnb": {"figure": {"caption": "A caption.", "name": "fig-x"},
                 "image": {"alt": "../_images/0123456789abcdef0123.png"}}}, "does not say"),
    ({"mystnb": {"figure": {"caption": "A caption.", "name": "fig-x"}, "image": {"alt": "plot"}}},
     "does not say"),
])
def test_notebook_check_rejects_a_figure_without_caption_or_alt(metadata, expected):
    problems = notebook_figure_problems({"cells": [_cell(metadata)]}, "bad.ipynb")
    assert problems and any(expected in p for p in problems), problems
    assert all(p.startswith("bad.ipynb cell 1") for p in problems)


def test_notebook_check_rejects_svg_and_two_images_in_one_cell():
    svg = {"output_type": "display_data", "data": {"image/svg+xml": "<svg/>"}, "metadata": {}}
    assert notebook_figure_problems({"cells": [_cell({}, [svg])]})
    two = _cell(GOOD_METADATA, [svg, svg])
    assert any("2 images" in p for p in notebook_figure_problems({"cells": [two]}))


GOOD_HTML = """<main><div class="cell_output docutils container"><figure class="align-default" id="fig-ch5-elbo">
<img alt="A line plot of the ELBO against the epoch, rising." src="../_images/0123456789abcdef01234567.png"/>
<figcaption><p><span class="caption-number">Fig. 5.1 </span><span class="caption-text">The ELBO rises.</span></p>
</figcaption></figure></div></main>"""


def test_html_check_accepts_a_numbered_figure_with_alt_text():
    assert html_figure_problems(GOOD_HTML) == []


def test_html_check_rejects_hashed_alt_text_and_missing_number():
    bare = ('<div class="cell_output docutils container"><div class="output text_html">'
            '<img alt="../_images/0123456789abcdef01234567.png" '
            'src="../_images/0123456789abcdef01234567.png"/></div></div>')
    problems = html_figure_problems(bare, "ch.html")
    assert any("alt text" in p for p in problems) and any("no numbered caption" in p for p in problems)
    unnumbered = GOOD_HTML.replace('<span class="caption-number">Fig. 5.1 </span>', "")
    assert any("no numbered caption" in p for p in html_figure_problems(unnumbered))


# --- the book's chapters ------------------------------------------------------------------------------

@pytest.mark.parametrize("path", chapter_notebooks(), ids=lambda p: p.name)
def test_chapter_figures_have_caption_name_and_alt_text(path):
    problems = notebook_figure_problems(json.loads(path.read_text(encoding="utf-8")), path.name)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", chapter_notebooks(), ids=lambda p: p.name)
def test_built_figures_are_numbered_and_described(path):
    page = HTML / path.relative_to(ROOT).with_suffix(".html")
    if not page.is_file():
        pytest.fail(f"{page.relative_to(ROOT)} is missing: build the book first (bash .ci/book)")
    problems = html_figure_problems(page.read_text(encoding="utf-8"), page.name)
    assert not problems, "\n".join(problems)


# --- the book's plotting style ------------------------------------------------------------------------

def _contrast_with_white(colour):
    def linear(c):
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (linear(int(colour[i:i + 2], 16) / 255) for i in (1, 3, 5))
    return 1.05 / (0.2126 * r + 0.7152 * g + 0.0722 * b + 0.05)


def test_book_style_tells_series_apart_without_colour():
    matplotlib = pytest.importorskip("matplotlib")
    from vae_from_scratch.plotting import MIN_FONT_SIZE, OKABE_ITO, series_style, use_book_style

    with matplotlib.rc_context():
        use_book_style()
        cycle = list(matplotlib.rcParams["axes.prop_cycle"])
        assert [c["color"] for c in cycle] == [c.lower() for c in OKABE_ITO] or \
            [c["color"].lower() for c in cycle] == [c.lower() for c in OKABE_ITO]
        # no two series share a line style: each is readable in greyscale
        assert len({str(c["linestyle"]) for c in cycle}) == len(cycle) == len(OKABE_ITO)
        styles = [series_style(i) for i in range(len(OKABE_ITO))]
        assert len({s["marker"] for s in styles}) == len(styles)
        assert series_style(len(OKABE_ITO)) == styles[0]
        for key in ("xtick.labelsize", "ytick.labelsize", "legend.fontsize", "axes.labelsize"):
            size = matplotlib.rcParams[key]
            assert isinstance(size, (int, float)) and size >= MIN_FONT_SIZE, (key, size)
    assert all(_contrast_with_white(c) >= 3.0 for c in OKABE_ITO[:5])
    with pytest.raises(ValueError, match="inline_format"):
        use_book_style(inline_format="jpeg")
