"""Typical wrong answers to the graded exercises, one module per exercise set.

Each module ``chNN_<slug>.py`` defines ``MUTANTS = {"N.k": [wrong_answer, ...]}`` with at least two
typical mistakes per exercise. ``tests/test_exercises.py`` collects every module here and proves that
each mutant scores less than full marks (and that every registered exercise has at least two).
"""
