r"""Exercise set 4: score-function gradients (``exercises/04_score_function.ipynb``).

4.1 the score-function (REINFORCE) estimator with a baseline, per sample; 4.2 the leave-one-out
baseline; 4.3 (derive) the exact variance of the score-function estimate in the chapter's
scalar-bottleneck example. References in :mod:`vae_from_scratch.numpy.estimators` (4.1, 4.2) and
:func:`_sf_variance_reference` below (4.3, checked against a 4-million-sample Monte Carlo estimate
when it was written: 6.255 measured, 6.268 derived, one standard error apart).

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
Per exercise the false-failure rate is below 3e-6 < 1e-4. 4.1's high-dimensional test and all of
4.3 are deterministic (4.3 compares closed forms of magnitude below 2e3 at rtol 1e-9).
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


@EX1.test("per-sample values: (f(z_l) - b_l) times the score d log q(z_l) / d phi", points=2,
          hint="For each sample l: weight w_l = f(z_l) - baseline_l (a number, no gradient), then the "
               "gradient of w_l * log_q(phi, z_l) with respect to phi, z held fixed. Return all S of them.")
def _(f, rng):
    S = int(rng.integers(5, 9))
    K, phi, z, log_q = _gaussian_setting(rng, S)
    w = rng.normal(size=K)
    fun = lambda zz: anp.sin(anp.dot(zz, w)) + anp.sum(zz**2, -1)  # noqa: E731
    baseline = rng.normal(size=S)
    expected = (fun(z) - baseline)[:, None] * _gaussian_score(phi, z)
    g = _check_shape(f(fun, log_q, phi, z, baseline), (S, 2 * K))
    assert_close(g, expected, rtol=RTOL, atol=ATOL, what="your per-sample gradients")


@EX1.test("without a baseline (baseline=None) it is f(z_l) times the score", points=1,
          hint="baseline=None means no baseline at all: weight f(z_l) itself.")
def _(f, rng):
    S = int(rng.integers(5, 9))
    K, phi, z, log_q = _gaussian_setting(rng, S)
    fun = lambda zz: anp.sum(zz**3, -1) + 2.0  # noqa: E731
    expected = fun(z)[:, None] * _gaussian_score(phi, z)
    g = _check_shape(f(fun, log_q, phi, z, None), (S, 2 * K))
    assert_close(g, expected, rtol=RTOL, atol=ATOL, what="your per-sample gradients")


@EX1.test("is unbiased with a constant baseline (z-test against the exact gradient)", points=2,
          hint="Any baseline that does not depend on z_l leaves the mean unchanged, because the score "
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


@EX1.test("is exact in 784 dimensions and at extreme logits, where q(z) itself underflows", points=1,
          hint="Work with log q throughout. q(z) = exp(log q) is 0.0 in float64 once log q < -745 (any z "
               "in a few hundred dimensions, or a Bernoulli logit of 800 against its sample), so a "
               "score written as grad(q) / q is 0 / 0. Differentiate log_q itself.")
def _(f, rng):
    S, K = 3, 784
    phi = onp.concatenate([rng.normal(0.0, 0.5, size=K), rng.uniform(-0.3, 0.3, size=K)])
    z = phi[:K] + onp.exp(phi[K:]) * rng.standard_normal((S, K))
    log_q = lambda p, zz: distributions.log_normal_diag(zz, p[..., :K], p[..., K:])  # noqa: E731
    fun = lambda zz: anp.sum(zz, -1) / K  # noqa: E731
    baseline = rng.normal(size=S)
    expected = (fun(z) - baseline)[:, None] * _gaussian_score(phi, z)
    g = _check_shape(f(fun, log_q, phi, z, baseline), (S, 2 * K))
    assert_close(g, expected, rtol=RTOL, atol=ATOL, what="your per-sample gradients in 784 dimensions")
    # three Bernoulli latents with logits +-800; the first always disagrees with its logit's sign
    logits = rng.choice([-800.0, 800.0], size=3)
    z_b = (rng.random((S, 3)) < 0.5).astype(float)
    z_b[:, 0] = 1.0 if logits[0] < 0 else 0.0
    log_q_b = lambda p, zz: distributions.bernoulli_log_likelihood(zz, p * anp.ones(anp.shape(zz)))  # noqa: E731
    fun_b = lambda zz: anp.sum(zz, -1) + 1.0  # noqa: E731
    expected_b = fun_b(z_b)[:, None] * (z_b - scipy.special.expit(logits))
    g_b = _check_shape(f(fun_b, log_q_b, logits, z_b, None), (S, 3))
    assert_close(g_b, expected_b, rtol=RTOL, atol=ATOL, what="your per-sample gradients at logits +-800")


# --- 4.2 ----------------------------------------------------------------------------------------

EX2 = exercise("4.2", "The leave-one-out baseline", function="leave_one_out_baseline",
               reference=estimators.leave_one_out_baseline)


@EX2.test("b_l is the mean of the other samples' values (axis 0)", points=2,
          hint="Sum all values along axis 0, subtract the sample's own value, divide by the number of "
               "the others.")
def _(f, rng):
    S, B = int(rng.integers(3, 8)), int(rng.integers(2, 5))
    for shape in [(S,), (S, B)]:
        v = rng.normal(0.0, 3.0, size=shape)
        oracle = onp.stack([onp.delete(v, s, axis=0).mean(axis=0) for s in range(S)])
        assert_close(f(v), oracle, rtol=RTOL, atol=ATOL, what=f"your baseline for values of shape {shape}")


@EX2.test("b_l does not depend on sample l's own value", points=1,
          hint="A baseline that includes f(z_l) correlates with the score of z_l and biases the estimator.")
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


# --- 4.3 ----------------------------------------------------------------------------------------


def _sf_variance_reference(mu, c):
    r"""Variance of :math:`(f(\mathbf z) - \mathbb E f)\,(z_1 - \mu_1)` for :math:`\mathbf z \sim
    \mathcal N(\boldsymbol\mu, \mathbf I)` and :math:`f(\mathbf z) = -\tfrac12\lVert\mathbf z - \mathbf c\rVert^2`.

    With :math:`\mathbf a = \boldsymbol\mu - \mathbf c` and :math:`\boldsymbol\epsilon = \mathbf z - \boldsymbol\mu`,
    :math:`f - \mathbb E f = -\tfrac12\sum_j T_j` with :math:`T_j = \epsilon_j^2 - 1 + 2a_j\epsilon_j`
    (independent, mean 0, variance :math:`2 + 4a_j^2`). The estimate has mean :math:`-a_1` and second
    moment :math:`\tfrac14\big(E[T_1^2\epsilon_1^2] + \sum_{j>1} E[T_j^2]\big) = \tfrac14\big(10 + 12a_1^2
    + \sum_{j>1}(2 + 4a_j^2)\big)`, so the variance is
    :math:`\tfrac52 + 2a_1^2 + \tfrac{K-1}2 + \sum_{j>1} a_j^2` (:math:`3 + \tfrac32K` at the chapter's
    :math:`\boldsymbol\mu = \mathbf 0, \mathbf c = \mathbf 1`).
    """
    a = onp.asarray(mu, dtype=float) - onp.asarray(c, dtype=float)
    return 2.5 + 2.0 * a[0] ** 2 + 0.5 * (a.size - 1) + onp.sum(a[1:] ** 2)


EX3 = exercise("4.3", "Derive: the variance behind the scalar bottleneck", function="score_function_variance",
               reference=_sf_variance_reference)


def _check_number(value):
    value = onp.asarray(value, dtype=float)
    if value.shape != ():
        raise AssertionError(f"return one number (the variance), got an array of shape {value.shape}")
    return float(value)


@EX3.test("matches the exact variance at the chapter's point (mu = 0, c = 1), for several K", points=1,
          hint="Write f - E f as a sum of K independent zero-mean terms, one per coordinate, and the "
               "estimate as that sum times eps_1; the j = 1 term is not independent of eps_1.")
def _(f, rng):
    for K in sorted(set(rng.integers(1, 40, size=3).tolist()) | {1}):
        got = _check_number(f(onp.zeros(K), onp.ones(K)))
        assert_close(got, 3.0 + 1.5 * K, rtol=RTOL, atol=ATOL, what=f"your variance for K = {K}")


@EX3.test("matches the exact variance for random mu and c", points=2,
          hint="With a = mu - c, the terms of the other coordinates contribute (2 + 4 a_j^2) / 4 each; "
               "the first coordinate's term needs E[eps^6] = 15 and E[eps^4] = 3.")
def _(f, rng):
    for _ in range(3):
        K = int(rng.integers(2, 7))
        mu, c = rng.normal(0.0, 1.0, size=K), rng.normal(0.0, 1.5, size=K)
        assert_close(_check_number(f(mu, c)), _sf_variance_reference(mu, c), rtol=RTOL, atol=ATOL,
                     what=f"your variance for K = {K}")


@EX3.test("is exact in 784 dimensions", points=1,
          hint="A closed form costs nothing in any dimension; a Monte Carlo estimate is never exact.")
def _(f, rng):
    mu, c = rng.normal(0.0, 0.3, size=784), rng.normal(0.0, 0.3, size=784)
    assert_close(_check_number(f(mu, c)), _sf_variance_reference(mu, c), rtol=RTOL, atol=ATOL,
                 what="your variance for K = 784")
