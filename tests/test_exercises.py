"""Proof, for EVERY registered exercise set, that the graded exercises are honest.

Generic over all sets: a new ``vae_from_scratch/grading/sets/chNN_*.py`` with its solutions notebook
``exercises/solutions/NN_*.ipynb`` and mutants ``tests/mutants/chNN_*.py`` is covered automatically:

* every solutions notebook, graded by the real grader (a separate process), scores full marks;
* every generated student notebook scores zero on every exercise;
* every mutant (a typical wrong answer) scores less than full marks, in-process, for three seeds;
* every registered exercise has at least two mutants and a check cell in a solutions notebook;
* the committed student notebooks are exactly what the generator produces.

Seeds are random (printed on failure): each exercise's false-failure rate is below 1e-4 by design.
"""

import importlib
import json
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

from vae_from_scratch.grading import REGISTRY, run_exercise
from vae_from_scratch.grading import sets as exercise_sets
from vae_from_scratch.grading.check import exercise_sort_key, new_seed
from vae_from_scratch.grading.generate import generate
from vae_from_scratch.grading.grader import cell_source, split_checks

from . import mutants as mutant_package

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = sorted((ROOT / "exercises" / "solutions").glob("*.ipynb"))
STUDENTS = sorted((ROOT / "exercises").glob("*.ipynb"))
EXERCISES = sorted(REGISTRY, key=exercise_sort_key)


def _load_mutants():
    found, errors = {}, {}
    for info in sorted(pkgutil.iter_modules(mutant_package.__path__), key=lambda i: i.name):
        try:
            module = importlib.import_module(f"{mutant_package.__name__}.{info.name}")
        except Exception as error:  # noqa: BLE001 -- reported by a test below
            errors[info.name] = repr(error)
            continue
        for exercise_id, wrong in getattr(module, "MUTANTS", {}).items():
            found.setdefault(exercise_id, []).extend((info.name, m) for m in wrong)
    return found, errors


MUTANTS, MUTANT_ERRORS = _load_mutants()
MUTANT_CASES = [(exercise_id, module, mutant) for exercise_id in sorted(MUTANTS, key=exercise_sort_key)
                for module, mutant in MUTANTS[exercise_id]]


def _check_ids(path):
    notebook = json.loads(path.read_text(encoding="utf-8"))
    ids = []
    for cell in notebook["cells"]:
        if cell.get("cell_type") == "code":
            ids.extend(exercise_id for exercise_id, _ in split_checks(cell_source(cell))[1])
    return ids


def _grade(path, tmp_path):
    report = tmp_path / "report.json"
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    seed = new_seed()
    process = subprocess.run([sys.executable, "-m", "vae_from_scratch.grading", str(path), "--json",
                              str(report), "--seed", str(seed)],
                             cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert process.returncode == 0, f"seed {seed}\n{process.stdout}\n{process.stderr}"
    return json.loads(report.read_text()), process.stdout


def test_every_exercise_set_imports():
    assert exercise_sets.IMPORT_ERRORS == {}, "\n".join(exercise_sets.IMPORT_ERRORS.values())
    assert MUTANT_ERRORS == {}
    assert EXERCISES, "no exercise is registered"


@pytest.mark.parametrize("exercise_id", EXERCISES)
def test_exercise_is_well_formed(exercise_id):
    exercise = REGISTRY[exercise_id]
    chapter = exercise_id.split(".")[0]
    assert chapter.isdigit() and exercise_id.split(".")[1].isdigit(), "ids are 'N.k'"
    module = exercise.tests[0].run.__module__ if exercise.tests else ""
    assert module.split(".")[-1].startswith(f"ch{int(chapter):02d}_"), (
        f"exercise {exercise_id} is declared in {module}, expected sets/ch{int(chapter):02d}_*.py")
    assert exercise.tests and exercise.points > 0
    assert exercise.function.isidentifier()
    assert callable(exercise.reference)
    for test in exercise.tests:
        assert test.points > 0 and test.name
        assert test.hint, f"test {test.name!r} of {exercise_id} has no hint"


@pytest.mark.parametrize("exercise_id", EXERCISES)
def test_exercise_has_two_mutants_and_a_check_cell(exercise_id):
    assert len(MUTANTS.get(exercise_id, [])) >= 2, (
        f"exercise {exercise_id} needs at least two mutants in tests/mutants/ (MUTANTS dict)")
    checked = {exercise_id for path in SOLUTIONS for exercise_id in _check_ids(path)}
    assert exercise_id in checked, f"no solutions notebook has a check cell for {exercise_id}"


def test_mutants_name_registered_exercises():
    assert set(MUTANTS) <= set(REGISTRY), set(MUTANTS) - set(REGISTRY)


@pytest.mark.parametrize("exercise_id", EXERCISES)
def test_the_reference_itself_is_rejected(exercise_id):
    result = run_exercise(exercise_id, REGISTRY[exercise_id].reference, seed=1)
    assert result.status == "rejected" and result.score == 0


@pytest.mark.parametrize("exercise_id, module, mutant", MUTANT_CASES,
                         ids=[f"{e}-{getattr(m, '__name__', i)}" for i, (e, _, m) in enumerate(MUTANT_CASES)])
def test_mutant_scores_less_than_full(exercise_id, module, mutant):
    for _ in range(3):
        seed = new_seed()
        result = run_exercise(exercise_id, mutant, seed=seed, timeout=60)
        assert result.status != "rejected", f"mutant {module}.{mutant} is rejected as using the reference"
        assert result.score < result.max_score, (
            f"mutant {module}.{getattr(mutant, '__name__', mutant)} scored full marks on {exercise_id} "
            f"with seed {seed}")


@pytest.mark.parametrize("path", SOLUTIONS, ids=[p.name for p in SOLUTIONS])
def test_solutions_notebook_scores_full_marks(path, tmp_path):
    before = path.read_bytes()
    report, printed = _grade(path, tmp_path)
    assert path.read_bytes() == before
    graded = [e["id"] for e in report["exercises"]]
    assert graded == list(dict.fromkeys(_check_ids(path))), printed
    for entry in report["exercises"]:
        assert entry["status"] == "graded" and entry["score"] == entry["max_score"] > 0, (
            f"seed {report['seed']}\n{printed}")
        assert entry["seconds"] < 30, f"{entry['id']} took {entry['seconds']:.1f} s to grade (aim: < 2 s)"


@pytest.mark.parametrize("path", STUDENTS, ids=[p.name for p in STUDENTS])
def test_student_notebook_scores_zero(path, tmp_path):
    report, printed = _grade(path, tmp_path)
    expected = json.loads(path.read_text(encoding="utf-8"))["metadata"]["vae_from_scratch"]["exercises"]
    assert [e["id"] for e in report["exercises"]] == expected
    for entry in report["exercises"]:
        assert entry["score"] == 0 and entry["max_score"] > 0, printed


def test_student_notebooks_are_generated_from_the_solutions():
    problems = generate(ROOT, check=True)
    assert not problems, "\n".join(problems)
    assert [p.name for p in STUDENTS] == [p.name for p in SOLUTIONS]
    for path in STUDENTS:
        text = path.read_text(encoding="utf-8")
        assert "BEGIN SOLUTION" not in text and "END SOLUTION" not in text
