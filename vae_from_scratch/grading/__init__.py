"""Graded exercises: instant feedback in a notebook and a grader for whole notebooks.

In a notebook::

    from vae_from_scratch.grading import check
    check("0.1", log_normal_diag)        # one line per test, hints on failure, then the total

From a shell: ``vae-grade exercises/00_distributions.ipynb`` (or ``python -m vae_from_scratch.grading``)
executes the notebook in a separate process with time limits and prints a score table; ``--all DIR``
grades a folder of submissions into one CSV. Exercise sets live in :mod:`vae_from_scratch.grading.sets`;
the student notebooks in ``exercises/`` are generated from ``exercises/solutions/`` by
``python -m vae_from_scratch.grading.generate``.
"""

from .check import ExerciseResult, TestOutcome, check, format_result, get_exercise, run_exercise
from .core import REGISTRY, Exercise, GradedTest, assert_close, assert_unbiased, exercise

__all__ = [
    "check", "run_exercise", "format_result", "get_exercise", "ExerciseResult", "TestOutcome",
    "REGISTRY", "Exercise", "GradedTest", "exercise", "assert_close", "assert_unbiased",
    "grade_notebook",
]


def grade_notebook(path, **options):
    """Grade a notebook file in a separate process; see :func:`vae_from_scratch.grading.grader.grade_notebook`."""
    from .grader import grade_notebook as _grade

    return _grade(path, **options)
