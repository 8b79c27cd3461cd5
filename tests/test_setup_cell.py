"""The setup cell that starts every chapter and exercise notebook (written by .ci/setup_cell.py).

Unit tests run the script on copies of the notebooks (never on the committed ones). The slow test
proves the cell's promise offline: in a fresh virtual environment where the book's package is
missing, the cell installs it from a local copy of the repository (VAE_FROM_SCRATCH_SOURCE), after
which the package imports; run again, it does nothing and prints nothing.
"""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _load_script():
    spec = importlib.util.spec_from_file_location("setup_cell", ROOT / ".ci" / "setup_cell.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


setup_cell = _load_script()
VERSION = setup_cell.book_version()


def _notebook(*cells):
    return {"cells": list(cells), "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def _md(text, cid="m"):
    return {"cell_type": "markdown", "id": cid, "metadata": {}, "source": [text]}


def _code(text, cid="c"):
    return {"cell_type": "code", "execution_count": 1, "id": cid, "metadata": {}, "outputs": [],
            "source": [text]}


def test_cell_is_pinned_to_the_book_version_and_short():
    import vae_from_scratch

    assert VERSION == vae_from_scratch.__version__
    source = setup_cell.cell_source(VERSION)
    assert f"vae-from-scratch=={VERSION}" in source
    assert setup_cell.ENV in source
    with_url = setup_cell.cell_source(VERSION, "https://github.com/vae-from-scratch/vae-from-scratch")
    assert f'"git+https://github.com/vae-from-scratch/vae-from-scratch@v{VERSION}"' in with_url
    for text in (source, with_url):  # the chapters' line limit
        assert all(len(line) <= 88 for line in text.splitlines()), text
    compile(source, "setup cell", "exec")


def test_cell_goes_before_the_first_code_cell_and_is_idempotent():
    source = setup_cell.cell_source(VERSION)
    nb = _notebook(_md("# Title"), _code("x = 1"), _md("text", "m2"), _code("y = 2", "c2"))
    assert setup_cell.problems(nb, source) == ["no setup cell"]
    once = setup_cell.with_setup_cell(nb, source)
    kinds = [(c["cell_type"], c["id"]) for c in once["cells"]]
    assert kinds == [("markdown", "m"), ("code", "vae-setup"), ("code", "c"), ("markdown", "m2"),
                     ("code", "c2")]
    assert once["cells"][1]["metadata"]["tags"] == ["remove-cell"]
    assert setup_cell.problems(once, source) == []
    assert setup_cell.with_setup_cell(once, source) == once
    # a new version (or source) makes the check fail, and updating replaces the cell, not adds one
    newer = setup_cell.cell_source("9.9.9")
    assert "out of date" in " ".join(setup_cell.problems(once, newer))
    updated = setup_cell.with_setup_cell(once, newer)
    assert sum(setup_cell.is_setup_cell(c) for c in updated["cells"]) == 1
    assert setup_cell.problems(updated, newer) == []


def test_script_writes_and_checks_copies_of_the_notebooks(tmp_path):
    copies = []
    for path in [*sorted((ROOT / "book").glob("*.ipynb"))[:1],
                 *sorted((ROOT / "exercises" / "solutions").glob("*.ipynb"))[:1]]:
        copies.append(tmp_path / path.name)
        shutil.copy(path, copies[-1])
    script = [sys.executable, str(ROOT / ".ci" / "setup_cell.py")]
    check = subprocess.run([*script, "--check", *map(str, copies)], capture_output=True, text=True)
    assert check.returncode == 1 and "no setup cell" in check.stdout
    subprocess.run([*script, *map(str, copies)], check=True, capture_output=True)
    first = [p.read_bytes() for p in copies]
    check = subprocess.run([*script, "--check", *map(str, copies)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout
    subprocess.run([*script, *map(str, copies)], check=True, capture_output=True)
    assert [p.read_bytes() for p in copies] == first, "a second run changed the notebooks"
    for path in copies:
        nb = json.loads(path.read_text())
        assert setup_cell.is_setup_cell(next(c for c in nb["cells"] if c["cell_type"] == "code"))


def test_exercise_generator_carries_the_setup_cell_to_the_student_notebook(tmp_path):
    from vae_from_scratch.grading.generate import render

    solution = sorted((ROOT / "exercises" / "solutions").glob("*.ipynb"))[0]
    copy = tmp_path / "solutions" / solution.name
    copy.parent.mkdir()
    source = setup_cell.cell_source(VERSION)
    copy.write_text(setup_cell.dump(setup_cell.with_setup_cell(json.loads(solution.read_text()), source)))
    rendered = render(copy)
    student = json.loads(rendered if isinstance(rendered, str) else json.dumps(rendered))
    assert setup_cell.problems(student, source) == []


def _base_python():
    """An interpreter without this repository's package: the one the virtual environment came from."""
    return getattr(sys, "_base_executable", None) or shutil.which("python3")


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_setup_cell_installs_the_package_offline_in_a_fresh_environment(tmp_path):
    # a local copy of the repository: what the cell installs instead of the network source
    clone = tmp_path / "clone"
    clone.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (ROOT / name).exists():
            shutil.copy(ROOT / name, clone / name)
    shutil.copytree(ROOT / "vae_from_scratch", clone / "vae_from_scratch",
                    ignore=shutil.ignore_patterns("__pycache__"))

    # a fresh environment: the base interpreter, with this environment's third-party packages
    # (numpy, torch, setuptools, pip) on its path but NOT the book's package (the editable install
    # is a .pth hook in site-packages, which a plain path entry does not run)
    env_dir = tmp_path / "fresh"
    subprocess.run([_base_python(), "-m", "venv", "--without-pip", str(env_dir)], check=True, timeout=60)
    python = env_dir / "bin" / "python"
    fresh_site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                check=True, capture_output=True, text=True).stdout.strip()
    Path(fresh_site, "outer_packages.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_CACHE_DIR="1",
               **{setup_cell.ENV: f"--no-deps --no-build-isolation {clone}"})
    run = dict(cwd=tmp_path, env=env, capture_output=True, text=True, timeout=150)

    probe = "import importlib.util; print(importlib.util.find_spec('vae_from_scratch'))"
    before = subprocess.run([str(python), "-c", probe], **run)
    assert before.stdout.strip() == "None", f"the fresh environment already has the package: {before}"

    cell = tmp_path / "cell.py"
    cell.write_text(setup_cell.cell_source(VERSION) + "\nimport vae_from_scratch\n"
                    "import vae_from_scratch.numpy.distributions\n"
                    "print(vae_from_scratch.__version__, vae_from_scratch.__file__)\n")
    first = subprocess.run([str(python), str(cell)], **run)
    assert first.returncode == 0, first.stdout + first.stderr
    version, location = first.stdout.split()[-2:]
    assert version == VERSION
    assert Path(location).is_relative_to(env_dir), f"imported from {location}, not the fresh environment"

    # installed: the cell alone does nothing and prints nothing
    again = subprocess.run([str(python), "-c", setup_cell.cell_source(VERSION)], **run)
    assert again.returncode == 0 and again.stdout == "" and again.stderr == "", again


def test_every_committed_notebook_starts_with_the_current_setup_cell():
    """Chapters, solutions and (generated) student notebooks; fix with `python .ci/setup_cell.py`,
    then `python -m vae_from_scratch.grading.generate` and `python .ci/execute_notebooks.py`."""
    source = setup_cell.cell_source(VERSION, setup_cell.repository_url())
    paths = setup_cell.default_notebooks() + sorted((ROOT / "exercises").glob("[0-9]*.ipynb"))
    bad = {p.relative_to(ROOT).as_posix(): setup_cell.problems(json.loads(p.read_text()), source)
           for p in paths}
    bad = {k: v for k, v in bad.items() if v}
    assert not bad, f"notebooks without the current setup cell: {bad}"
