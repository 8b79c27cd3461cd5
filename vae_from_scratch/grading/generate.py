"""Write the student notebooks ``exercises/NN_*.ipynb`` from their sources in ``exercises/solutions/``.

    python -m vae_from_scratch.grading.generate            # regenerate every student notebook
    python -m vae_from_scratch.grading.generate --check    # exit 1 if a committed one is out of date

In a solutions notebook each answer sits between a line ``# BEGIN SOLUTION`` and a line
``# END SOLUTION`` (the otter-grader / nbgrader convention), inside a function whose signature and
docstring stay outside the markers. The student notebook replaces each such block by
``raise NotImplementedError("Exercise N.k: write your solution here")`` at the marker's indentation,
where ``N.k`` is the exercise of the next check cell (``check("N.k", name)``). It also drops cells
tagged ``solution-only``, clears outputs and execution counts, keeps cell ids, and records the
exercise ids in the notebook metadata (the grader grades them even if a check cell is deleted).
Output is byte-for-byte deterministic (sorted keys, one-space indent), so a test can compare it.
"""

import argparse
import ast
import json
import re
import sys
from pathlib import Path

from .grader import METADATA_KEY, split_checks

BEGIN = "# BEGIN SOLUTION"
END = "# END SOLUTION"
SOLUTION_ONLY_TAG = "solution-only"
STUB = 'raise NotImplementedError("Exercise {id}: write your solution here")'
KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}
_MARKER = re.compile(r"^(?P<indent>[ \t]*)#\s*(?P<kind>BEGIN|END) SOLUTION\s*$")


class GenerateError(Exception):
    """A solutions notebook breaks the authoring conventions."""


def default_root():
    """The repository root: the folder holding ``vae_from_scratch/`` and ``exercises/``."""
    return Path(__file__).resolve().parents[2]


def student_path(solution_path):
    solution_path = Path(solution_path)
    return solution_path.parent.parent / solution_path.name


def _source(cell):
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def _lines(text):
    """nbformat's on-disk form: a list of lines, each but the last ending in a newline."""
    return text.splitlines(keepends=True)


def stub_solutions(source, exercise_id, where="a cell"):
    """Replace every ``BEGIN``/``END SOLUTION`` block of ``source`` by the stub line."""
    out, inside, indent = [], False, ""
    for number, line in enumerate(source.split("\n"), start=1):
        match = _MARKER.match(line)
        if match and match["kind"] == "BEGIN":
            if inside:
                raise GenerateError(f"{where}, line {number}: nested {BEGIN}")
            inside, indent = True, match["indent"]
            out.append(indent + STUB.format(id=exercise_id))
        elif match and match["kind"] == "END":
            if not inside:
                raise GenerateError(f"{where}, line {number}: {END} without {BEGIN}")
            if match["indent"] != indent:
                raise GenerateError(f"{where}, line {number}: {END} is not indented like its {BEGIN}")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise GenerateError(f"{where}: {BEGIN} without {END}")
    stubbed = "\n".join(out)
    try:
        ast.parse(stubbed)
    except SyntaxError as error:
        raise GenerateError(f"{where}: the student version does not parse ({error.msg}, line "
                            f"{error.lineno}); keep signature and docstring outside the markers") from None
    return stubbed


def _has_marker(source):
    return any(_MARKER.match(line) for line in source.split("\n"))


def render(solution_path):
    """The student notebook for ``solution_path``, as the exact text to write."""
    solution_path = Path(solution_path)
    notebook = json.loads(solution_path.read_text(encoding="utf-8"))
    if notebook.get("nbformat") != 4:
        raise GenerateError(f"{solution_path}: need nbformat 4")
    cells = [c for c in notebook["cells"]
             if SOLUTION_ONLY_TAG not in c.get("metadata", {}).get("tags", [])]
    # the exercise of each cell: that of the next check call at or after it
    checks_after, pending = [None] * len(cells), None
    ids = []
    for position in range(len(cells) - 1, -1, -1):
        if cells[position].get("cell_type") == "code":
            _, checks = split_checks(_source(cells[position]))
            if checks:
                pending = checks[0][0]
        checks_after[position] = pending
    for cell in cells:
        if cell.get("cell_type") == "code":
            for exercise_id, _ in split_checks(_source(cell))[1]:
                if exercise_id not in ids:
                    ids.append(exercise_id)
    if not ids:
        raise GenerateError(f"{solution_path}: no check cell (check(\"N.k\", name))")

    out_cells, stubs = [], 0
    for position, cell in enumerate(cells):
        kind = cell.get("cell_type")
        source = _source(cell)
        where = f"{solution_path.name}, cell {position + 1}"
        tags = [t for t in cell.get("metadata", {}).get("tags", []) if t != SOLUTION_ONLY_TAG]
        new = {"cell_type": kind, "id": cell.get("id") or f"cell-{position + 1}",
               "metadata": {"tags": tags} if tags else {}}
        if kind == "code":
            if _has_marker(source):
                if checks_after[position] is None:
                    raise GenerateError(f"{where}: a solution with no check cell after it")
                source = stub_solutions(source, checks_after[position], where)
                stubs += 1
            new.update(execution_count=None, outputs=[])
        elif _has_marker(source):
            raise GenerateError(f"{where}: solution markers outside a code cell")
        new["source"] = _lines(source)
        out_cells.append(new)
    if not stubs:
        raise GenerateError(f"{solution_path}: no {BEGIN} block")
    student = {
        "cells": out_cells,
        "metadata": {
            "kernelspec": KERNELSPEC,
            "language_info": {"name": "python"},
            METADATA_KEY: {
                "exercises": ids,
                "generated_from": f"solutions/{solution_path.name}",
                "note": "Generated by `python -m vae_from_scratch.grading.generate`; edit the "
                        "solutions notebook instead.",
            },
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    return json.dumps(student, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def solution_notebooks(root=None):
    root = Path(root) if root else default_root()
    return sorted((root / "exercises" / "solutions").glob("*.ipynb"))


def generate(root=None, check=False, out=sys.stdout):
    """(Re)write every student notebook; with ``check``, only compare. Returns a list of problems."""
    root = Path(root) if root else default_root()
    problems = []
    sources = solution_notebooks(root)
    for solution in sources:
        target = student_path(solution)
        try:
            text = render(solution)
        except (GenerateError, json.JSONDecodeError, KeyError) as error:
            problems.append(f"{solution.relative_to(root)}: {error}")
            continue
        current = target.read_text(encoding="utf-8") if target.exists() else None
        if current == text:
            continue
        if check:
            state = "is missing" if current is None else "is out of date"
            problems.append(f"{target.relative_to(root)} {state}: run python -m vae_from_scratch.grading.generate")
        else:
            target.write_text(text, encoding="utf-8")
            print(f"wrote {target.relative_to(root)}", file=out)
    names = {s.name for s in sources}
    for student in sorted((root / "exercises").glob("*.ipynb")):
        if student.name not in names:
            problems.append(f"{student.relative_to(root)} has no source in exercises/solutions/")
    return problems


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m vae_from_scratch.grading.generate",
                                     description="Generate the student exercise notebooks from the "
                                                 "solutions notebooks.")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if a student notebook is missing or out of date")
    parser.add_argument("--root", type=Path, default=None, help="repository root (default: this checkout)")
    args = parser.parse_args(argv)
    problems = generate(args.root, check=args.check)
    for problem in problems:
        print(problem, file=sys.stderr)
    if not problems and args.check:
        print("student notebooks are up to date")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
