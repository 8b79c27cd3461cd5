"""The book's Sphinx hook (book/_ext/book_chrome.py), without building the book.

The repository URL is one setting (repository.url in _config.yml): with it empty, no repository,
issue, edit or launch button may be drawn (they would point nowhere); with it set, the repository
button and Colab launch buttons appear and the Exercises page links each set in Colab.
"""

import importlib.util
import types
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def _hook():
    spec = importlib.util.spec_from_file_location("book_chrome", ROOT / "book" / "_ext" / "book_chrome.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _config(url):
    return types.SimpleNamespace(html_context={}, html_theme_options={
        "repository_url": url, "use_repository_button": False,
        "launch_buttons": {"colab_url": "https://colab.research.google.com"}})


def test_the_repository_url_is_one_setting_and_empty_until_published():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert config["repository"]["url"] == ""
    assert config["html"]["use_repository_button"] is False  # the hook turns it on


def test_no_buttons_without_a_repository():
    config = _config("")
    _hook()._apply(None, config)
    options = config.html_theme_options
    assert "repository_url" not in options and options["launch_buttons"] == {}
    assert not options["use_repository_button"] and not options["use_edit_page_button"]


def test_buttons_with_a_repository():
    config = _config("https://github.com/someone/vae-book/")
    _hook()._apply(None, config)
    options = config.html_theme_options
    assert options["repository_url"] == "https://github.com/someone/vae-book"
    assert options["use_repository_button"] and options["launch_buttons"]["colab_url"]


def test_exercise_list_has_every_set_with_download_and_colab_only_when_published():
    hook = _hook()
    sets = sorted((ROOT / "exercises").glob("[0-9]*.ipynb"))
    offline = hook.exercise_sets_markdown(ROOT)
    assert len(offline.strip().splitlines()) == len(sets) > 0
    for path in sets:
        assert f"{{download}}`{path.name} <../exercises/{path.name}>`" in offline
    assert "colab" not in offline.lower()
    online = hook.exercise_sets_markdown(ROOT, "https://github.com/someone/vae-book", "main")
    assert online.count("https://colab.research.google.com/github/someone/vae-book/blob/main/exercises/") \
        == len(sets)


def test_author_year_labels():
    from pybtex.database import Entry, Person

    hook = _hook()

    def entry(*authors):
        e = Entry("article", fields={"year": "2019", "title": "T"})
        e.persons["author"] = [Person(a) for a in authors]
        return e

    assert hook._author_year_label(entry("Diederik P. Kingma")) == "Kingma, 2019"
    assert hook._author_year_label(entry("Kingma, Diederik", "Welling, Max")) == "Kingma and Welling, 2019"
    assert hook._author_year_label(entry("A. One", "B. Two", "C. Three")) == "One et al., 2019"
    assert hook._author_year_label(entry("S{\\o}nderby, Casper Kaae")) == "Sønderby, 2019"
