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

import math
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
    # Further package objects an answer may not use (the reference and same-named functions of
    # every ``vae_from_scratch`` module, e.g. the torch twin, are always forbidden).
    forbidden: tuple = ()

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


def false_failure_rate(z, m=1):
    r"""Probability that ``m`` two-sided z-tests at ``z`` standard errors fail for a correct answer.

    :math:`m \cdot 2\Phi(-z) = m \operatorname{erfc}(z/\sqrt2)` (union bound over the ``m`` tests;
    normal approximation of each sample mean, i.e. the central limit theorem). ``z=5``: 5.7e-7.
    """
    return m * math.erfc(z / math.sqrt(2.0))


def assert_unbiased(samples, expected, z=5.0, axis=0, what="your estimator", against="the true value",
                    std=None):
    r"""Two-sided z-test that i.i.d. ``samples`` (along ``axis``) have mean ``expected``.

    Every entry of the sample mean must lie within ``z`` estimated standard errors
    (:math:`\hat s/\sqrt n`) of ``expected``. For a correct estimator each entry fails with
    probability :math:`2\Phi(-z)` (5.7e-7 at ``z=5``; see :func:`false_failure_rate`), provided ``n`` is
    large enough for the central limit theorem (use n >= 1000 and estimators with finite variance).
    A zero-variance estimator must match ``expected`` to ``1e-12`` relative. When the standard
    deviation of one sample is known exactly, pass it as ``std``: the standard error is then
    ``std / sqrt(n)`` instead of the sample estimate (a plain z-test, whose tails are closer to normal
    for skewed samples). The message gives the distance in standard errors, never the expected value.
    """
    samples = _to_numpy(samples)
    expected = _to_numpy(expected)
    n = samples.shape[axis]
    if n < 2:
        raise ValueError("assert_unbiased needs at least two samples")
    mean = samples.mean(axis=axis)
    try:
        shape = onp.broadcast_shapes(mean.shape, expected.shape)
    except ValueError:
        shape = None
    if shape != mean.shape:
        raise AssertionError(f"{what} has shape {mean.shape} per sample, expected shape {expected.shape}")
    if not onp.all(onp.isfinite(mean)):
        raise AssertionError(f"{what} produced inf or NaN")
    spread = samples.std(axis=axis, ddof=1) if std is None else _to_numpy(std)
    se = spread / math.sqrt(n)
    floor = 1e-12 * (onp.abs(expected) + 1e-300)
    gap = onp.abs(mean - expected) / onp.maximum(se, floor)
    if not onp.all(gap <= z):
        raise AssertionError(f"the average of {what} is {onp.max(gap):.1f} standard errors away from "
                             f"{against} (allowed: {z:g})")


def _to_numpy(a):
    """Arrays, tensors (detached, on the CPU) and scalars to float64 NumPy arrays."""
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    return onp.asarray(a, dtype=float)
