r"""Exercise set 1: latent-variable models and the marginal likelihood
(``exercises/01_latent_variable_models.ipynb``).

1.1 the exact :math:`\log p(\mathbf x)` of the linear-Gaussian testbed,
:math:`\log\mathcal N(\mathbf x; \mathbf b, \mathbf W\mathbf W^\top + s^2\mathbf I)` (reference
:func:`vae_from_scratch.numpy.testbed.log_marginal`); 1.2 the naive Monte Carlo estimate
:math:`\log \frac1S\sum_l p(\mathbf x\mid\mathbf z_l)` with :math:`\mathbf z_l \sim p(\mathbf z)`, in log
space (reference :func:`naive_log_marginal` below; the chapter writes it inline); 1.3 (derive) the
relative variance of that estimator as :math:`\log(1 + v(\mathbf x))`, which sets the number of samples
it needs (reference :func:`log_second_moment_ratio` below).

Tolerances. The oracles are independent float64 computations: scipy's multivariate normal for small
D, and for D = 784 the matrix determinant lemma and the Woodbury identity in the K-dimensional latent
space (a different route from the Cholesky factor of the D x D covariance). The values are sums of at
most ~800 terms of magnitude below 1e4 in total, from matrices with condition number below 1e4 (the
K x K matrix I + W^T W / s^2 for the Woodbury route), so a correct answer is within ~1e-10 relative of
the oracle; we allow 1e-8 (absolute and relative). Typical mistakes (s for s^2, a missing W W^T, a
missing log S, a mean of log-likelihoods instead of the log of a mean) are off by more than 1e-2.

High dimension. Every exercise has a test with D = 784 (an MNIST-sized observation), where the naive
forms break although they pass every small test. With s = 0.3, det(C) is about exp(-1800) (0.0 in
float64) whatever the data; the 1.1 and 1.3 tests use data off the model's subspace by more than its
noise, whose density is about exp(-4000) (a point drawn from the model would have about exp(-200),
representable); in the 1.2 test (s = 1) every likelihood p(x | z_l) is between about exp(-8000) and
exp(-2500). So log(pdf), log(det C) and log(mean(exp(log-likelihoods))) return -inf.

Statistical tests. 1.3 compares exp(answer) with the Monte Carlo average of (p(x|z) / p(x))^2 over
200000 prior samples by a two-sided z-test at 5 standard errors (false-failure rate 5.7e-7). 1.2's
convergence test uses S = 100000 prior samples on a model whose posterior
is as wide as the prior (K = 1, D = 2, s = 1): the relative variance v(x) of the naive estimator is
below 5 there, so the standard deviation of the log estimate is below sqrt(5 / 1e5) = 0.007, and the
tolerance 0.05 is more than 7 standard deviations (false-failure rate below 1e-12). Every other test
is deterministic given its inputs.
"""

import numpy as onp
import scipy.special
import scipy.stats

from vae_from_scratch.numpy import testbed

from ..core import assert_close, exercise

TOL = 1e-8  # see the module docstring
LOG_2PI = float(onp.log(2.0 * onp.pi))


def _model(rng, D=None, K=None, log_s=None):
    D = int(rng.integers(4, 8)) if D is None else D
    K = int(rng.integers(1, min(D, 4))) if K is None else K
    W, b = rng.normal(0.0, 1.0, (D, K)), rng.normal(0.0, 1.0, D)
    log_s = float(rng.uniform(onp.log(0.3), 0.0)) if log_s is None else log_s
    return W, b, log_s


def _oracle_woodbury(x, W, b, log_s):
    """log N(x; b, W W^T + s^2 I) by the determinant lemma and Woodbury, in K dimensions."""
    D, K = W.shape
    s2 = onp.exp(2.0 * log_s)
    small = onp.eye(K) + W.T @ W / s2  # I + W^T W / s^2
    log_det = D * onp.log(s2) + onp.linalg.slogdet(small)[1]
    r = x - b
    proj = r @ W  # (..., K)
    quad = (onp.sum(r**2, axis=-1) - onp.sum(proj * onp.linalg.solve(small, proj[..., None])[..., 0] / s2,
                                                 axis=-1)) / s2
    return -0.5 * (quad + log_det + D * LOG_2PI)


# --- 1.1 ----------------------------------------------------------------------------------------

EX1 = exercise("1.1", "The exact log p(x) of the linear-Gaussian testbed", function="testbed_log_marginal",
               reference=testbed.log_marginal)


@EX1.test("matches log N(x; b, W W^T + s^2 I) for one data point", points=2,
          hint="The marginal covariance is W W^T + s^2 I (s^2, not s; s = exp(log_s)); the log-density "
               "is -(r^T C^-1 r + log det C + D log 2 pi) / 2 with r = x - b.")
def _(f, rng):
    W, b, log_s = _model(rng)
    x = rng.normal(0.0, 2.0, W.shape[0])
    C = W @ W.T + onp.exp(2.0 * log_s) * onp.eye(W.shape[0])
    expected = scipy.stats.multivariate_normal(b, C).logpdf(x)
    assert_close(onp.asarray(f(x, W, b, log_s), dtype=float), onp.asarray(expected), rtol=TOL, atol=TOL)


@EX1.test("handles a batch of data points x (N, D) -> (N,)", points=1,
          hint="The covariance is shared by all data points: factor it once, then treat the rows of "
               "x - b together (e.g. a triangular solve with all of them as columns).")
def _(f, rng):
    W, b, log_s = _model(rng)
    N = int(rng.integers(8, 12))
    x = rng.normal(0.0, 2.0, (N, W.shape[0]))
    C = W @ W.T + onp.exp(2.0 * log_s) * onp.eye(W.shape[0])
    expected = scipy.stats.multivariate_normal(b, C).logpdf(x)
    assert_close(f(x, W, b, log_s), expected, rtol=TOL, atol=TOL)


@EX1.test("is finite and exact for 784-dimensional data (det C and the density underflow)", points=2,
          hint="det(C) of a 784 x 784 covariance with s = 0.3 is about exp(-1800), 0.0 in float64: never "
               "form a determinant or a density. Use the Cholesky factor L of C: log det C = "
               "2 sum(log diag L), and r^T C^-1 r = |L^-1 r|^2.")
def _(f, rng):
    W, b, log_s = _model(rng, D=784, K=int(rng.integers(3, 8)), log_s=float(onp.log(0.3)))
    # data off the model's subspace by more than its noise s: log p(x) is about -4000
    x = b + rng.normal(0.0, 1.0, (2, W.shape[1])) @ W.T + rng.normal(0.0, 1.0, (2, 784))
    expected = _oracle_woodbury(x, W, b, log_s)
    assert onp.all(expected < -800.0)  # the density exp(expected) underflows here
    values = onp.asarray(f(x, W, b, log_s), dtype=float)
    assert onp.all(onp.isfinite(values)), "your log p(x) is not finite for D = 784"
    assert_close(values, expected, rtol=TOL, atol=TOL)


# --- 1.2 ----------------------------------------------------------------------------------------


def naive_log_marginal(x, W, b, log_s, z):
    """log (1/S) sum_l N(x; W z_l + b, s^2 I) for prior samples z (S, K) and data x (N, D) -> (N,).

    Reference solution (the chapter writes this estimator inline): the log-likelihood of every pair
    (z_l, x_n), then a logsumexp over the samples.
    """
    D = W.shape[0]
    means = z @ W.T + b  # (S, D)
    sq = ((x[None, :, :] - means[:, None, :]) ** 2).sum(-1)  # (S, N)
    log_lik = -0.5 * sq * onp.exp(-2.0 * log_s) - D * log_s - 0.5 * D * LOG_2PI
    return scipy.special.logsumexp(log_lik, axis=0) - onp.log(len(z))


EX2 = exercise("1.2", "Naive Monte Carlo estimate of log p(x), in log space", function="naive_log_marginal",
               reference=naive_log_marginal)


def _oracle_naive(x, W, b, log_s, z):
    """scipy's log-densities for every (sample, data point) pair, then logsumexp over the samples."""
    log_lik = onp.stack([scipy.stats.norm.logpdf(x, loc=W @ zs + b, scale=onp.exp(log_s)).sum(-1)
                         for zs in z])  # (S, N)
    return scipy.special.logsumexp(log_lik, axis=0) - onp.log(len(z))


@EX2.test("matches log (1/S) sum_l p(x | z_l) at random inputs", points=2,
          hint="For each data point, average the likelihoods p(x | z_l) over the S samples, then take the "
               "log: logsumexp over the sample axis minus log S (a mean of log-likelihoods is a "
               "different, smaller number).")
def _(f, rng):
    W, b, log_s = _model(rng)
    N, S = int(rng.integers(3, 6)), int(rng.integers(6, 12))
    x = rng.normal(0.0, 1.5, (N, W.shape[0]))
    z = rng.standard_normal((S, W.shape[1]))
    assert_close(f(x, W, b, log_s, z), _oracle_naive(x, W, b, log_s, z), rtol=TOL, atol=TOL)


@EX2.test("is finite and exact for 784-dimensional data (the likelihoods underflow)", points=2,
          hint="Each p(x | z_l) is below exp(-1000) for D = 784 (here between about exp(-8000) and exp(-2500)), "
               "which is 0.0 in float64, so the log of "
               "their mean is -inf: stay in log space with scipy.special.logsumexp (or subtract the "
               "maximum log-likelihood before exponentiating).")
def _(f, rng):
    W, b, log_s = _model(rng, D=784, K=int(rng.integers(2, 5)), log_s=0.0)
    N, S = 3, int(rng.integers(20, 40))
    x = rng.normal(0.0, 2.0, (N, 784))
    z = rng.standard_normal((S, W.shape[1]))
    expected = _oracle_naive(x, W, b, log_s, z)
    assert onp.all(expected < -800.0)  # exp(expected) underflows: the naive form fails here
    values = onp.asarray(f(x, W, b, log_s, z), dtype=float)
    assert onp.all(onp.isfinite(values)), "your estimate is not finite for D = 784"
    assert_close(values, expected, rtol=TOL, atol=TOL)


@EX2.test("with one sample (S = 1) it is log p(x | z_1)", points=1,
          hint="With S = 1 the average is the single likelihood: no extra terms, and log S = 0.")
def _(f, rng):
    W, b, log_s = _model(rng)
    x = rng.normal(0.0, 1.5, (4, W.shape[0]))
    z = rng.standard_normal((1, W.shape[1]))
    expected = scipy.stats.norm.logpdf(x, loc=W @ z[0] + b, scale=onp.exp(log_s)).sum(-1)
    assert_close(f(x, W, b, log_s, z), expected, rtol=TOL, atol=TOL)


@EX2.test("converges to the exact log p(x) with 100000 samples (a wide posterior)", points=1,
          hint="The estimate is consistent: with many samples it must approach log N(x; b, W W^T + s^2 I). "
               "Average over the samples (axis 0 of z), not over the data points.")
def _(f, rng):
    W, b, log_s = _model(rng, D=2, K=1, log_s=0.0)
    W = 0.5 * W  # a weak decoder: the posterior is almost as wide as the prior, v(x) < 5
    x = b + rng.normal(0.0, 1.0, (3, 2))
    z = rng.standard_normal((100_000, 1))
    exact = testbed.log_marginal(x, W, b, log_s)
    # standard deviation of the estimate below 0.007 (module docstring): 0.05 is > 7 of them
    assert_close(f(x, W, b, log_s, z), exact, rtol=0.0, atol=0.05,
                 what="your estimate with S = 100000 (compared with the exact log p(x))")


# --- 1.3 ----------------------------------------------------------------------------------------


def log_second_moment_ratio(x, W, b, log_s):
    """log(1 + v(x)) = log E_p(z)[p(x | z)^2] - 2 log p(x) for the testbed, in closed form.

    Reference solution: p(x | z)^2 = (4 pi s^2)^(-D/2) N(x; W z + b, (s^2 / 2) I), so
    E_p(z)[p(x | z)^2] = (4 pi s^2)^(-D/2) N(x; b, W W^T + (s^2 / 2) I); both log-densities by
    testbed.log_marginal (a Cholesky factor), never as densities.
    """
    D = W.shape[0]
    log_m2 = -0.5 * D * onp.log(4.0 * onp.pi) - D * log_s + testbed.log_marginal(x, W, b, log_s - 0.5 * onp.log(2.0))
    return log_m2 - 2.0 * testbed.log_marginal(x, W, b, log_s)


EX3 = exercise("1.3", "How many samples naive Monte Carlo needs (derive)", function="log_second_moment_ratio",
               reference=log_second_moment_ratio)


def _oracle_ratio(x, W, b, log_s):
    D = W.shape[0]
    half = log_s - 0.5 * onp.log(2.0)
    return (-0.5 * D * onp.log(4.0 * onp.pi) - D * log_s + _oracle_woodbury(x, W, b, half)
            - 2.0 * _oracle_woodbury(x, W, b, log_s))


@EX3.test("matches log(1 + v(x)) in closed form for one data point and for a batch", points=2,
          hint="Write p(x | z)^2 as a constant times a Gaussian in x with variance s^2 / 2 (check the "
               "constant: (4 pi s^2)^(-D/2)), then integrate over z exactly as for p(x).")
def _(f, rng):
    W, b, log_s = _model(rng)
    x = rng.normal(0.0, 1.5, W.shape[0])
    assert_close(onp.asarray(f(x, W, b, log_s), dtype=float), onp.asarray(_oracle_ratio(x, W, b, log_s)),
                 rtol=TOL, atol=TOL, what="your log(1 + v) for one data point")
    xs = rng.normal(0.0, 1.5, (5, W.shape[0]))
    assert_close(f(xs, W, b, log_s), _oracle_ratio(xs, W, b, log_s), rtol=TOL, atol=TOL,
                 what="your log(1 + v) for a batch (N, D)")


@EX3.test("agrees with a Monte Carlo estimate of E[p(x|z)^2] / p(x)^2 (z-test)", points=1,
          hint="1 + v(x) is the average over prior samples z of (p(x | z) / p(x))^2: your closed form "
               "must match it. Return the logarithm, log(1 + v), not v.")
def _(f, rng):
    W, b, log_s = _model(rng, D=2, K=1, log_s=0.0)
    W = 0.5 * W  # a weak decoder: w = p(x|z) / p(x) has light tails
    x = b + rng.normal(0.0, 1.0, 2)
    z = rng.standard_normal((200_000, 1))
    log_w = (scipy.stats.norm.logpdf(x, loc=z @ W.T + b, scale=1.0).sum(-1)
             - testbed.log_marginal(x, W, b, log_s))
    value = float(onp.asarray(f(x, W, b, log_s), dtype=float))
    w2 = onp.exp(2.0 * log_w)
    se = w2.std(ddof=1) / onp.sqrt(len(w2))
    # z-test at 5 standard errors (false-failure rate 5.7e-7, normal approximation): E[w^4] is finite
    # for any Gaussian decoder, and with |W| small w^2 stays within a few units
    assert abs(w2.mean() - onp.exp(value)) < 5.0 * se, (
        "exp(your value) is more than 5 standard errors from the Monte Carlo average of "
        "(p(x|z) / p(x))^2 over prior samples")


@EX3.test("is finite and exact for 784-dimensional data (the densities underflow)", points=1,
          hint="For D = 784 and these test data p(x) is about exp(-4000): compute log-densities (Cholesky "
               "factors), never densities or their ratios.")
def _(f, rng):
    W, b, log_s = _model(rng, D=784, K=int(rng.integers(2, 5)), log_s=float(onp.log(0.3)))
    x = b + rng.normal(0.0, 1.0, (2, W.shape[1])) @ W.T + rng.normal(0.0, 1.0, (2, 784))
    values = onp.asarray(f(x, W, b, log_s), dtype=float)
    assert onp.all(onp.isfinite(values)), "your log(1 + v) is not finite for D = 784"
    assert_close(values, _oracle_ratio(x, W, b, log_s), rtol=TOL, atol=1e-6)
