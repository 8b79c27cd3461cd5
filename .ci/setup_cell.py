"""Insert or update the standard setup cell of every chapter and exercise notebook.

    python .ci/setup_cell.py                 # book/*.ipynb and exercises/solutions/*.ipynb
    python .ci/setup_cell.py --check         # exit 1 when a notebook lacks the current cell
    python .ci/setup_cell.py NOTEBOOK ...    # only these notebooks

The setup cell is the first code cell of a notebook. Where the book's package is importable
(a clone with `.venv`, or any environment that installed it) it does nothing and prints nothing.
Where it is missing, as in a fresh Colab runtime, it installs the package pinned to the book's
version (`__version__` in vae_from_scratch/__init__.py): from the repository named by
`repository.url` in _config.yml, at the tag `v<version>` (`git+<url>@v<version>`), or, while that setting is empty, as
`vae-from-scratch==<version>`. The environment variable VAE_FROM_SCRATCH_SOURCE replaces that
source with any pip arguments, e.g. `--no-deps --no-build-isolation /path/to/a/clone` (offline).

The cell is tagged `remove-cell`: the rendered book leaves it out (the "Setting up" page explains
it). After running this script on the solutions notebooks, regenerate the student notebooks
(`python -m vae_from_scratch.grading.generate`), which copy the cell, and re-execute the chapters
(`python .ci/execute_notebooks.py`) so that execution counts run 1..n again.
"""

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CELL_ID = "vae-setup"
MARKER = "# Setup: installs this book's package where it is missing"
TAGS = ["remove-cell"]
ENV = "VAE_FROM_SCRATCH_SOURCE"
TEMPLATE = '''\
{marker} (e.g. in Colab).
# Silent where it is installed; {env} overrides the source.
import importlib.util, os, shlex, subprocess, sys
if importlib.util.find_spec("vae_from_scratch") is None:
    _source = "{source}"
    _source = os.environ.get("{env}", _source)
    _pip = [sys.executable, "-m", "pip", "install", "-q", *shlex.split(_source)]
    subprocess.run(_pip, check=True)
    importlib.invalidate_caches()'''


def book_version(root=ROOT):
    text = (root / "vae_from_scratch" / "__init__.py").read_text(encoding="utf-8")
    match = re.search(r'^__version__\s*=\s*["\']([^"\']+)["\']', text, re.M)
    if not match:
        raise SystemExit("no __version__ in vae_from_scratch/__init__.py")
    return match.group(1)


def repository_url(root=ROOT):
    import yaml

    config = yaml.safe_load((root / "_config.yml").read_text(encoding="utf-8")) or {}
    return str((config.get("repository") or {}).get("url") or "").strip().rstrip("/")


def default_source(version, url=""):
    """The pip requirement the cell installs when nothing overrides it."""
    if url:
        return f"git+{url}@v{version}"
    return f"vae-from-scratch=={version}"


def cell_source(version, url=""):
    return TEMPLATE.format(marker=MARKER, env=ENV, source=default_source(version, url))


def _text(cell):
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def is_setup_cell(cell):
    return cell.get("id") == CELL_ID or _text(cell).startswith(MARKER)


def with_setup_cell(notebook, source):
    """A copy of ``notebook`` (nbformat 4 dict) whose first code cell is the setup cell.

    An existing setup cell is updated in place (its outputs kept only if its source is unchanged)
    and moved before the first other code cell; markdown cells before it (the title) stay first.
    """
    cells = list(notebook.get("cells", []))
    old = [c for c in cells if is_setup_cell(c)]
    cells = [c for c in cells if not is_setup_cell(c)]
    new = {"cell_type": "code", "execution_count": None, "id": CELL_ID,
           "metadata": {"tags": list(TAGS)}, "outputs": [], "source": source.splitlines(True)}
    if old and _text(old[0]) == source:
        new["execution_count"] = old[0].get("execution_count")
        new["outputs"] = old[0].get("outputs", [])
        new["metadata"] = {**old[0].get("metadata", {}), "tags": list(TAGS)}
    first_code = next((i for i, c in enumerate(cells) if c.get("cell_type") == "code"), len(cells))
    cells.insert(first_code, new)
    return {**notebook, "cells": cells}


def problems(notebook, source):
    """Why ``notebook`` does not start with the current setup cell (empty when it does)."""
    cells = notebook.get("cells", [])
    setup = [i for i, c in enumerate(cells) if is_setup_cell(c)]
    code = [i for i, c in enumerate(cells) if c.get("cell_type") == "code"]
    if not setup:
        return ["no setup cell"]
    found = []
    if len(setup) > 1:
        found.append(f"{len(setup)} setup cells")
    if code[0] != setup[0]:
        found.append("the setup cell is not the first code cell")
    if _text(cells[setup[0]]) != source:
        found.append("the setup cell is out of date (version or source changed)")
    if cells[setup[0]].get("id") != CELL_ID or TAGS[0] not in cells[setup[0]].get("metadata", {}).get(
            "tags", []):
        found.append(f"the setup cell lacks id {CELL_ID!r} or tag {TAGS[0]!r}")
    return found


def default_notebooks(root=ROOT):
    return sorted((root / "book").glob("*.ipynb")) + sorted((root / "exercises" / "solutions").glob("*.ipynb"))


def dump(notebook):
    """nbformat's own on-disk layout (one-space indent, keys sorted, trailing newline)."""
    return json.dumps(notebook, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--check", action="store_true", help="report, change nothing; exit 1 on a problem")
    parser.add_argument("--root", type=Path, default=ROOT, help="repository root (for version and URL)")
    args = parser.parse_args(argv)
    source = cell_source(book_version(args.root), repository_url(args.root))
    paths = args.notebooks or default_notebooks(args.root)
    bad = 0
    for path in paths:
        notebook = json.loads(path.read_text(encoding="utf-8"))
        found = problems(notebook, source)
        if args.check:
            if found:
                bad += 1
                print(f"{path}: {'; '.join(found)}")
        elif found:
            path.write_text(dump(with_setup_cell(notebook, source)), encoding="utf-8")
            print(f"{path}: setup cell written")
    if args.check and bad:
        print(f"{bad} notebook(s) need `python .ci/setup_cell.py`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
