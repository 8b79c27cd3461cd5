"""The vocabulary of graded exercises: an :class:`Exercise` owns a list of :class:`GradedTest`.

An exercise set (one module per chapter in :mod:`vae_from_scratch.grading.sets`) declares::

    EX = exercise("0.1", "Diagonal-Gaussian log-density", function="log_normal_diag",
                  reference=distributions.log_normal_diag)

    @EX.test("matches the density at random points", points=2,
             hint="Sum over the last axis only; sigma = exp(log_std), not exp(log_std / 2).")
    def _(f, rng):
        x, mean, log_std = ...                      # random inputs drawn from rng
        assert_close(f(x, mean, log_std), EX.reference(x, mean, log_std), rtol=1e-10)

A test receives the student's object ``f`` and a seeded ``numpy.random.Generator`` and fails by
raising ``AssertionError`` (any other exception counts as a failure too). Hints help without
revealing expected numbers; tolerances are stated and derived from the math in each test.
"""

from dataclasses import dataclass, field
from typing import Callable

import numpy as onp

REGISTRY = {}


@dataclass
class GradedTest:
    name: str
    points: float
    hint: str
    run: Callable  # run(f, rng) -> None, raises AssertionError on failure


@dataclass
class Exercise:
    id: str  # "chapter.number", e.g. "2.1"
    title: str
    function: str  # the name the student defines in the notebook
    reference: Callable  # the package's own solution; answers may not simply call it
    tests: list = field(default_factory=list)

    @property
    def points(self):
        return sum(t.points for t in self.tests)

    def test(self, name, points=1.0, hint=""):
        """Decorator: register ``run(f, rng)`` as a graded test of this exercise."""

        def register(run):
            self.tests.append(GradedTest(name, float(points), hint, run))
            return run

        return register


def exercise(id, title, function, reference):
    """Create and register an exercise; ids are unique across the book."""
    if id in REGISTRY:
        raise ValueError(f"exercise {id!r} is registered twice")
    REGISTRY[id] = Exercise(id, title, function, reference)
    return REGISTRY[id]


def assert_close(actual, expected, rtol=1e-7, atol=0.0, what="your result"):
    """Assert ``actual`` matches ``expected`` in shape and value, without revealing the numbers."""
    actual = _to_numpy(actual)
    expected = _to_numpy(expected)
    if actual.shape != expected.shape:
        raise AssertionError(f"{what} has shape {actual.shape}, expected shape {expected.shape}")
    if not onp.all(onp.isfinite(actual[onp.isfinite(expected)])):
        raise AssertionError(f"{what} contains inf or NaN where the true value is finite")
    if not onp.allclose(actual, expected, rtol=rtol, atol=atol):
        worst = onp.max(onp.abs(actual - expected) / (atol + rtol * onp.abs(expected) + 1e-300))
        raise AssertionError(f"{what} is off (worst entry {worst:.3g} x the tolerance)")


def _to_numpy(a):
    """Arrays, tensors (detached, on the CPU) and scalars to float64 NumPy arrays."""
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    return onp.asarray(a, dtype=float)
