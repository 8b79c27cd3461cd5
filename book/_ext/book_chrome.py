"""Sphinx hook for the book's chrome: repository and launch buttons only when a repository is set.

The repository URL lives in ONE setting, ``repository.url`` in ``_config.yml`` (Jupyter Book passes
it on as the theme option ``repository_url``). When it is empty, no button may point to it:
sphinx-book-theme would otherwise draw a repository button to nowhere and its launch (Colab)
buttons fail on a missing repository. When it is set, the repository button and the Colab launch
button (``launch_buttons.colab_url``) appear, and ``book_repository_url`` is available to pages.
"""


def _author_year_label(entry):
    persons = entry.persons.get("author") or entry.persons.get("editor") or []
    names = [" ".join(p.last_names).replace("{", "").replace("}", "") for p in persons]
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


def setup(app):
    _register_bibliography_style()
    app.connect("config-inited", _apply, priority=100)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
