"""Writing rules for every page of the book (DESIGN.md, "Writing for the page"), and the bibliography.

Applied to every ``book/*.ipynb`` (and, for the prose rules, every ``book/*.md``), present and future:

* chapter code stays within 88 characters a line (it scrolls sideways on the page otherwise);
* the monograph's equations are cited with a visible prefix, "K&W eq. 2.9": a bare "(eq. 2.9)" sits
  next to the book's own numbered equations (2.4) and cannot be told apart from them. The book's own
  equations are cited only through ``{eq}`` cross-references, which this check never flags;
* no internal label names (``eq-ch4-score``, ``mf-gap``, or their ``ch4-score`` core) in code or in
  printed output, where the reader sees them raw;
* the package's docstrings and comments cite the monograph with the same "K&W eq." prefix;
* every ``{doc}`` link has explicit text (a bare one prints the whole chapter title mid-sentence);
* every cited key exists in ``references.bib``; the bibliography parses, has no duplicate keys and
  spells names in UTF-8 (LaTeX accent macros rendered as garbled labels); the bibliography page lists
  only cited works.

Each checker is a plain function, unit-tested on constructed bad and good examples below, so a
checker that silently accepts everything would fail its own tests.
"""

import io
import json
import re
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BOOK = ROOT / "book"
BIB = ROOT / "references.bib"
NOTEBOOKS = sorted(BOOK.glob("*.ipynb"))
PAGES = sorted(BOOK.glob("*.md"))
MAX_LINE = 88


# --- checkers ------------------------------------------------------------------------------------


def load(path):
    return json.loads(Path(path).read_text(encoding="utf-8"))


def cells(nb, kind):
    return [(i, "".join(c["source"])) for i, c in enumerate(nb["cells"]) if c["cell_type"] == kind]


def text_outputs(nb):
    """(cell index, text) of every printed or displayed text output of the code cells."""
    found = []
    for i, cell in enumerate(nb["cells"]):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                found.append((i, "".join(out["text"])))
            elif "data" in out and "text/plain" in out["data"]:
                found.append((i, "".join(out["data"]["text/plain"])))
    return found


def long_code_lines(nb, limit=MAX_LINE):
    """(cell index, line number, length) of every code line longer than ``limit``."""
    return [(i, n, len(line)) for i, src in cells(nb, "code")
            for n, line in enumerate(src.splitlines(), 1) if len(line) > limit]


# "eq. 2.9", "eqs. 2.8-2.9", "(eq. 2.9)", "equation (2.4)", "Eq.2.9" -- unless preceded by "K&W ".
# A dotted number is required, so papers' "eq. 10" and the book's "{eq}`label`" roles never match.
_BARE_EQUATION = re.compile(r"(?<!K&W )(?<![\w&}])(eqs?\.|equations?)\s*\(?\s*\d+\.\d+", re.I)


def bare_equation_numbers(text):
    """Every equation number in ``text`` that is not cited with the "K&W" prefix."""
    return [m.group(0) for m in _BARE_EQUATION.finditer(text)]


_TARGET = re.compile(r"^\(([\w.-]+)\)=\s*$", re.M)                 # (label)=
_OPTION = re.compile(r"^\s*:(?:label|name):\s*([\w.-]+)\s*$", re.M)  # :label: x / :name: x


def labels_in(text):
    return set(_TARGET.findall(text)) | set(_OPTION.findall(text))


def book_labels():
    """Every label the book defines: myst targets, math and figure labels, figure names."""
    found = set()
    for path in NOTEBOOKS:
        nb = load(path)
        for _, src in cells(nb, "markdown"):
            found |= labels_in(src)
        for cell in nb["cells"]:
            name = cell.get("metadata", {}).get("mystnb", {}).get("figure", {}).get("name")
            if name:
                found.add(name)
    for path in PAGES:
        found |= labels_in(path.read_text(encoding="utf-8"))
    return found


def _label_forms(label):
    """The label itself and, for "eq-ch4-score"-like labels, its distinctive core "ch4-score"."""
    forms = {label}
    core = re.sub(r"^(?:eq|eqn|fig|sec|tab|ex)-", "", label)
    if core != label and "-" in core:
        forms.add(core)
    return forms


def label_names_in(text, labels):
    """Label names (or their cores) that appear as words in ``text``."""
    hits = set()
    for label in labels:
        for form in _label_forms(label):
            if re.search(rf"(?<![\w-]){re.escape(form)}(?![\w-])", text):
                hits.add(form)
    # references written from memory rather than copied: "(ch4-score)", "eq-ch5-x", "fig-ch2-y"
    hits |= set(re.findall(r"(?<![\w-])(?:(?:eq|fig|sec)-)?ch\d+-[a-z][\w-]*", text))
    return sorted(hits)


def code_text(src):
    """The comments and string literals of a code cell (what a label name could hide in)."""
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(src).readline))
    except (tokenize.TokenError, SyntaxError, IndentationError):
        return src  # magics or a syntax error: check everything
    return "\n".join(t.string for t in tokens if t.type in (tokenize.COMMENT, tokenize.STRING))


_DOC_ROLE = re.compile(r"\{doc\}`([^`]*)`")


def bare_doc_links(text):
    """``{doc}`` roles without explicit text (``{doc}`02_elbo``` instead of
    ``{doc}`chapter 2 <02_elbo>```)."""
    return [m.group(0) for m in _DOC_ROLE.finditer(text) if not re.search(r".<[^<>]+>\s*$", m.group(1))]


_CITE = re.compile(r"\{cite(?::[a-z]+)?\}`([^`]+)`")


def cited_keys(text):
    return {key.strip() for m in _CITE.finditer(text) for key in m.group(1).split(",") if key.strip()}


def bib_keys(text):
    return re.findall(r"^@\w+\s*\{\s*([^,\s]+)\s*,", text, re.M)


def latex_escaped_names(text):
    """author/editor fields that spell a character with a LaTeX macro ({\\o}, \\'e, ...)."""
    return [m.group(0) for m in re.finditer(r"^\s*(?:author|editor)\s*=\s*\{.*$", text, re.M | re.I)
            if "\\" in m.group(0)]


def book_prose():
    """(page, text) for every markdown cell of every notebook and every markdown page."""
    for path in NOTEBOOKS:
        for i, src in cells(load(path), "markdown"):
            yield f"{path.name} cell {i}", src
    for path in PAGES:
        yield path.name, path.read_text(encoding="utf-8")


# --- the rules, applied to every page ------------------------------------------------------------


def _ids(paths):
    return [p.name for p in paths]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_code_lines_fit_the_page(path):
    too_long = long_code_lines(load(path))
    assert not too_long, (f"{len(too_long)} code lines longer than {MAX_LINE} characters "
                          f"(cell, line, length): {too_long[:10]}")


@pytest.mark.parametrize("path", NOTEBOOKS + PAGES, ids=_ids(NOTEBOOKS + PAGES))
def test_monograph_equations_carry_the_prefix(path):
    if path.suffix == ".md":
        texts = [("page", path.read_text(encoding="utf-8"))]
    else:
        nb = load(path)
        texts = cells(nb, "markdown") + cells(nb, "code") + text_outputs(nb)
    found = [(where, hit) for where, text in texts for hit in bare_equation_numbers(text)]
    assert not found, f"bare equation numbers (write 'K&W eq. 2.9' or use {{eq}}): {found[:10]}"


PACKAGE = sorted((ROOT / "vae_from_scratch").rglob("*.py"))


@pytest.mark.parametrize("path", PACKAGE, ids=[str(p.relative_to(ROOT)) for p in PACKAGE])
def test_package_docstrings_cite_the_monograph_with_the_prefix(path):
    found = bare_equation_numbers(path.read_text(encoding="utf-8"))
    assert not found, f"write 'K&W eq. 2.40' (Kingma & Welling 2019), not: {found}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_no_label_names_in_code_or_output(path):
    nb, labels = load(path), book_labels()
    texts = [(i, code_text(src)) for i, src in cells(nb, "code")] + text_outputs(nb)
    found = [(i, hit) for i, text in texts for hit in label_names_in(text, labels)]
    assert not found, f"internal label names in code comments, strings or output: {found[:10]}"


@pytest.mark.parametrize("path", NOTEBOOKS + PAGES, ids=_ids(NOTEBOOKS + PAGES))
def test_doc_links_have_explicit_text(path):
    if path.suffix == ".md":
        texts = [path.read_text(encoding="utf-8")]
    else:
        texts = [src for _, src in cells(load(path), "markdown")]
    found = [hit for text in texts for hit in bare_doc_links(text)]
    assert not found, f"{{doc}} links without explicit text: {found}"


def test_every_cited_work_is_in_the_bibliography():
    keys = set(bib_keys(BIB.read_text(encoding="utf-8")))
    missing = sorted({(page, key) for page, text in book_prose() for key in cited_keys(text)
                      if key not in keys})
    assert not missing, f"cited but not in references.bib: {missing}"


def test_bibliography_parses_without_duplicates_or_latex_escaped_names():
    from pybtex.database import parse_file

    text = BIB.read_text(encoding="utf-8")
    keys = bib_keys(text)
    duplicates = sorted({k for k in keys if keys.count(k) > 1})
    assert not duplicates, f"duplicate keys in references.bib: {duplicates}"
    assert len(parse_file(str(BIB)).entries) == len(keys)
    escaped = latex_escaped_names(text)
    assert not escaped, f"write names in UTF-8 (e.g. Sønderby), not LaTeX macros: {escaped}"


def test_bibliography_page_lists_only_cited_works():
    page = (BOOK / "bibliography.md").read_text(encoding="utf-8")
    directive = re.search(r"```\{bibliography\}(.*?)```", page, re.S)
    assert directive, "book/bibliography.md has no {bibliography} directive"
    options = directive.group(1)
    assert ":all:" not in options and "notcited" not in options, (
        "the page says it lists the cited works: use the default or ':filter: cited', not ':all:'")


# --- the checkers themselves: each must catch a constructed bad example ---------------------------


def _nb(*cells_):
    return {"cells": [{"cell_type": kind, "source": src, "metadata": {}, "outputs": []}
                      for kind, src in cells_]}


def test_checker_long_code_lines():
    good, bad = "x = 1  # " + "a" * 79, "x = 1  # " + "a" * 80     # 88 and 89 characters
    assert long_code_lines(_nb(("code", good))) == []
    assert long_code_lines(_nb(("code", "y = 2\n" + bad))) == [(0, 2, 89)]
    assert long_code_lines(_nb(("markdown", bad))) == []        # prose wraps: not a code line


@pytest.mark.parametrize("text", [
    "the bound (eq. 2.9) holds", "as eq. 2.10 shows", "see eqs. 2.8-2.9", "by Equation (2.4),",
    "# gradient of the ELBO, eq. 2.22", "Eq.2.9", "monograph eq. 2.40", "(equations 3.1 and 3.2)",
])
def test_checker_flags_bare_equation_numbers(text):
    assert bare_equation_numbers(text), text


@pytest.mark.parametrize("text", [
    "K&W eq. 2.9", "(K&W eqs. 2.8 and 2.71)", "the estimator eq. {eq}`eq-ch5-elbo`",
    "eqs. {eq}`eq-ch5-elbo` and {eq}`eq-ch5-iwae`", "Burda et al. 2016, eq. 8",
    "Kingma & Welling 2014, eq. 10", "section 2.6 of the monograph", "{eq}`eq-ch2-kl`",
])
def test_checker_accepts_prefixed_and_cross_referenced_equations(text):
    assert bare_equation_numbers(text) == [], text


def test_checker_label_names():
    labels = labels_in("(mf-gap)=\n## Gap\n```{math}\n:label: eq-ch4-score\nx\n```\n")
    assert labels == {"mf-gap", "eq-ch4-score"}
    comment = code_text("g = f(z)  # eq. (ch4-score) per sample\nprint('the mf-gap')\n")
    assert label_names_in(comment, labels) == ["ch4-score", "mf-gap"]
    assert label_names_in("eq-ch5-elbo", set()) == ["eq-ch5-elbo"]       # not even defined yet
    assert label_names_in(code_text("gap = mf_gap - 1  # the mean-field gap\n"), labels) == []
    assert "ch4" not in code_text("ch4 = 4 - 1\n")                     # code itself is not prose


def test_checker_doc_links():
    assert bare_doc_links("as in {doc}`02_elbo`, ...") == ["{doc}`02_elbo`"]
    assert bare_doc_links("chapter {doc}`03_reparameterization`") != []
    assert bare_doc_links("see {doc}`chapter 2 <02_elbo>` and {doc}`the next chapter <06_x>`") == []


def test_checker_citations_and_bib():
    text = "{cite:p}`a2019,b2020` and {cite:t}`c2021`; {cite}`d` but not `e`"
    assert cited_keys(text) == {"a2019", "b2020", "c2021", "d"}
    bib = "@misc{a2019,\n  author = {S{\\o}nderby, C.},\n}\n@article{ b2020 ,\n  author = {Ling, J.}\n}\n"
    assert bib_keys(bib) == ["a2019", "b2020"]
    assert len(latex_escaped_names(bib)) == 1
    assert cited_keys(text) - set(bib_keys(bib)) == {"c2021", "d"}
