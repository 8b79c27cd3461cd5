r"""Exercise set 3: the reparameterization trick (``exercises/03_reparameterization.ipynb``).

3.1 reparameterized diagonal-Gaussian sampler with its log-density, 3.2 the full-covariance factor
:math:`\mathbf L = \mathbf L_{mask}\odot\mathbf L' + \operatorname{diag}\boldsymbol\sigma` and its
log-determinant, 3.3 the path-derivative ("sticking the landing") surrogate, 3.4 (derive) the closed-form
KL of a full-covariance Gaussian to the standard normal, 3.5 (derive) the variance of the single-sample
reparameterization gradient of E[sum z^2]. References in
:mod:`vae_from_scratch.numpy.reparameterization` and :mod:`vae_from_scratch.numpy.estimators`.

High dimension. 3.1, 3.2 and 3.4 each have a test with hundreds of latent dimensions and small
standard deviations, where the product of the sigmas (or the determinant) underflows to 0.0, so an
answer that takes the log of a product or of a determinant returns -inf although it passes every
small test. These are sums of 300-500 terms of size below 10: a correct answer is within ~1e-12 of
the oracle, well inside the 1e-9 tolerance.

Tolerances. Deterministic comparisons use independent float64 oracles (scipy densities, slogdet of an
autograd Jacobian, the factor assembled entry by entry). The quantities are sums of at most ~10 terms
of magnitude below 1e2, each exact to a few ulps (eps = 2.2e-16), so a correct answer is within ~1e-12
of the oracle; we allow 1e-9 absolute and relative (a ~1000x margin). Every typical mistake below
(log-variance used as log-std, a flipped log-determinant, an unmasked factor, a missing stop-gradient)
is off by more than 1e-2.

Statistical tests. 3.3's unbiasedness test is a two-sided z-test at 5 standard errors on each of the
5 free gradient coordinates, with n = 20000 i.i.d. per-sample gradients: false-failure rate
5 * 2 Phi(-5) = 2.9e-6 (normal approximation; the per-sample gradients are polynomials of Gaussians
with finite variance). Every other test is deterministic given its inputs: the false-failure rate
of each exercise is below 3e-6 < 1e-4. 3.4 and 3.5 add z-tests at 5 standard errors (1 and 6
coordinates: 5.7e-7 and 3.4e-6); 3.5 tests the mean of the i.i.d. squared deviations of the per-sample
gradients from their exact means (n = 40000; polynomials of Gaussians, finite fourth moments).
"""

import autograd
import autograd.numpy as anp
import numpy as onp
import scipy.stats

from vae_from_scratch.numpy import estimators, reparameterization, testbed

from ..core import assert_close, assert_unbiased, exercise

ATOL = 1e-9  # see the module docstring
RTOL = 1e-9


def _pair(result, names, what):
    """The answer must return a pair ``(a, b)``."""
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        raise AssertionError(f"{what} must return a pair {names}, got {type(result).__name__}")
    return result


# --- 3.1 ----------------------------------------------------------------------------------------

EX1 = exercise("3.1", "Reparameterized diagonal-Gaussian sample and its log-density",
               function="rsample_normal_diag", reference=reparameterization.rsample_normal_diag)


def _diag_inputs(rng, sample_shape=()):
    B, K = int(rng.integers(5, 8)), int(rng.integers(2, 5))  # B != K: a wrong axis changes the shape
    mean = rng.normal(0.0, 1.0, size=(B, K))
    log_std = rng.uniform(-1.2, 1.2, size=(B, K))
    eps = rng.standard_normal(sample_shape + (B, K))
    return mean, log_std, eps


@EX1.test("z = mean + sigma * eps", points=2,
          hint="sigma = exp(log_std) is a standard deviation (not a variance); multiply elementwise.")
def _(f, rng):
    mean, log_std, eps = _diag_inputs(rng)
    z, _ = _pair(f(mean, log_std, eps), "(z, log_q)", "rsample_normal_diag")
    assert_close(z, mean + onp.exp(log_std) * eps, rtol=RTOL, atol=ATOL, what="your z")


@EX1.test("log_q is the log-density of z (change of variables)", points=2,
          hint="log q(z) = log N(eps; 0, I) - log|det dz/deps|; the Jacobian is diag(sigma), so subtract "
               "sum(log_std) over the last axis.")
def _(f, rng):
    mean, log_std, eps = _diag_inputs(rng)
    _, log_q = _pair(f(mean, log_std, eps), "(z, log_q)", "rsample_normal_diag")
    z = mean + onp.exp(log_std) * eps
    oracle = scipy.stats.norm.logpdf(z, loc=mean, scale=onp.exp(log_std)).sum(axis=-1)
    assert_close(log_q, oracle, rtol=RTOL, atol=ATOL, what="your log_q")


@EX1.test("is finite and exact with 500 latent dimensions and a sharp q", points=1,
          hint="prod(sigma) over 500 dimensions with sigma < 0.1 underflows to 0.0 and its log is -inf: "
               "the log-determinant is sum(log_std), no exp or product needed.")
def _(f, rng):
    B, K = 3, 500
    mean = rng.normal(0.0, 1.0, size=(B, K))
    log_std = rng.uniform(-4.0, -2.0, size=(B, K))  # sum(log_std) ~ -1500: exp(-1500) underflows
    eps = rng.standard_normal((B, K))
    z, log_q = _pair(f(mean, log_std, eps), "(z, log_q)", "rsample_normal_diag")
    log_q = onp.asarray(log_q, dtype=float)
    assert onp.all(onp.isfinite(log_q)), "your log_q is not finite for K = 500"
    oracle = (scipy.stats.norm.logpdf(eps) - log_std).sum(axis=-1)
    assert_close(log_q, oracle, rtol=RTOL, atol=ATOL, what="your log_q")
    assert_close(z, mean + onp.exp(log_std) * eps, rtol=RTOL, atol=ATOL, what="your z")


@EX1.test("broadcasts noise (S, B, K) against parameters (B, K)", points=1,
          hint="Reduce only the last (event) axis; let broadcasting pair the noise with the parameters.")
def _(f, rng):
    S = int(rng.integers(2, 5))
    mean, log_std, eps = _diag_inputs(rng, (S,))
    z, log_q = _pair(f(mean, log_std, eps), "(z, log_q)", "rsample_normal_diag")
    assert_close(z, mean + onp.exp(log_std) * eps, rtol=RTOL, atol=ATOL, what="your z")
    oracle = scipy.stats.norm.logpdf(mean + onp.exp(log_std) * eps, loc=mean,
                                     scale=onp.exp(log_std)).sum(axis=-1)
    assert_close(log_q, oracle, rtol=RTOL, atol=ATOL, what="your log_q")


@EX1.test("is differentiable: dz/dmean = 1, dz/dlog_std = sigma * eps, dlog_q/dlog_std = -1", points=1,
          hint="Use autograd.numpy (np.exp, np.sum), no in-place assignment; with eps fixed, log q "
               "depends on log_std only through -sum(log_std).")
def _(f, rng):
    mean, log_std, eps = _diag_inputs(rng)
    z_of = lambda m, s: anp.sum(f(m, s, eps)[0])  # noqa: E731
    assert_close(autograd.grad(z_of, 0)(mean, log_std), onp.ones_like(mean), rtol=RTOL, atol=ATOL,
                 what="your gradient of sum(z) with respect to mean")
    assert_close(autograd.grad(z_of, 1)(mean, log_std), onp.exp(log_std) * eps, rtol=RTOL, atol=ATOL,
                 what="your gradient of sum(z) with respect to log_std")
    lq_of = lambda s: anp.sum(f(mean, s, eps)[1])  # noqa: E731
    assert_close(autograd.grad(lq_of)(log_std), -onp.ones_like(log_std), rtol=RTOL, atol=ATOL,
                 what="your gradient of sum(log_q) with respect to log_std")


# --- 3.2 ----------------------------------------------------------------------------------------

EX2 = exercise("3.2", "Full-covariance factor and its log-determinant", function="full_covariance_factor",
               reference=reparameterization.full_covariance_factor)


def _factor_inputs(rng, batch=()):
    K = int(rng.integers(3, 6))
    # every entry of L' nonzero (also on and above the diagonal): an unmasked answer shows up
    L_prime = rng.choice([-1.0, 1.0], size=batch + (K, K)) * rng.uniform(0.3, 1.5, size=batch + (K, K))
    log_std = rng.uniform(-1.0, 1.0, size=batch + (K,))
    return L_prime, log_std


def _oracle_factor(L_prime, log_std):
    """Entry by entry: L'_ij below the diagonal, sigma_i on it, 0 above."""
    K = L_prime.shape[-1]
    L = onp.zeros(L_prime.shape)
    for i in range(K):
        L[..., i, i] = onp.exp(log_std[..., i])
        for j in range(i):
            L[..., i, j] = L_prime[..., i, j]
    return L


@EX2.test("L is lower triangular: L' strictly below the diagonal, sigma on it, zeros above", points=2,
          hint="Multiply L' by a mask of ones strictly below the diagonal (np.tril(np.ones((K, K)), -1)), "
               "then add diag(exp(log_std)); the diagonal of L' itself must not leak in.")
def _(f, rng):
    L_prime, log_std = _factor_inputs(rng)
    L, _ = _pair(f(L_prime, log_std), "(L, log_det)", "full_covariance_factor")
    assert_close(L, _oracle_factor(L_prime, log_std), rtol=RTOL, atol=ATOL, what="your L")


@EX2.test("log_det equals log|det dz/deps| of z = mu + L eps (slogdet of the autograd Jacobian)",
          points=2,
          hint="The determinant of a triangular matrix is the product of its diagonal: here the sigmas. "
               "This is the log-determinant of the factor L, not of the covariance L L^T.")
def _(f, rng):
    L_prime, log_std = _factor_inputs(rng)
    K = L_prime.shape[-1]
    mean, eps = rng.normal(size=K), rng.normal(size=K)
    L_true = _oracle_factor(L_prime, log_std)
    jac = autograd.jacobian(lambda e: mean + anp.dot(L_true, e))(eps)
    sign, logabsdet = onp.linalg.slogdet(jac)
    _, log_det = _pair(f(L_prime, log_std), "(L, log_det)", "full_covariance_factor")
    assert sign == 1.0
    assert_close(log_det, onp.asarray(logabsdet), rtol=RTOL, atol=ATOL, what="your log_det")


@EX2.test("is finite and exact for a 300 x 300 factor with small sigmas", points=1,
          hint="det(L) of a 300 x 300 triangular matrix with diagonal entries near exp(-3) is exp(-900), "
               "which underflows to 0.0: never form the determinant, sum log_std instead.")
def _(f, rng):
    K = 300
    L_prime = rng.normal(0.0, 0.1, size=(K, K))
    log_std = rng.uniform(-4.0, -2.0, size=K)
    L, log_det = _pair(f(L_prime, log_std), "(L, log_det)", "full_covariance_factor")
    log_det = onp.asarray(log_det, dtype=float)
    assert onp.isfinite(log_det), "your log_det is not finite for K = 300"
    assert_close(log_det, onp.sum(log_std), rtol=RTOL, atol=ATOL, what="your log_det")
    assert_close(L, onp.tril(L_prime, -1) + onp.diag(onp.exp(log_std)), rtol=RTOL, atol=ATOL,
                 what="your L")


@EX2.test("keeps batch axes: L' (B, K, K) and log_std (B, K)", points=1,
          hint="Put sigma on the diagonal with broadcasting, e.g. np.exp(log_std)[..., :, None] * np.eye(K); "
               "sum log_std over the last axis only.")
def _(f, rng):
    B = int(rng.integers(2, 5))
    L_prime, log_std = _factor_inputs(rng, (B,))
    L, log_det = _pair(f(L_prime, log_std), "(L, log_det)", "full_covariance_factor")
    assert_close(L, _oracle_factor(L_prime, log_std), rtol=RTOL, atol=ATOL, what="your L")
    assert_close(log_det, onp.linalg.slogdet(_oracle_factor(L_prime, log_std))[1], rtol=RTOL, atol=ATOL,
                 what="your log_det")


@EX2.test("is differentiable: only the strictly lower part of L' reaches L", points=1,
          hint="Build L with autograd.numpy operations (mask multiplication, np.eye), no in-place "
               "assignment: the gradient with respect to L' must vanish on and above the diagonal.")
def _(f, rng):
    L_prime, log_std = _factor_inputs(rng)
    K = L_prime.shape[-1]
    R = rng.normal(size=(K, K))
    total = lambda Lp, s: anp.sum(f(Lp, s)[0] * R)  # noqa: E731
    assert_close(autograd.grad(total, 0)(L_prime, log_std), onp.tril(R, -1), rtol=RTOL, atol=ATOL,
                 what="your gradient with respect to L_prime")
    assert_close(autograd.grad(total, 1)(L_prime, log_std), onp.exp(log_std) * onp.diag(R), rtol=RTOL,
                 atol=ATOL, what="your gradient with respect to log_std")


# --- 3.3 ----------------------------------------------------------------------------------------

EX3 = exercise("3.3", "The path-derivative (sticking-the-landing) estimator",
               function="path_derivative_surrogate", reference=estimators.path_derivative_surrogate)


class _Problem(testbed.FullCovarianceQ):
    """A random linear-Gaussian testbed with a full-covariance Gaussian q (K = 2 latents).

    phi = [mean (2), log_std (2), L' (4)]; the entries of L' on and above the diagonal are masked out
    (see :class:`~vae_from_scratch.numpy.testbed.FullCovarianceQ`).
    """

    def __init__(self, rng):
        K, D = 2, int(rng.integers(3, 6))
        W, b, log_s = rng.normal(size=(D, K)), rng.normal(size=D), float(rng.uniform(-0.5, 0.0))
        super().__init__(testbed.sample(rng, 1, W, b, log_s)[0][0], W, b, log_s)
        self.phi_0 = onp.concatenate([onp.zeros(K), onp.full(K, 0.3), onp.zeros(K * K)])


def _student_gradients(f, P, phi, eps):
    return estimators.per_sample_gradients(lambda p, e: f(P.log_joint, P.sample, P.log_q, p, e), phi, eps)


@EX3.test("its value is the single-sample ELBO estimate log p(x, z) - log q(z)", points=1,
          hint="z = sample(phi, eps); return log_joint(z) - log_q(..., z): one value per noise sample.")
def _(f, rng):
    P = _Problem(rng)
    S = int(rng.integers(3, 7))
    phis = onp.tile(0.5 * (P.phi_0 + P.phi_star), (S, 1))
    eps = rng.standard_normal((S, P.K))
    z = P.sample(phis, eps)
    assert_close(f(P.log_joint, P.sample, P.log_q, phis, eps), P.log_joint(z) - P.log_q(phis, z),
                 rtol=RTOL, atol=ATOL, what="your surrogate's value")


@EX3.test("its gradient is exactly zero for every sample when q is the exact posterior", points=3,
          hint="At the optimum log p(x, z) - log q(z) = log p(x) for every z, so only the path through z "
               "may carry gradient, and that path term vanishes; the score term of log q (its direct "
               "dependence on phi) must be removed with a stop-gradient on the parameters of log_q, "
               "not on z.")
def _(f, rng):
    P = _Problem(rng)
    eps = rng.standard_normal((200, P.K))
    g = onp.asarray(_student_gradients(f, P, P.phi_star, eps), dtype=float)
    if g.shape != (200, P.phi_star.size):
        raise AssertionError(f"per-sample gradients have shape {g.shape}, expected {(200, P.phi_star.size)}")
    # exact zero up to round-off: the terms are O(1) and cancel to ~1e-15; a missing stop-gradient
    # leaves the score term, of size O(1) per sample
    if not onp.all(onp.abs(g) < 1e-8):
        raise AssertionError("your per-sample gradients are not zero at the exact posterior: "
                             "the score term of log q is still there")


@EX3.test("is unbiased away from the optimum (z-test against the closed-form ELBO gradient)", points=2,
          hint="Keep the gradient through the sample z (the path) and through log_joint; stop it only on "
               "the parameters that log_q receives.")
def _(f, rng):
    P = _Problem(rng)
    phi = 0.5 * (P.phi_0 + P.phi_star)
    exact = autograd.grad(P.exact_elbo)(phi)
    eps = rng.standard_normal((20000, P.K))
    g = onp.asarray(_student_gradients(f, P, phi, eps), dtype=float)
    if g.shape != (20000, phi.size):
        raise AssertionError(f"per-sample gradients have shape {g.shape}, expected {(20000, phi.size)}")
    # z-test at 5 standard errors on the 5 free coordinates: false-failure rate 2.9e-6
    assert_unbiased(g[:, P.free], exact[P.free], z=5.0, what="your per-sample gradients",
                    against="the exact ELBO gradient")


# --- 3.4 ----------------------------------------------------------------------------------------

EX4 = exercise("3.4", "Closed-form KL of a full-covariance Gaussian to the prior (derive)",
               function="kl_normal_full_standard", reference=reparameterization.kl_normal_full_standard)


def _full_inputs(rng, batch=()):
    K = int(rng.integers(3, 6))
    mean = rng.normal(0.0, 1.0, size=batch + (K,))
    L = onp.tril(rng.normal(0.0, 0.5, size=batch + (K, K)), -1)
    L = L + onp.exp(rng.uniform(-1.0, 0.7, size=batch + (K,)))[..., None] * onp.eye(K)
    return mean, L


def _oracle_kl_full(mean, L):
    """KL(N(mean, C) || N(0, I)) with C = L L^T formed explicitly and slogdet (another route)."""
    K = mean.shape[-1]
    C = L @ onp.swapaxes(L, -1, -2)
    return 0.5 * (onp.trace(C, axis1=-2, axis2=-1) + (mean**2).sum(-1) - K - onp.linalg.slogdet(C)[1])


@EX4.test("matches the closed form at random mean and factor", points=2,
          hint="(tr(L L^T) + mean . mean - K) / 2 - log|det L|; tr(L L^T) is the sum of the squared "
               "entries of L, and log|det L| the sum of the log-diagonal of the triangular L.")
def _(f, rng):
    mean, L = _full_inputs(rng)
    assert_close(f(mean, L), _oracle_kl_full(mean, L), rtol=RTOL, atol=ATOL)


@EX4.test("agrees with a Monte Carlo estimate of E_q[log q(z) - log p(z)]", points=1,
          hint="The KL is the average under q of log q(z) - log p(z): check the trace term and the sign "
               "and factor of the log-determinant (log|det L|, not log det(L L^T)).")
def _(f, rng):
    n = 20000
    mean, L = _full_inputs(rng)
    K = mean.shape[-1]
    eps = rng.standard_normal((n, K))
    z = mean + eps @ L.T
    log_ratio = (scipy.stats.multivariate_normal(mean, L @ L.T).logpdf(z)
                 - scipy.stats.norm.logpdf(z).sum(-1))
    kl = onp.asarray(f(mean, L), dtype=float)
    assert kl.shape == (), f"for mean of shape {(K,)} your result has shape {kl.shape}, expected ()"
    # z-test at 5 standard errors with the sample standard deviation: false-failure rate 5.7e-7
    assert_unbiased(log_ratio, kl, z=5.0, what="log q(z) - log p(z) over samples z ~ q",
                    against="your KL")


@EX4.test("is zero at the prior and positive elsewhere", points=1,
          hint="At mean 0 and L = I every term cancels: tr(I) - K = 0 and log det I = 0.")
def _(f, rng):
    K = int(rng.integers(3, 6))
    assert_close(f(onp.zeros(K), onp.eye(K)), onp.asarray(0.0), rtol=0.0, atol=1e-12,
                 what="your KL between N(0, I) and itself")
    mean, L = _full_inputs(rng)
    assert float(f(mean, L)) > 0, "your KL is not positive for a q different from the prior"


@EX4.test("keeps batch axes: mean (B, K) and L (B, K, K)", points=1,
          hint="Sum over the last axis (mean) and the last two axes (L) only: np.sum(L**2, axis=(-2, -1)).")
def _(f, rng):
    B = int(rng.integers(2, 5))
    mean, L = _full_inputs(rng, (B,))
    assert_close(f(mean, L), _oracle_kl_full(mean, L), rtol=RTOL, atol=ATOL)


@EX4.test("is finite and exact for K = 300 with small standard deviations", points=1,
          hint="det(L) of a 300 x 300 factor with diagonal near exp(-3) underflows to 0.0: use "
               "sum(log|L_jj|), never the log of a determinant.")
def _(f, rng):
    K = 300
    mean = rng.normal(0.0, 1.0, size=K)
    L = onp.tril(rng.normal(0.0, 0.01, size=(K, K)), -1) + onp.diag(onp.exp(rng.uniform(-4.0, -2.0, K)))
    value = onp.asarray(f(mean, L), dtype=float)
    assert onp.isfinite(value), "your KL is not finite for K = 300"
    expected = 0.5 * (onp.sum(L**2) + mean @ mean - K) - onp.sum(onp.log(onp.diag(L)))
    assert_close(value, expected, rtol=RTOL, atol=ATOL)


# --- 3.5 ----------------------------------------------------------------------------------------


def reparam_gradient_variance(mean, log_std):
    """Per-coordinate variance of the single-sample reparameterization gradient of E_q[sum_j z_j^2],
    q = N(mean, diag sigma^2), z = mean + sigma * eps: (4 sigma^2, 4 mean^2 sigma^2 + 8 sigma^4) for the
    mean and the log standard deviation. Reference solution (the package has none)."""
    var = onp.exp(2.0 * log_std)
    return 4.0 * var, 4.0 * mean**2 * var + 8.0 * var**2


EX5 = exercise("3.5", "The variance of a reparameterization gradient (derive)",
               function="reparam_gradient_variance", reference=reparam_gradient_variance)


def _variance_inputs(rng, shape):
    return rng.normal(0.0, 1.5, size=shape), rng.uniform(-1.0, 0.7, size=shape)


@EX5.test("matches the closed form", points=2,
          hint="The single-sample gradients are 2 z (mean) and 2 z sigma eps (log_std), z = mean + sigma "
               "eps; expand and use Var(eps) = 1, Var(eps^2) = 2, Cov(eps, eps^2) = 0.")
def _(f, rng):
    mean, log_std = _variance_inputs(rng, (int(rng.integers(5, 9)),))
    result = _pair(f(mean, log_std), "(var_mean, var_log_std)", "reparam_gradient_variance")
    expected = reparam_gradient_variance(mean, log_std)
    for got, want, name in zip(result, expected, ("var_mean", "var_log_std")):
        assert_close(got, want, rtol=RTOL, atol=ATOL, what=f"your {name}")


@EX5.test("agrees with the sample variance of autograd's per-sample gradients (z-test)", points=1,
          hint="Differentiate sum_j (mean_j + exp(log_std_j) eps_j)^2 for many eps and compare the spread: "
               "the log_std gradient has a factor sigma from d sigma / d log_std = sigma.")
def _(f, rng):
    K, n = 3, 40000
    mean, log_std = _variance_inputs(rng, (K,))
    eps = rng.standard_normal((n, K))
    sigma = onp.exp(log_std)
    z = mean + sigma * eps
    grads = (2.0 * z, 2.0 * z * sigma * eps)  # per-sample gradients, as autograd computes them
    var_mean, var_log_std = _pair(f(mean, log_std), "(var_mean, var_log_std)", "reparam_gradient_variance")
    exact_means = (2.0 * mean, 2.0 * sigma**2)  # E[2 z] and E[2 z sigma eps]
    for g, g_mean, answer, name in zip(grads, exact_means, (var_mean, var_log_std), ("mean", "log_std")):
        squared = (g - g_mean) ** 2  # i.i.d., with mean exactly the variance
        # z-test at 5 standard errors on each of 2 x 3 coordinates: false-failure rate 3.4e-6
        assert_unbiased(squared, onp.asarray(answer, dtype=float), z=5.0,
                        what=f"squared deviations of the per-sample gradient in {name}",
                        against=f"your variance for {name}")


@EX5.test("broadcasts over batch axes (B, K)", points=1,
          hint="Everything is elementwise: no sums, the result has the shape of mean.")
def _(f, rng):
    mean, log_std = _variance_inputs(rng, (int(rng.integers(2, 5)), int(rng.integers(3, 6))))
    result = _pair(f(mean, log_std), "(var_mean, var_log_std)", "reparam_gradient_variance")
    for got, want in zip(result, reparam_gradient_variance(mean, log_std)):
        assert_close(got, want, rtol=RTOL, atol=ATOL)
