"""The rendered book in a real browser (Debian's chromium, headless, driven by Playwright).

For every page of _build/html, served on 127.0.0.1 with every other address blocked (no network):
equations are typeset by the locally served MathJax (no raw TeX left in the visible text), every image
loads, and the console shows no JavaScript errors (desktop width, 1280 px). At phone width (400 px)
no page scrolls sideways, every display equation either fits or scrolls inside its own box, and no
equation number covers any part of its equation. Screenshots land in _build/screenshots/.
"""

import functools
import http.server
import os
import shutil
import threading
from pathlib import Path
from urllib.parse import urlparse

import pytest

from tests.test_book import toc_files

try:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
except ImportError:  # reported by the browser fixture
    PlaywrightTimeout = Exception

ROOT = Path(__file__).resolve().parent.parent
HTML = ROOT / "_build" / "html"
SHOTS = ROOT / "_build" / "screenshots"
RAW_TEX = ("\\[", "\\]", "$$", "\\begin{", "\\(", "\\frac", "\\mathbf")
# Console messages that are not errors of the book's content, each with its reason:
BENIGN = (
    "net::ERR_BLOCKED_BY_CLIENT",  # a request to another host, blocked by this test (no network)
    "Failed to load resource",  # the same, as Chromium reports it
    # sphinx-thebe 0.3.1 (pulled in by jupyter-book 1) emits its inline config script twice; the
    # second copy re-declares a const. Live code is off in this book, so nothing depends on it.
    "Identifier 'THEBE_JS_URL' has already been declared",
    # pydata-sphinx-theme logs this on a first visit, when no light/dark choice is stored yet.
    "Got invalid theme mode",
)

pytestmark = pytest.mark.browser


def chromium_path():
    for name in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def pages():
    """The HTML page of every file in _toc.yml (stale pages of earlier builds are not checked)."""
    return [f"{stem}.html" for stem in toc_files()]


@pytest.fixture(scope="module")
def server():
    handler = functools.partial(_QuietHandler, directory=str(HTML))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def browser():
    path = chromium_path()
    if path is None:
        pytest.fail("chromium is not installed: `apt-get install chromium` (bash .ci/test does this as root)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=path,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        )
        yield browser
        browser.close()


def _offline(page, external):
    def route(r):
        host = urlparse(r.request.url).hostname
        if host in ("127.0.0.1", None) or r.request.url.startswith("data:"):
            r.continue_()
        else:
            external.append(r.request.url)
            r.abort("blockedbyclient")

    page.route("**/*", route)


def _wait_for_math(page, page_path, external):
    math_nodes = page.locator(".math").count()
    if math_nodes:
        try:
            page.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise",
                                   timeout=20000)
        except PlaywrightTimeout:
            pytest.fail(f"{page_path}: {math_nodes} equations but MathJax never loaded with the network "
                        f"cut off (blocked: {external[:3]}); is it served from _static/mathjax?")
        page.evaluate("() => MathJax.startup.promise")
    return math_nodes


def _record(errors, message):
    if not any(b in message for b in BENIGN):
        errors.append(message)


def test_there_are_pages_to_check():
    assert HTML.joinpath("index.html").is_file(), "build the book first: bash .ci/book"
    assert len(pages()) >= 3


@pytest.mark.parametrize("page_path", pages())
def test_page_renders_offline(page_path, server, browser):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors, external = [], []
    _offline(page, external)
    page.on("console", lambda m: m.type == "error" and _record(errors, m.text))
    page.on("pageerror", lambda e: _record(errors, str(e)))
    response = page.goto(f"{server}/{page_path}", wait_until="load")
    assert response is not None and response.ok, f"{page_path} was not built (HTTP error)"

    math_nodes = _wait_for_math(page, page_path, external)
    if math_nodes:
        typeset = page.locator("mjx-container").count()
        assert typeset >= math_nodes, f"{page_path}: {math_nodes} equations, only {typeset} typeset"
        assert page.locator("mjx-merror").count() == 0, f"{page_path}: MathJax reports a TeX error"
    # Visible prose only: code listings may legitimately show TeX source (e.g. in docstrings).
    text = page.evaluate(
        "() => { const m = document.querySelector('main').cloneNode(true);"
        " m.querySelectorAll('pre, code, .highlight, mjx-container, script').forEach(e => e.remove());"
        " document.body.appendChild(m); const t = m.innerText; m.remove(); return t; }")
    raw = [t for t in RAW_TEX if t in text]
    assert not raw, f"{page_path}: raw TeX {raw} left in the visible text"

    broken = page.evaluate(
        "() => Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0)"
        ".map(i => i.src)")
    assert not broken, f"{page_path}: images that did not load: {broken}"
    assert not errors, f"{page_path}: JavaScript errors: {errors}"

    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / (page_path.replace("/", "__") + ".png")), full_page=False)
    page.close()


PHONE = {"width": 400, "height": 860}

# Every typeset display equation: its visible box (the part of the content inside the scroll box),
# whether it overflows and can scroll, and the box of its equation number, if any.
_DISPLAY_EQUATIONS = """() => Array.from(document.querySelectorAll('mjx-container[display="true"]')).map(m => {
  const box = m.getBoundingClientRect();
  const content = (m.querySelector('mjx-math') || m).getBoundingClientRect();
  const holder = m.closest('div.math');
  const number = holder ? holder.querySelector('.eqno') : null;
  const n = number ? number.getBoundingClientRect() : null;
  const style = getComputedStyle(m);
  // what of the content shows: the content clipped to the scroll box
  const shown = {left: Math.max(box.left, content.left), right: Math.min(box.right, content.right),
                 top: Math.max(box.top, content.top), bottom: Math.min(box.bottom, content.bottom)};
  return {id: holder && holder.id || '', tex: (m.getAttribute('aria-label') ||
            (holder ? holder.getAttribute('data-tex') : '') || m.textContent).slice(0, 60),
          shown, number: n && {left: n.left, right: n.right, top: n.top, bottom: n.bottom},
          label: number ? number.textContent.trim() : '',
          overflows: m.scrollWidth > m.clientWidth + 1, scrolls: ['auto', 'scroll'].includes(style.overflowX),
          cue: style.backgroundImage.includes('gradient'),
          right: box.right};
})"""


def overlap(a, b, tolerance=0.5):
    """Whether two boxes {left, right, top, bottom} overlap by more than `tolerance` px both ways."""
    return (min(a["right"], b["right"]) - max(a["left"], b["left"]) > tolerance
            and min(a["bottom"], b["bottom"]) - max(a["top"], b["top"]) > tolerance)


def test_overlap_helper():
    a = {"left": 0, "right": 10, "top": 0, "bottom": 10}
    assert overlap(a, {"left": 9, "right": 20, "top": 5, "bottom": 6})
    assert not overlap(a, {"left": 10, "right": 20, "top": 0, "bottom": 10})  # touching
    assert not overlap(a, {"left": 2, "right": 5, "top": 11, "bottom": 12})  # below


@pytest.mark.parametrize("page_path", pages())
def test_page_reads_at_phone_width(page_path, server, browser):
    page = browser.new_page(viewport=PHONE)
    external = []
    _offline(page, external)
    response = page.goto(f"{server}/{page_path}", wait_until="load")
    assert response is not None and response.ok, f"{page_path} was not built (HTTP error)"
    if _wait_for_math(page, page_path, external):  # then book.js marks wide inline math
        page.wait_for_function("() => document.documentElement.dataset.vaeMathChecked === '1'",
                               timeout=10000)

    width = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], (
        f"{page_path}: the page scrolls sideways at {PHONE['width']} px (content {width[0]} px wide); "
        "culprits: " + str(page.evaluate(_WIDEST)))

    for eq in page.evaluate(_DISPLAY_EQUATIONS):
        where = f"{page_path}: equation {eq['label'] or eq['id'] or eq['tex']!r}"
        assert eq["right"] <= PHONE["width"] + 0.5, f"{where} reaches past the screen's right edge"
        if eq["overflows"]:
            assert eq["scrolls"], f"{where} is wider than the column and cut off instead of scrolling"
            # phones hide scrollbars: book.css draws shadows at the edge that has more to show
            assert eq["cue"], f"{where} scrolls without a visible cue (edge shadows, book/_static/book.css)"
        if eq["number"]:
            assert not overlap(eq["shown"], eq["number"]), f"{where}: its number covers the equation"
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / ("phone__" + page_path.replace("/", "__") + ".png")), full_page=False)
    page.close()


# The elements that stick out past the right edge of the window (for the failure message).
_WIDEST = """() => Array.from(document.querySelectorAll('main *')).filter(e => {
  const r = e.getBoundingClientRect(); return r.width > 0 && r.right > window.innerWidth + 1;
}).slice(0, 5).map(e => e.tagName.toLowerCase() + '.' + e.className + ': ' + (e.textContent || '').slice(0, 40))"""


def test_download_menu_offers_the_book_pdf(server, browser):
    """When `bash .ci/pdf` has put the PDF into the site, every page's download menu links it."""
    if not HTML.joinpath("vae-from-scratch.pdf").is_file():
        pytest.skip("no _build/html/vae-from-scratch.pdf: run bash .ci/pdf after bash .ci/book")
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    _offline(page, [])
    page.goto(f"{server}/{pages()[1]}", wait_until="load")
    link = page.locator('.dropdown-download-buttons a[href$="vae-from-scratch.pdf"]')
    link.wait_for(state="attached", timeout=10000)
    assert page.request.get(link.evaluate("a => a.href")).ok
    page.close()


def test_search_snippets_show_no_raw_tex(server, browser):
    """Search results quote the page around the match; math there reads as text (book.js)."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    _offline(page, [])
    page.goto(f"{server}/search.html?q=reparameterization+gradient", wait_until="load")
    page.wait_for_function("() => document.querySelectorAll('p.context').length >= 3", timeout=20000)
    page.wait_for_timeout(500)
    snippets = page.evaluate("() => Array.from(document.querySelectorAll('p.context')).map(p => p.textContent)")
    raw = [s for s in snippets if any(t in s for t in ("\\(", "\\mathbf", "\\boldsymbol", "\\frac", "\\["))]
    assert not raw, f"search snippets with raw TeX: {raw[:2]}"
    page.close()
