"""Sphinx hook for the book's chrome: repository and launch buttons only when a repository is set.

The repository URL lives in ONE setting, ``repository.url`` in ``_config.yml`` (Jupyter Book passes
it on as the theme option ``repository_url``). When it is empty, no button may point to it:
sphinx-book-theme would otherwise draw a repository button to nowhere and its launch (Colab)
buttons fail on a missing repository. When it is set, the repository button and the Colab launch
button (``launch_buttons.colab_url``) appear, and ``book_repository_url`` is available to pages.
"""


def _author_year_label(entry):
    persons = entry.persons.get("author") or entry.persons.get("editor") or []
    # rich_last_names decodes LaTeX: S{\o}nderby -> Sønderby
    names = [" ".join(part.render_as("text") for part in p.rich_last_names) for p in persons]
    if not names:
        who = entry.fields.get("title", entry.key)[:20]
    elif len(names) == 1:
        who = names[0]
    elif len(names) == 2:
        who = f"{names[0]} and {names[1]}"
    else:
        who = f"{names[0]} et al."
    return f"{who}, {entry.fields.get('year', 'n.d.')}"


def _register_bibliography_style():
    """Bibliography labels in the book's citation style (author, year), sorted by author.

    The text cites "Kingma and Welling, 2019" (``bibtex_reference_style: author_year``); sphinxcontrib-
    bibtex's default list labels would be "[KW19]". Registered as the pybtex style ``book``.
    """
    import pybtex.plugin
    from pybtex.style.formatting.unsrt import Style as UnsrtStyle
    from pybtex.style.labels import BaseLabelStyle

    class AuthorYearLabels(BaseLabelStyle):
        def format_labels(self, sorted_entries):
            seen = {}
            labels = [_author_year_label(e) for e in sorted_entries]
            for label in labels:
                seen[label] = seen.get(label, 0) + 1
            suffix = {}
            for label in labels:
                if seen[label] > 1:  # "Kingma et al., 2016a", "..., 2016b"
                    suffix[label] = suffix.get(label, 0) + 1
                    yield label + "abcdefghijklmnopqrstuvwxyz"[suffix[label] - 1]
                else:
                    yield label

    class BookStyle(UnsrtStyle):
        default_label_style = "book_author_year"
        default_sorting_style = "author_year_title"

    pybtex.plugin.register_plugin("pybtex.style.labels", "book_author_year", AuthorYearLabels)
    pybtex.plugin.register_plugin("pybtex.style.formatting", "book", BookStyle)


def _apply(app, config):
    options = config.html_theme_options
    url = str(options.get("repository_url") or "").strip().rstrip("/")
    if url:
        options["repository_url"] = url
        options["use_repository_button"] = True
    else:
        options.pop("repository_url", None)
        options["use_repository_button"] = False
        options["use_issues_button"] = False
        options["use_edit_page_button"] = False
        options["launch_buttons"] = {}
    config.html_context = {**(config.html_context or {}), "book_repository_url": url}


def _numbered_and_after(srcdir):
    """(first file of the first numbered part, first file after the last numbered part) in _toc.yml."""
    from pathlib import Path

    import yaml

    toc = yaml.safe_load((Path(srcdir) / "_toc.yml").read_text(encoding="utf-8"))
    files, numbered = [], []
    for part in toc.get("parts", []):
        for chapter in part.get("chapters", []):
            files.append(chapter["file"])
            numbered.append(bool(part.get("numbered")))
    if True not in numbered:
        return None, None
    first = numbered.index(True)
    last = len(numbered) - 1 - numbered[::-1].index(True)
    return files[first], (files[last + 1] if last + 1 < len(files) else None)


def _latex_matter(app, doctree, docname):
    """In the PDF, the preface, setup and notation are unnumbered front matter; chapters 1, 2, ...
    are numbered as on the web (so equation (1.4) is (1.4) on paper too); the reference part is
    unnumbered back matter. Inserts \\frontmatter, \\mainmatter and \\backmatter (document class book)."""
    if app.builder.name != "latex":
        return
    from docutils import nodes
    from sphinx import addnodes

    main, back = _numbered_and_after(app.srcdir)
    _preface_as_one_chapter(doctree)
    unnumbered = "\\setcounter{secnumdepth}{-1}"
    doctree.insert(0, nodes.raw("", "\\frontmatter\\edef\\vaesecnumdepth{\\arabic{secnumdepth}}"
                                    + unnumbered + "\n", format="latex"))
    for node in list(doctree.findall(addnodes.start_of_file)):
        for target, command in ((main, "\\mainmatter\\setcounter{secnumdepth}{\\vaesecnumdepth}"),
                                (back, "\\backmatter" + unnumbered)):
            if target and node["docname"] == target:
                node.parent.insert(node.parent.index(node), nodes.raw("", command + "\n", format="latex"))


def _preface_as_one_chapter(doctree):
    """The landing page's sections would each become a one-page chapter of the PDF: nest them
    (and the lead paragraphs) in one chapter, "Preface"."""
    from docutils import nodes
    from sphinx import addnodes

    root = next(iter(doctree.findall(nodes.section)), None)
    if root is None or not root.children or not isinstance(root[0], nodes.title):
        return
    keep, preface = [root[0]], []
    for child in root.children[1:]:
        (keep if any(True for _ in child.findall(addnodes.start_of_file)) else preface).append(child)
    if not preface:
        return
    section = nodes.section("", nodes.title("", "Preface"), *preface, ids=["vae-preface"], names=["preface"])
    root.children = []
    root.extend([keep[0], section, *keep[1:]])


EXERCISE_LIST = "<!-- exercise sets: filled in by book/_ext/book_chrome.py -->"


def exercise_sets_markdown(srcdir, repository_url="", branch="main"):
    """One list item per student notebook in exercises/: title, chapter, download, Colab."""
    import json
    import re
    from pathlib import Path

    root = Path(srcdir)
    lines = []
    for path in sorted((root / "exercises").glob("[0-9]*.ipynb")):
        notebook = json.loads(path.read_text(encoding="utf-8"))
        title = path.stem
        for cell in notebook.get("cells", []):
            if cell.get("cell_type") == "markdown":
                text = "".join(cell.get("source", []))
                match = re.search(r"^#\s+(.+)$", text, re.M)
                if match:
                    title = match.group(1).strip()
                    break
        ids = (notebook.get("metadata", {}).get("vae_from_scratch") or {}).get("exercises", [])
        parts = [f"{{download}}`{path.name} <../exercises/{path.name}>`"]
        if repository_url and "github.com" in repository_url:
            repo = repository_url.split("github.com/", 1)[1]
            parts.append(f"[open in Colab](https://colab.research.google.com/github/{repo}/blob/{branch}/"
                         f"exercises/{path.name})")
        chapter = sorted(root.glob(f"book/{path.stem[:2]}_*.ipynb"))
        if chapter:
            parts.append(f"{{doc}}`chapter {int(path.stem[:2])} <{chapter[0].stem}>`")
        count = f"{len(ids)} exercises ({', '.join(ids)})" if ids else ""
        lines.append(f"- **{title}**: {' · '.join(parts)}" + (f"; {count}" if count else ""))
    return "\n".join(lines) + "\n"


def _fill_exercise_list(app, docname, source):
    if EXERCISE_LIST in source[0]:
        options = app.config.html_theme_options
        source[0] = source[0].replace(EXERCISE_LIST, exercise_sets_markdown(
            app.srcdir, options.get("repository_url", ""), options.get("repository_branch") or "main"))


def setup(app):
    _register_bibliography_style()
    app.connect("source-read", _fill_exercise_list)
    app.connect("doctree-resolved", _latex_matter)
    app.connect("config-inited", _apply, priority=100)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
