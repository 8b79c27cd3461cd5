r"""Exercise set 2: the evidence lower bound (``exercises/02_elbo.ipynb``).

2.1 the Monte Carlo ELBO of a diagonal-Gaussian q (sampled or analytic KL),
2.2 the closed-form KL between two diagonal Gaussians,
2.3 the exact posterior of the linear-Gaussian testbed,
2.4 (derive) the best factorized Gaussian q on the testbed and its gap,
2.5 (predict, then derive) the ELBO when q is the prior;
references in :mod:`vae_from_scratch.numpy.objectives`, :mod:`~vae_from_scratch.numpy.distributions`
and :mod:`~vae_from_scratch.numpy.testbed`.

Tolerances. Every deterministic comparison is against an independent float64 oracle written here
(scipy.stats log-densities, the KL written per dimension in another form, the posterior by Gaussian
conditioning in data space instead of latent space). The compared values are sums of at most a few
hundred terms of magnitude below 1e3, each exact to a few ulps (eps = 2.2e-16); the posterior involves
inverting matrices with condition number below 1e4. A correct answer is therefore within ~1e-11 of the
oracle; we allow 1e-8 (absolute and relative), a margin of about 1000x. Each typical mistake (a
log-variance read as a log-std, a sign flip in the KL, a sum instead of a mean over samples, a missing
prior term, s instead of s^2) changes the result by more than 1e-2 in every draw.

High dimension. Each exercise has a test where the naive form breaks although it passes every small
test: a 400-dimensional latent (2.1: products of densities underflow), 784 dimensions (2.2: a
product of standard deviations underflows), a sharp posterior of a 784-dimensional observation (2.3:
conditioning in data space loses the digits of a covariance of size 1e-11; compared relative to
its size with tolerance 1e-8, while a latent-space answer is exact to ~1e-15 relative), and K = 100
(2.4: det of the precision overflows).

Statistical tests. 2.5's Monte Carlo test is a two-sided z-test at 5 standard errors on n = 20000
samples of log p(x | z), a quadratic in Gaussian z (finite variance). 2.2's Monte Carlo test is a two-sided z-test at 5 standard errors on n = 20000
samples: false-failure rate 2 Phi(-5) = 5.7e-7 (normal approximation). Every other test is
deterministic given its inputs, so each exercise's false-failure rate is below 1e-6 < 1e-4.
"""

import autograd
import autograd.numpy as anp
import numpy as onp
import scipy.linalg
import scipy.stats

from vae_from_scratch.numpy import distributions, objectives, testbed

from ..core import assert_close, assert_unbiased, exercise

TOL = 1e-8  # absolute and relative; see the module docstring


def _sizes(rng):
    """Batch B in 6..9, latent K in 2..5, samples S in 2..5 with S != K: a wrong axis changes the shape."""
    B, K = int(rng.integers(6, 10)), int(rng.integers(2, 6))
    S = int(rng.choice([s for s in range(2, 6) if s != K]))
    return S, B, K


def _oracle_kl_diag(mq, lq, mp, lp):
    # sum_k (1/2)(var_q/var_p + (mq - mp)^2/var_p - 1 - log(var_q/var_p)), in variances
    var_q, var_p = onp.exp(2.0 * lq), onp.exp(2.0 * lp)
    return 0.5 * (var_q / var_p + (mq - mp) ** 2 / var_p - 1.0 - onp.log(var_q / var_p)).sum(axis=-1)


# --- 2.1 ----------------------------------------------------------------------------------------

EX1 = exercise("2.1", "The Monte Carlo ELBO of a diagonal-Gaussian q", function="elbo_normal_diag",
               reference=objectives.elbo_normal_diag)


def _decoder(rng, B, K):
    """A linear-Gaussian decoder log p(x | z) = log N(x; A z + c, sx^2 I) for a batch of B data points."""
    Dx = int(rng.integers(3, 7))
    A, c = rng.normal(0.0, 1.0, (Dx, K)), rng.normal(0.0, 1.0, Dx)
    log_sx = float(rng.uniform(-0.7, 0.3))
    x = rng.normal(0.0, 2.0, (B, Dx))

    def log_likelihood(z):  # z (S, B, K) -> (S, B); autograd.numpy so that gradients flow
        return distributions.log_normal_diag(x, anp.einsum("dk,...k->...d", A, z) + c, log_sx * anp.ones(Dx))

    def oracle(z):
        return scipy.stats.norm.logpdf(x, z @ A.T + c, onp.exp(log_sx)).sum(axis=-1)

    return log_likelihood, oracle


def _q(rng, B, K):
    return rng.normal(0.0, 1.0, (B, K)), rng.uniform(-1.5, 0.5, (B, K))


def _oracle_elbo(oracle_loglik, mean, log_std, eps, kl):
    z = mean + onp.exp(log_std) * eps
    log_lik = oracle_loglik(z)
    if kl == "analytic":
        return log_lik.mean(axis=0) - _oracle_kl_diag(mean, log_std, 0.0 * mean, 0.0 * log_std)
    log_prior = scipy.stats.norm.logpdf(z).sum(axis=-1)
    log_q = scipy.stats.norm.logpdf(z, mean, onp.exp(log_std)).sum(axis=-1)
    return (log_lik + log_prior - log_q).mean(axis=0)


@EX1.test("kl='sampled': matches the Monte Carlo ELBO at random inputs", points=2,
          hint="z = mean + exp(log_std) * eps; average log p(x|z) + log N(z; 0, I) - log q(z|x) over the "
               "first (sample) axis. log_std is the log of a standard deviation, not of a variance.")
def _(f, rng):
    S, B, K = _sizes(rng)
    log_likelihood, oracle = _decoder(rng, B, K)
    mean, log_std = _q(rng, B, K)
    eps = rng.standard_normal((S, B, K))
    assert_close(f(log_likelihood, mean, log_std, eps, kl="sampled"),
                 _oracle_elbo(oracle, mean, log_std, eps, "sampled"), rtol=TOL, atol=TOL)


@EX1.test("kl='analytic': matches the reconstruction term minus the closed-form KL", points=2,
          hint="Average only log p(x|z) over the samples, then subtract KL(q || N(0, I)) in closed form: "
               "per dimension (mean^2 + sigma^2 - 1)/2 - log sigma, summed over the last axis.")
def _(f, rng):
    S, B, K = _sizes(rng)
    log_likelihood, oracle = _decoder(rng, B, K)
    mean, log_std = _q(rng, B, K)
    eps = rng.standard_normal((S, B, K))
    assert_close(f(log_likelihood, mean, log_std, eps, kl="analytic"),
                 _oracle_elbo(oracle, mean, log_std, eps, "analytic"), rtol=TOL, atol=TOL)


@EX1.test("is finite and exact with a 400-dimensional latent and a sharp q", points=1,
          hint="With hundreds of latent dimensions, products of densities under- or overflow "
               "(exp(-800) is 0.0 in float64): sum log-densities over the last axis, never take the "
               "log of a product or of a ratio of densities.")
def _(f, rng):
    S, B, K = 2, 3, 400
    log_likelihood, oracle = _decoder(rng, B, K)
    mean, log_std = rng.normal(0.0, 2.0, (B, K)), rng.uniform(-3.0, -1.5, (B, K))
    eps = rng.standard_normal((S, B, K))
    z = mean + onp.exp(log_std) * eps
    # the prior log-density of z is about -1170 +- 60, below -745 where exp underflows to 0.0: the
    # naive product fails here (the precondition below holds except with probability ~1e-12)
    assert onp.all(scipy.stats.norm.logpdf(z).sum(axis=-1) < -760.0)
    for kl in ("sampled", "analytic"):
        values = onp.asarray(f(log_likelihood, mean, log_std, eps, kl=kl), dtype=float)
        assert onp.all(onp.isfinite(values)), f"your kl={kl!r} ELBO is not finite for K = 400"
        assert_close(values, _oracle_elbo(oracle, mean, log_std, eps, kl), rtol=TOL, atol=TOL,
                     what=f"your kl={kl!r} estimate with K = 400")


@EX1.test("a single sample (S = 1) gives one estimate per data point", points=1,
          hint="Keep the sample axis until the very end and average over axis 0; with S = 1 the result "
               "still has shape (B,).")
def _(f, rng):
    _, B, K = _sizes(rng)
    log_likelihood, oracle = _decoder(rng, B, K)
    mean, log_std = _q(rng, B, K)
    eps = rng.standard_normal((1, B, K))
    for kl in ("sampled", "analytic"):
        assert_close(f(log_likelihood, mean, log_std, eps, kl=kl), _oracle_elbo(oracle, mean, log_std, eps, kl),
                     rtol=TOL, atol=TOL, what=f"your kl={kl!r} estimate with S = 1")


@EX1.test("kl='sampled' has zero variance when q is the exact posterior", points=1,
          hint="At q = p(z|x), log p(x, z) - log q(z) equals log p(x) for every z: check that you use "
               "log p(z) of the standard normal prior and the density of q at the same z you sampled.")
def _(f, rng):
    # a 1-D latent: the exact posterior is Gaussian, hence representable by a diagonal q
    Dx = int(rng.integers(3, 7))
    a, c, log_sx = rng.normal(0.0, 1.0, (Dx, 1)), rng.normal(0.0, 1.0, Dx), float(rng.uniform(-0.7, 0.3))
    x = rng.normal(0.0, 2.0, (1, Dx))
    precision = 1.0 + float(a[:, 0] @ a[:, 0]) * onp.exp(-2.0 * log_sx)
    post_mean = ((x - c) @ a) * onp.exp(-2.0 * log_sx) / precision              # (1, 1)
    post_log_std = onp.full((1, 1), -0.5 * onp.log(precision))
    log_px = scipy.stats.multivariate_normal(c, a @ a.T + onp.exp(2.0 * log_sx) * onp.eye(Dx)).logpdf(x[0])

    def log_likelihood(z):
        return distributions.log_normal_diag(x, anp.einsum("dk,...k->...d", a, z) + c, log_sx * anp.ones(Dx))

    for _ in range(3):
        eps = rng.standard_normal((1, 1, 1)) * 2.0
        assert_close(f(log_likelihood, post_mean, post_log_std, eps, kl="sampled"), onp.array([log_px]),
                     rtol=TOL, atol=TOL, what="your single-sample estimate at the exact posterior")


@EX1.test("is differentiable with autograd (gradients in mean and log_std)", points=1,
          hint="Use autograd.numpy (np) throughout, no in-place assignment; write z = mean + "
               "np.exp(log_std) * eps so that the gradient flows through the samples.")
def _(f, rng):
    S, B, K = _sizes(rng)
    log_likelihood, _ = _decoder(rng, B, K)
    mean, log_std = _q(rng, B, K)
    eps = rng.standard_normal((S, B, K))

    def oracle(m, ls):  # the same estimator, written here in autograd.numpy
        z = m + anp.exp(ls) * eps
        log_q = -anp.sum(ls + 0.5 * onp.log(2 * onp.pi) + 0.5 * eps**2, axis=-1)
        log_prior = -0.5 * anp.sum(z**2 + onp.log(2 * onp.pi), axis=-1)
        return anp.sum(anp.mean(log_likelihood(z) + log_prior - log_q, axis=0))

    student = lambda m, ls: anp.sum(f(log_likelihood, m, ls, eps, kl="sampled"))  # noqa: E731
    for argnum, name in ((0, "mean"), (1, "log_std")):
        assert_close(autograd.grad(student, argnum)(mean, log_std), autograd.grad(oracle, argnum)(mean, log_std),
                     rtol=TOL, atol=TOL, what=f"your gradient with respect to {name}")


# --- 2.2 ----------------------------------------------------------------------------------------

EX2 = exercise("2.2", "KL divergence between two diagonal Gaussians", function="kl_normal_diag",
               reference=distributions.kl_normal_diag)


def _two_gaussians(rng, shape):
    return (rng.normal(0.0, 1.5, shape), rng.uniform(-1.5, 1.0, shape),
            rng.normal(0.0, 1.5, shape), rng.uniform(-1.5, 1.0, shape))


@EX2.test("matches the closed form at random parameters", points=2,
          hint="Per dimension: log(sigma_p / sigma_q) + (sigma_q^2 + (mu_q - mu_p)^2) / (2 sigma_p^2) - 1/2, "
               "summed over the last axis. The KL is not symmetric: q is the first pair of arguments.")
def _(f, rng):
    _, B, K = _sizes(rng)
    args = _two_gaussians(rng, (B, K))
    assert_close(f(*args), _oracle_kl_diag(*args), rtol=TOL, atol=TOL)


@EX2.test("agrees with a Monte Carlo estimate of E_q[log q(z) - log p(z)]", points=1,
          hint="KL(q || p) is the average under q of log q(z) - log p(z); both are diagonal Gaussians with "
               "sigma = exp(log_std).")
def _(f, rng):
    K, n = 3, 20000
    mq, lq, mp, lp = _two_gaussians(rng, (K,))
    z = mq + onp.exp(lq) * rng.standard_normal((n, K))
    log_ratio = (scipy.stats.norm.logpdf(z, mq, onp.exp(lq)) - scipy.stats.norm.logpdf(z, mp, onp.exp(lp))).sum(-1)
    kl = onp.asarray(f(mq, lq, mp, lp), dtype=float)
    assert kl.shape == (), f"for parameters of shape {(K,)} your result has shape {kl.shape}, expected ()"
    # z-test at 5 standard errors: false-failure rate 5.7e-7 (see the module docstring)
    assert_unbiased(log_ratio, kl, z=5.0, what="log q(z) - log p(z) over samples z ~ q", against="your KL")


@EX2.test("is finite and exact in 784 dimensions (a narrow q against a wide p)", points=1,
          hint="prod(sigma_q) over 784 dimensions with sigma_q < 1 underflows to 0.0: work with the "
               "log standard deviations themselves, log(sigma_p / sigma_q) = log_std_p - log_std_q.")
def _(f, rng):
    B, K = 3, 784
    mq, lq = rng.normal(0.0, 1.0, (B, K)), rng.uniform(-3.0, -1.0, (B, K))
    mp, lp = rng.normal(0.0, 1.0, (B, K)), rng.uniform(0.0, 1.0, (B, K))
    values = onp.asarray(f(mq, lq, mp, lp), dtype=float)
    assert onp.all(onp.isfinite(values)), "your KL is not finite in 784 dimensions"
    assert_close(values, _oracle_kl_diag(mq, lq, mp, lp), rtol=TOL, atol=TOL)


@EX2.test("is zero when q equals p and positive otherwise", points=1,
          hint="KL(q || p) >= 0 with equality only at q = p: check the -1/2 per dimension and the signs "
               "of the log terms.")
def _(f, rng):
    _, B, K = _sizes(rng)
    mq, lq, mp, lp = _two_gaussians(rng, (B, K))
    assert_close(f(mq, lq, mq, lq), onp.zeros(B), rtol=0.0, atol=1e-12, what="your KL between q and itself")
    values = onp.asarray(f(mq, lq, mq + rng.choice([-1.0, 1.0], (B, K)) * rng.uniform(0.5, 1.5, (B, K)), lq),
                         dtype=float)
    assert values.shape == (B,), f"your result has shape {values.shape}, expected shape {(B,)}"
    assert onp.all(values > 0), "your KL is not positive for two different Gaussians"


@EX2.test("keeps batch axes and broadcasts (S, B, K) against (B, K) and (K,)", points=1,
          hint="Reduce only the last (event) axis with np.sum(..., axis=-1) and let broadcasting pair the "
               "arguments: a prior shared by every data point has shape (K,).")
def _(f, rng):
    S, B, K = _sizes(rng)
    mq, lq = rng.normal(0.0, 1.5, (S, B, K)), rng.uniform(-1.5, 1.0, (B, K))
    mp, lp = rng.normal(0.0, 1.5, K), rng.uniform(-1.5, 1.0, K)
    assert_close(f(mq, lq, mp, lp), _oracle_kl_diag(mq, lq, mp, lp), rtol=TOL, atol=TOL)


@EX2.test("is differentiable with autograd (gradients in mean_q and log_std_q)", points=1,
          hint="Use autograd.numpy functions; d/dmean_q = (mean_q - mean_p) / sigma_p^2 and "
               "d/dlog_std_q = sigma_q^2 / sigma_p^2 - 1.")
def _(f, rng):
    _, B, K = _sizes(rng)
    mq, lq, mp, lp = _two_gaussians(rng, (B, K))
    total = lambda m, s: anp.sum(f(m, s, mp, lp))  # noqa: E731
    var_p = onp.exp(2.0 * lp)
    assert_close(autograd.grad(total, 0)(mq, lq), (mq - mp) / var_p, rtol=TOL, atol=TOL,
                 what="your gradient with respect to mean_q")
    assert_close(autograd.grad(total, 1)(mq, lq), onp.exp(2.0 * lq) / var_p - 1.0, rtol=TOL, atol=TOL,
                 what="your gradient with respect to log_std_q")


# --- 2.3 ----------------------------------------------------------------------------------------

EX3 = exercise("2.3", "The exact posterior of the linear-Gaussian model", function="posterior",
               reference=testbed.posterior)


def _model(rng):
    D, K = int(rng.integers(5, 9)), int(rng.integers(2, 5))
    W, b = rng.normal(0.0, 1.0, (D, K)), rng.normal(0.0, 1.0, D)
    log_s = float(rng.uniform(onp.log(0.3), 0.0))
    return W, b, log_s


def _oracle_posterior(x, W, b, log_s):
    """Gaussian conditioning in data space: z | x ~ N(W^T C^{-1}(x - b), I - W^T C^{-1} W), C = W W^T + s^2 I."""
    D, K = W.shape
    C = W @ W.T + onp.exp(2.0 * log_s) * onp.eye(D)
    gain = onp.linalg.solve(C, W).T  # W^T C^{-1}, (K, D)
    return (x - b) @ gain.T, onp.eye(K) - gain @ W


@EX3.test("matches the exact posterior mean and covariance for one data point", points=2,
          hint="Complete the square in log p(z) + log p(x|z): the precision is I + W^T W / s^2 (s^2, not s), "
               "the covariance its inverse, and the mean cov @ W^T (x - b) / s^2.")
def _(f, rng):
    W, b, log_s = _model(rng)
    x = rng.normal(0.0, 2.0, W.shape[0])
    mean, cov = f(x, W, b, log_s)
    expected_mean, expected_cov = _oracle_posterior(x, W, b, log_s)
    assert_close(mean, expected_mean, rtol=TOL, atol=TOL, what="your posterior mean")
    assert_close(cov, expected_cov, rtol=TOL, atol=TOL, what="your posterior covariance")


@EX3.test("handles a batch of data points: mean (N, K), one shared covariance (K, K)", points=1,
          hint="The covariance does not depend on x; compute the means of all rows at once, e.g. "
               "(x - b) @ W @ cov / s^2 for x of shape (N, D).")
def _(f, rng):
    W, b, log_s = _model(rng)
    N = int(rng.integers(10, 15))
    x = rng.normal(0.0, 2.0, (N, W.shape[0]))
    mean, cov = f(x, W, b, log_s)
    expected_mean, expected_cov = _oracle_posterior(x, W, b, log_s)
    assert_close(mean, expected_mean, rtol=TOL, atol=TOL, what="your batch of posterior means")
    assert_close(cov, expected_cov, rtol=TOL, atol=TOL, what="your posterior covariance")


@EX3.test("satisfies Bayes' rule: log p(x, z) - log q(z) is the same for every z", points=1,
          hint="If N(mean, cov) is the posterior, log p(z) + log p(x|z) - log N(z; mean, cov) = log p(x) "
               "for every z. Check the sign of the mean and that b is subtracted from x.")
def _(f, rng):
    W, b, log_s = _model(rng)
    D, K = W.shape
    x = rng.normal(0.0, 2.0, D)
    mean, cov = (onp.asarray(a, dtype=float) for a in f(x, W, b, log_s))
    if mean.shape != (K,) or cov.shape != (K, K):
        raise AssertionError(f"your result has shapes {mean.shape}, {cov.shape}, expected {(K,)}, {(K, K)}")
    if not (onp.allclose(cov, cov.T) and onp.all(onp.linalg.eigvalsh(cov) > 0)):
        raise AssertionError("your covariance is not symmetric positive definite")
    z = rng.normal(0.0, 1.5, (5, K))
    log_joint = (scipy.stats.norm.logpdf(z).sum(-1)
                 + scipy.stats.norm.logpdf(x, z @ W.T + b, onp.exp(log_s)).sum(-1))
    log_post = scipy.stats.multivariate_normal(mean, cov).logpdf(z)
    differences = log_joint - log_post
    assert_close(differences, onp.full(5, differences.mean()), rtol=TOL, atol=1e-7,
                 what="log p(x, z) - log q(z) across z")


def _oracle_posterior_latent(x, W, b, log_s):
    """Latent-space formula with a Cholesky solve: stable when s is small (the precision
    I + W^T W / s^2 is well conditioned when W^T W is), unlike conditioning in data space."""
    K = W.shape[1]
    precision = onp.eye(K) + W.T @ W * onp.exp(-2.0 * log_s)
    factor = scipy.linalg.cho_factor(precision, lower=True)
    cov = scipy.linalg.cho_solve(factor, onp.eye(K))
    return (x - b) @ W @ cov.T * onp.exp(-2.0 * log_s), cov


@EX3.test("is exact for a sharp posterior of a 784-dimensional observation (s = 1e-4)", points=1,
          hint="Work in the K-dimensional latent space (precision I + W^T W / s^2, then its inverse): "
               "conditioning in the 784-dimensional data space subtracts two nearly equal numbers "
               "when s is small and loses most of the digits of the covariance.")
def _(f, rng):
    D, K = 784, int(rng.integers(2, 5))
    W, b = rng.normal(0.0, 1.0, (D, K)), rng.normal(0.0, 1.0, D)
    log_s = float(onp.log(1e-4))
    x = rng.normal(0.0, 2.0, D)
    mean, cov = (onp.asarray(a, dtype=float) for a in f(x, W, b, log_s))
    expected_mean, expected_cov = _oracle_posterior_latent(x, W, b, log_s)
    # the covariance is about s^2 / 784 ~ 1e-11: compare relative to its own size. A latent-space
    # answer is exact to ~1e-15 relative; conditioning in data space (condition number ~1e11) is
    # off by ~1e-5 relative in the covariance and ~1e-6 in the mean (measured): tolerance 1e-8
    scale = onp.max(onp.abs(expected_cov))
    assert_close(cov / scale, expected_cov / scale, rtol=1e-8, atol=1e-8,
                 what="your posterior covariance (relative to its size)")
    assert_close(mean, expected_mean, rtol=1e-8, atol=1e-9, what="your posterior mean")


@EX3.test("is differentiable with autograd (in W and log_s)", points=1,
          hint="Use autograd.numpy (np.linalg.inv or np.linalg.solve, np.exp) and no in-place assignment.")
def _(f, rng):
    W, b, log_s = _model(rng)
    x = rng.normal(0.0, 2.0, W.shape[0])
    K = W.shape[1]

    def oracle(W_, ls):  # the latent-space formula, in autograd.numpy
        cov = anp.linalg.inv(anp.eye(K) + anp.dot(W_.T, W_) * anp.exp(-2.0 * ls))
        return anp.sum(anp.dot(cov, anp.dot(W_.T, x - b)) * anp.exp(-2.0 * ls)) + anp.sum(cov)

    def student(W_, ls):
        mean, cov = f(x, W_, b, ls)
        return anp.sum(mean) + anp.sum(cov)

    for argnum, name in ((0, "W"), (1, "log_s")):
        assert_close(autograd.grad(student, argnum)(W, log_s), autograd.grad(oracle, argnum)(W, log_s),
                     rtol=TOL, atol=TOL, what=f"the gradient of your posterior with respect to {name}")


# --- 2.4 ----------------------------------------------------------------------------------------


def factorized_optimum(x, W, b, log_s):
    """The best factorized Gaussian q(z) = N(mean, diag(exp(log_std))^2) for the testbed posterior,
    and its gap min KL(q || p(z | x)) = (sum_k log Lambda_kk - log det Lambda) / 2, Lambda = I + W^T W / s^2.

    Reference solution (the package has no separate function for it): the mean is the posterior mean,
    the variances are 1 / Lambda_kk, the inverse diagonal of the precision (Bishop 2006, section 10.1.2).
    """
    K = W.shape[1]
    precision = onp.eye(K) + W.T @ W * onp.exp(-2.0 * log_s)
    factor = scipy.linalg.cho_factor(precision, lower=True)
    mean = scipy.linalg.cho_solve(factor, W.T @ (x - b)) * onp.exp(-2.0 * log_s)
    diagonal = onp.diag(precision)
    log_det = 2.0 * onp.sum(onp.log(onp.diag(factor[0])))
    return mean, -0.5 * onp.log(diagonal), 0.5 * (onp.sum(onp.log(diagonal)) - log_det)


EX4 = exercise("2.4", "The best factorized q on the testbed (derive, then compute)",
               function="factorized_optimum", reference=factorized_optimum)


def _triple(result):
    if not isinstance(result, (tuple, list)) or len(result) != 3:
        raise AssertionError(f"factorized_optimum must return (mean, log_std, gap), got "
                             f"{type(result).__name__}")
    mean, log_std, gap = (onp.asarray(a, dtype=float) for a in result)
    return mean, log_std, gap


def _correlated_model(rng):
    """A testbed whose posterior is correlated (latent directions not orthogonal), so that the best
    factorized q differs from the posterior's marginals by more than 1e-2 in every draw."""
    D, K = int(rng.integers(5, 9)), int(rng.integers(2, 5))
    base = rng.normal(0.0, 1.0, (D, 1))
    W = base + 0.6 * rng.normal(0.0, 1.0, (D, K))
    b = rng.normal(0.0, 1.0, D)
    log_s = float(rng.uniform(onp.log(0.3), 0.0))
    return W, b, log_s


@EX4.test("mean, log_std and gap match the closed form", points=2,
          hint="Set the ELBO's gradient in q's mean and variances to zero: the mean is the posterior "
               "mean; the variance of z_k is 1 / Lambda_kk (the inverse of the precision's diagonal), "
               "not the diagonal of the posterior covariance. log_std is half the log-variance.")
def _(f, rng):
    W, b, log_s = _correlated_model(rng)
    x = rng.normal(0.0, 2.0, W.shape[0])
    mean, log_std, gap = _triple(f(x, W, b, log_s))
    expected_mean, expected_log_std, expected_gap = factorized_optimum(x, W, b, log_s)
    assert_close(mean, expected_mean, rtol=TOL, atol=TOL, what="your mean")
    assert_close(log_std, expected_log_std, rtol=TOL, atol=TOL, what="your log_std")
    assert_close(gap, expected_gap, rtol=TOL, atol=TOL, what="your gap")


@EX4.test("the returned q is a stationary point of the ELBO (autograd gradient zero)", points=1,
          hint="At the best factorized q, nudging any mean or log standard deviation cannot raise "
               "the ELBO; check the variances: 1 / Lambda_kk, with Lambda = I + W^T W / s^2.")
def _(f, rng):
    W, b, log_s = _correlated_model(rng)
    x = rng.normal(0.0, 2.0, W.shape[0])
    mean, log_std, _ = _triple(f(x, W, b, log_s))

    def elbo(m, ls):  # the testbed's closed-form ELBO of a diagonal q, written out here
        D, K = W.shape
        r = x - anp.dot(W, m) - b
        var = anp.exp(2.0 * ls)
        s2 = onp.exp(2.0 * log_s)
        e_log_lik = -0.5 * D * onp.log(2 * onp.pi * s2) - (anp.sum(r**2) + anp.sum(W**2 * var)) / (2 * s2)
        e_log_prior = -0.5 * K * onp.log(2 * onp.pi) - 0.5 * (anp.sum(m**2) + anp.sum(var))
        entropy = 0.5 * K * (1 + onp.log(2 * onp.pi)) + anp.sum(ls)
        return e_log_lik + e_log_prior + entropy

    # the gradient of a function of size ~1e2 at its maximum, exact to ~1e-12; a q off by 1e-2 in
    # one coordinate has a gradient above 1e-3 there
    for argnum, name in ((0, "mean"), (1, "log_std")):
        assert_close(autograd.grad(elbo, argnum)(mean, log_std), onp.zeros_like(mean), rtol=0.0,
                     atol=1e-7, what=f"the ELBO's gradient in {name} at your q")


@EX4.test("the gap equals log p(x) - ELBO(q) at the returned q", points=1,
          hint="The gap is KL(q || p(z|x)) = log p(x) - ELBO(q) >= 0; with q as above it is "
               "(sum_k log Lambda_kk - log det Lambda) / 2.")
def _(f, rng):
    W, b, log_s = _correlated_model(rng)
    x = rng.normal(0.0, 2.0, W.shape[0])
    mean, log_std, gap = _triple(f(x, W, b, log_s))
    log_px = testbed.log_marginal(x[None], W, b, log_s)[0]
    elbo = testbed.elbo_gaussian(x, W, b, log_s, mean, onp.diag(onp.exp(log_std)))
    assert_close(gap, log_px - elbo, rtol=TOL, atol=TOL, what="your gap")
    assert gap > 1e-3, "your gap is not positive for a correlated posterior"


@EX4.test("is finite and exact with 100 latent dimensions (D = 784, s = 0.1)", points=1,
          hint="det(Lambda) of a 100 x 100 precision with eigenvalues near 1e5 overflows to inf: "
               "use np.linalg.slogdet or twice the sum of the log-diagonal of a Cholesky factor.")
def _(f, rng):
    D, K = 784, 100
    W, b, log_s = rng.normal(0.0, 1.0, (D, K)), rng.normal(0.0, 1.0, D), float(onp.log(0.1))
    x = rng.normal(0.0, 2.0, D)
    mean, log_std, gap = _triple(f(x, W, b, log_s))
    expected_mean, expected_log_std, expected_gap = factorized_optimum(x, W, b, log_s)
    assert onp.isfinite(gap), "your gap is not finite for K = 100"
    # sums of 100 log-terms of size ~12 from a matrix of condition number ~10: exact to ~1e-11
    assert_close(gap, expected_gap, rtol=TOL, atol=1e-7, what="your gap")
    assert_close(log_std, expected_log_std, rtol=TOL, atol=TOL, what="your log_std")
    assert_close(mean, expected_mean, rtol=1e-7, atol=1e-9, what="your mean")


# --- 2.5 ----------------------------------------------------------------------------------------


def elbo_at_prior(x, W, b, log_s):
    """The testbed's ELBO when q(z | x) is the prior N(0, I): E_p(z)[log p(x | z)] (the KL term is 0),
    -D/2 log(2 pi s^2) - (|x - b|^2 + |W|_F^2) / (2 s^2). Reference solution (the package has none)."""
    D = W.shape[0]
    s2 = onp.exp(2.0 * log_s)
    return -0.5 * D * onp.log(2.0 * onp.pi * s2) - (onp.sum((x - b) ** 2, axis=-1) + onp.sum(W**2)) / (2.0 * s2)


EX5 = exercise("2.5", "The ELBO when q is the prior (predict, then derive)", function="elbo_at_prior",
               reference=elbo_at_prior)


@EX5.test("matches the closed form for one data point and for a batch", points=2,
          hint="With q = p(z) the KL term vanishes and the ELBO is E_p(z)[log p(x | z)]: the expected "
               "squared residual is |x - b|^2 + E|W z|^2 = |x - b|^2 + sum of the squared entries of W.")
def _(f, rng):
    W, b, log_s = _model(rng)
    x = rng.normal(0.0, 2.0, W.shape[0])
    assert_close(onp.asarray(f(x, W, b, log_s), dtype=float), onp.asarray(elbo_at_prior(x, W, b, log_s)),
                 rtol=TOL, atol=TOL, what="your ELBO for one data point")
    xs = rng.normal(0.0, 2.0, (6, W.shape[0]))
    assert_close(f(xs, W, b, log_s), elbo_at_prior(xs, W, b, log_s), rtol=TOL, atol=TOL,
                 what="your ELBO for a batch (N, D)")


@EX5.test("agrees with the Monte Carlo average of log p(x | z) over prior samples (z-test)", points=1,
          hint="The ELBO with q = p(z) is an average over z ~ N(0, I), not log p(x | z) at z = 0 (the "
               "prior's mean): the spread of W z adds to the expected squared residual.")
def _(f, rng):
    W, b, log_s = _model(rng)
    x = rng.normal(0.0, 2.0, W.shape[0])
    z = rng.standard_normal((20000, W.shape[1]))
    samples = scipy.stats.norm.logpdf(x, loc=z @ W.T + b, scale=onp.exp(log_s)).sum(-1)
    value = onp.asarray(f(x, W, b, log_s), dtype=float)
    assert value.shape == (), f"for x of shape {x.shape} your result has shape {value.shape}, expected ()"
    # z-test at 5 standard errors: false-failure rate 5.7e-7 (log p(x|z) is quadratic in z)
    assert_unbiased(samples, value, z=5.0, what="log p(x | z) over samples z ~ p(z)", against="your ELBO")


@EX5.test("is below the exact log p(x) by KL(p(z) || p(z | x))", points=1,
          hint="ELBO = log p(x) - KL(q || p(z | x)) for any q, here q = p(z): your value must be below "
               "log N(x; b, W W^T + s^2 I) by exactly that KL.")
def _(f, rng):
    W, b, log_s = _model(rng)
    x = rng.normal(0.0, 2.0, W.shape[0])
    K = W.shape[1]
    value = float(onp.asarray(f(x, W, b, log_s), dtype=float))
    gap = testbed.log_marginal(x[None], W, b, log_s)[0] - value
    expected_gap = testbed.kl_to_posterior(x, W, b, log_s, onp.zeros(K), onp.eye(K))
    assert_close(onp.asarray(gap), onp.asarray(expected_gap), rtol=TOL, atol=TOL,
                 what="log p(x) minus your ELBO (the gap)")
