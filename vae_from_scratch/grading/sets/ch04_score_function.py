r"""Exercise set 4: score-function gradients (``exercises/04_score_function.ipynb``).

4.1 the score-function (REINFORCE) estimator with a baseline, per sample; 4.2 the leave-one-out
baseline. References in :mod:`vae_from_scratch.numpy.estimators`.

Tolerances. Deterministic comparisons are against the score written in closed form (Gaussian:
:math:`\partial_\mu \log q = (z-\mu)/\sigma^2`, :math:`\partial_{\log\sigma}\log q = ((z-\mu)/\sigma)^2 - 1`;
Bernoulli: :math:`\partial_\lambda \log q = z - \operatorname{sigmoid}(\lambda)`) times the weight
:math:`f(z)-b`. Both sides are products of a few float64 terms of magnitude below 1e3: a correct answer
agrees to ~1e-12; we allow 1e-9 relative and absolute. Typical mistakes (baseline added, the density
instead of its log, a flipped sign, the mean over samples) are off by O(1).

Statistical tests (two-sided z-tests at 5 standard errors, normal approximation for n >= 2e4 i.i.d.
terms with finite variance; 2 Phi(-5) = 5.7e-7 each): 4.1 "unbiased" tests 4 coordinates -> 2.3e-6;
4.2 "unbiased with two samples" tests 4 coordinates -> 2.3e-6; 4.2's variance test compares variances
that differ by a factor > 100 in expectation (measured 400-6000x over seeds), estimated from 4000 pairs
(relative error < 10%), against a threshold of 10x: failure would need a > 30-sigma deviation.
Per exercise the false-failure rate is below 3e-6 < 1e-4.
"""

import autograd.numpy as anp
import numpy as onp
import scipy.special

from vae_from_scratch.numpy import distributions, estimators

from ..core import assert_close, assert_unbiased, exercise

ATOL = 1e-9  # see the module docstring
RTOL = 1e-9


# --- 4.1 ----------------------------------------------------------------------------------------

EX1 = exercise("4.1", "Score-function gradient with a baseline", function="score_function_gradient",
               reference=estimators.score_function_gradient)


def _gaussian_setting(rng, n):
    """q = N(mu, diag sigma^2) over K dims; phi = [mu, log_sigma]; n samples z ~ q."""
    K = int(rng.integers(2, 4))
    phi = onp.concatenate([rng.normal(0.0, 0.7, size=K), rng.uniform(-0.5, 0.3, size=K)])
    mu, sigma = phi[:K], onp.exp(phi[K:])
    z = mu + sigma * rng.standard_normal((n, K))
    log_q = lambda p, zz: distributions.log_normal_diag(zz, p[..., :K], p[..., K:])  # noqa: E731
    return K, phi, z, log_q


def _gaussian_score(phi, z):
    K = z.shape[-1]
    mu, sigma = phi[:K], onp.exp(phi[K:])
    u = (z - mu) / sigma
    return onp.concatenate([u / sigma, u**2 - 1.0], axis=-1)


def _check_shape(g, shape):
    g = onp.asarray(g, dtype=float)
    if g.shape != shape:
        raise AssertionError(f"your gradients have shape {g.shape}, expected one per sample: {shape}")
    return g


@EX1.test("per-sample values: (f(z_s) - b_s) times the score d log q(z_s) / d phi", points=2,
          hint="For each sample s: weight w_s = f(z_s) - baseline_s (a number, no gradient), then the "
               "gradient of w_s * log_q(phi, z_s) with respect to phi, z held fixed. Return all S of them.")
def _(f, rng):
    S = int(rng.integers(5, 9))
    K, phi, z, log_q = _gaussian_setting(rng, S)
    w = rng.normal(size=K)
    fun = lambda zz: anp.sin(anp.dot(zz, w)) + anp.sum(zz**2, -1)  # noqa: E731
    baseline = rng.normal(size=S)
    expected = (fun(z) - baseline)[:, None] * _gaussian_score(phi, z)
    g = _check_shape(f(fun, log_q, phi, z, baseline), (S, 2 * K))
    assert_close(g, expected, rtol=RTOL, atol=ATOL, what="your per-sample gradients")


@EX1.test("without a baseline (baseline=None) it is f(z_s) times the score", points=1,
          hint="baseline=None means no baseline at all: weight f(z_s) itself.")
def _(f, rng):
    S = int(rng.integers(5, 9))
    K, phi, z, log_q = _gaussian_setting(rng, S)
    fun = lambda zz: anp.sum(zz**3, -1) + 2.0  # noqa: E731
    expected = fun(z)[:, None] * _gaussian_score(phi, z)
    g = _check_shape(f(fun, log_q, phi, z, None), (S, 2 * K))
    assert_close(g, expected, rtol=RTOL, atol=ATOL, what="your per-sample gradients")


@EX1.test("is unbiased with a constant baseline (z-test against the exact gradient)", points=2,
          hint="Any baseline that does not depend on z_s leaves the mean unchanged, because the score "
               "has mean zero; check the sign of the baseline and that you use log q, not q.")
def _(f, rng):
    n = 20000
    phi = onp.concatenate([rng.normal(0.0, 0.7, size=2), rng.uniform(-0.5, 0.3, size=2)])
    mu, sigma2 = phi[:2], onp.exp(2 * phi[2:])
    z = mu + onp.sqrt(sigma2) * rng.standard_normal((n, 2))
    log_q = lambda p, zz: distributions.log_normal_diag(zz, p[..., :2], p[..., 2:])  # noqa: E731
    # E[sum z^3] = sum mu^3 + 3 mu sigma^2: d/dmu = 3 mu^2 + 3 sigma^2, d/dlog sigma = 6 mu sigma^2
    exact = onp.concatenate([3 * mu**2 + 3 * sigma2, 6 * mu * sigma2])
    baseline = float(rng.uniform(1.0, 3.0))
    g = _check_shape(f(lambda zz: anp.sum(zz**3, -1), log_q, phi, z, baseline), (n, 4))
    assert_unbiased(g, exact, z=5.0, what="your per-sample gradients", against="the exact gradient")


@EX1.test("works for discrete (Bernoulli) latents", points=1,
          hint="Nothing Gaussian is needed: only f's values and the gradient of log_q with respect to "
               "phi (here the logits), z fixed.")
def _(f, rng):
    S, K = int(rng.integers(5, 9)), 3
    logits = rng.normal(0.0, 1.5, size=K)
    z = (rng.random((S, K)) < scipy.special.expit(logits)).astype(float)
    fun = lambda zz: anp.dot(zz, onp.array([1.0, -2.0, 0.5])) + 4.0 * zz[..., 0] * zz[..., 2]  # noqa: E731
    log_q = lambda p, zz: distributions.bernoulli_log_likelihood(zz, p * anp.ones(anp.shape(zz)))  # noqa: E731
    baseline = float(rng.normal())
    expected = (fun(z) - baseline)[:, None] * (z - scipy.special.expit(logits))
    g = _check_shape(f(fun, log_q, logits, z, baseline), (S, K))
    assert_close(g, expected, rtol=RTOL, atol=ATOL, what="your per-sample gradients")


# --- 4.2 ----------------------------------------------------------------------------------------

EX2 = exercise("4.2", "The leave-one-out baseline", function="leave_one_out_baseline",
               reference=estimators.leave_one_out_baseline)


@EX2.test("b_s is the mean of the other samples' values (axis 0)", points=2,
          hint="Sum all values along axis 0, subtract the sample's own value, divide by the number of "
               "the others.")
def _(f, rng):
    S, B = int(rng.integers(3, 8)), int(rng.integers(2, 5))
    for shape in [(S,), (S, B)]:
        v = rng.normal(0.0, 3.0, size=shape)
        oracle = onp.stack([onp.delete(v, s, axis=0).mean(axis=0) for s in range(S)])
        assert_close(f(v), oracle, rtol=RTOL, atol=ATOL, what=f"your baseline for values of shape {shape}")


@EX2.test("b_s does not depend on sample s's own value", points=1,
          hint="A baseline that includes f(z_s) correlates with the score of z_s and biases the estimator.")
def _(f, rng):
    S = int(rng.integers(3, 8))
    v = rng.normal(size=S)
    s = int(rng.integers(0, S))
    v2 = v.copy()
    v2[s] += 10.0
    b, b2 = onp.asarray(f(v), dtype=float), onp.asarray(f(v2), dtype=float)
    if b.shape != (S,) or b2.shape != (S,):
        raise AssertionError(f"your baseline has shape {b.shape}, expected {(S,)}")
    if abs(b2[s] - b[s]) > 1e-9:
        raise AssertionError("changing one sample's value changed its own baseline")
    others = onp.arange(S) != s
    if onp.allclose(b2[others], b[others]):
        raise AssertionError("changing one sample's value did not change the others' baselines")


@EX2.test("keeps the score-function estimator unbiased with only two samples", points=2,
          hint="With S = 2 each sample's baseline is the other sample's value; a baseline that averages "
               "in the sample itself scales the gradient by (S - 1) / S.")
def _(f, rng):
    n = 20000
    phi = onp.concatenate([rng.normal(0.0, 0.7, size=2), rng.uniform(-0.5, 0.3, size=2)])
    mu, sigma = phi[:2], onp.exp(phi[2:])
    exact = onp.concatenate([3 * mu**2 + 3 * sigma**2, 6 * mu * sigma**2])  # d E[sum z^3]
    pairs = mu + sigma * rng.standard_normal((2, n, 2))
    values = (pairs**3).sum(-1)  # (2, n)
    b = onp.asarray(f(values), dtype=float)
    if b.shape != (2, n):
        raise AssertionError(f"your baseline has shape {b.shape} for values of shape {(2, n)}")
    g = (values - b)[..., None] * _gaussian_score(phi, pairs)  # (2, n, 4)
    # z-test at 5 standard errors on 4 coordinates of the S = 2 estimator: 2.3e-6
    assert_unbiased(g.mean(0), exact, z=5.0, what="the two-sample estimator with your baseline",
                    against="the exact gradient")


@EX2.test("cuts the variance when f has a large mean", points=1,
          hint="Subtracting the others' mean removes f's common offset from every weight.")
def _(f, rng):
    n = 4000
    phi = onp.concatenate([rng.normal(0.0, 0.5, size=2), onp.zeros(2)])
    pairs = phi[:2] + rng.standard_normal((2, n, 2))
    values = (pairs**2).sum(-1) + 50.0
    b = onp.asarray(f(values), dtype=float)
    if b.shape != (2, n):
        raise AssertionError(f"your baseline has shape {b.shape} for values of shape {(2, n)}")
    score = _gaussian_score(phi, pairs)
    var_with = ((values - b)[..., None] * score).mean(0).var(0).sum()
    var_without = (values[..., None] * score).mean(0).var(0).sum()
    # expected ratio > 100 (see the module docstring); required 10
    if not var_with * 10.0 < var_without:
        raise AssertionError("with your baseline the variance is not much smaller than without one")
