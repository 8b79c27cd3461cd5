r"""Exercise set 0: the distributions a VAE is made of (``exercises/00_distributions.ipynb``).

0.1 diagonal-Gaussian log-density, 0.2 Bernoulli log-likelihood from logits, 0.3 closed-form KL from a
diagonal Gaussian to :math:`\mathcal N(\mathbf 0, \mathbf I)`; references in
:mod:`vae_from_scratch.numpy.distributions`.

Tolerances. Every deterministic comparison uses an independent float64 oracle (scipy, or the formula
written differently). The answers are sums of at most 9 terms, each computed to a few units in the
last place (eps = 2.2e-16) and of magnitude below 1e2 (1e4 for the extreme-logit test), so a correct
answer is within ~1e-12 absolute (~1e-15 relative for the extreme test) of the oracle; we allow
1e-9 (1e-10 relative), a margin of about 1000x. The 784-dimensional tests sum 784 such terms to
totals of magnitude 1e3: a correct answer is within ~1e-12 relative, the allowance 1e-9 relative.
Those tests exist because the naive forms (the log of a product of densities, of probabilities or
of standard deviations) underflow to log(0) = -inf there although they pass every small test. Every typical mistake (a missing
:math:`\tfrac12\log 2\pi = 0.92` per dimension, a variance/standard-deviation mix-up, a wrong axis,
a sign flip) is off by more than 1e-2, and in most draws by more than 1.

Statistical test. 0.3's Monte Carlo test is a two-sided z-test at 5 standard errors on n = 20000
samples, with the exact standard error (the variance of log q - log p is known in closed form):
false-failure rate 2 Phi(-5) = 5.7e-7 under the normal approximation (the Edgeworth skewness term at
this n changes each tail by less than a factor 2 and cancels to first order in the two-sided test).
Measured on 100000 replicates of the test's exact statistic: 0 beyond 5 standard errors, 3 beyond 4
(6.3 expected), 247 beyond 3 (270 expected). Every other test is deterministic given its inputs and
its tolerance has a ~1000x margin: 0 false failures of the correct answers in 5000 seeds per
exercise. So the false-failure rate per exercise is about 6e-7, far below 1e-4.
"""

import autograd
import autograd.numpy as anp
import numpy as onp
import scipy.special
import scipy.stats

from vae_from_scratch.numpy import distributions

from ..core import assert_close, assert_unbiased, exercise

ATOL = 1e-9  # see the module docstring
RTOL = 1e-9


def _batch_and_event(rng):
    """A batch size B in 6..9 and an event size D in 2..5: B != D, so a wrong axis changes the shape."""
    return int(rng.integers(6, 10)), int(rng.integers(2, 6))


# --- 0.1 ----------------------------------------------------------------------------------------

EX1 = exercise("0.1", "Diagonal-Gaussian log-density", function="log_normal_diag",
               reference=distributions.log_normal_diag)


def _gaussian_inputs(rng, batch_shape, event):
    mean = rng.normal(0.0, 1.0, size=batch_shape + (event,))
    log_std = rng.uniform(-1.5, 1.5, size=batch_shape + (event,))
    x = mean + onp.exp(log_std) * rng.normal(0.0, 1.5, size=batch_shape + (event,))
    return x, mean, log_std


def _oracle_log_normal(x, mean, log_std):
    return scipy.stats.norm.logpdf(x, loc=mean, scale=onp.exp(log_std)).sum(axis=-1)


@EX1.test("matches the log-density at random points", points=2,
          hint="Sum, over the last axis, log sigma + (1/2) log(2 pi) + (1/2) ((x - mean) / sigma)**2, "
               "then negate; sigma = exp(log_std) is a standard deviation, not a variance.")
def _(f, rng):
    B, D = _batch_and_event(rng)
    x, mean, log_std = _gaussian_inputs(rng, (B,), D)
    assert_close(f(x, mean, log_std), _oracle_log_normal(x, mean, log_std), rtol=RTOL, atol=ATOL)


@EX1.test("keeps batch axes and broadcasts samples (S, B, D) against parameters (B, D)", points=1,
          hint="Reduce only the last (event) axis, e.g. np.sum(..., axis=-1); let NumPy broadcasting "
               "pair the samples with the parameters, no loops or reshapes needed.")
def _(f, rng):
    B, D = _batch_and_event(rng)
    S = int(rng.integers(2, 5))
    _, mean, log_std = _gaussian_inputs(rng, (B,), D)
    x = mean + onp.exp(log_std) * rng.normal(size=(S, B, D))
    assert_close(f(x, mean, log_std), _oracle_log_normal(x, mean, log_std), rtol=RTOL, atol=ATOL)


@EX1.test("integrates to one (1-D, numerically)", points=1,
          hint="A density must integrate to 1: check the normalizing constant -(1/2) log(2 pi) - log sigma "
               "in every dimension.")
def _(f, rng):
    mean = rng.normal(size=(1,))
    log_std = rng.uniform(-1.0, 1.0, size=(1,))
    sigma = float(onp.exp(log_std[0]))
    # trapezoid rule on mean +- 12 sigma, 2001 points: truncation 2 Phi(-12) ~ 4e-33, and for a Gaussian
    # the trapezoid error decays like exp(-2 pi^2 (sigma/h)^2) with h = 0.012 sigma: far below 1e-12
    grid = mean[0] + sigma * onp.linspace(-12.0, 12.0, 2001)
    values = onp.asarray(f(grid[:, None], mean, log_std), dtype=float)
    assert values.shape == grid.shape, (
        f"for x of shape {grid[:, None].shape} and parameters of shape (1,) your result has shape "
        f"{values.shape}, expected {grid.shape}")
    total = onp.trapezoid(onp.exp(values), grid) if hasattr(onp, "trapezoid") else onp.trapz(
        onp.exp(values), grid)
    assert onp.isfinite(total) and abs(total - 1.0) < 1e-9, (
        "exp(your log-density) does not integrate to 1 over x")


@EX1.test("is finite and exact for a 784-dimensional point (an MNIST-sized image)", points=2,
          hint="In 784 dimensions the density itself is about exp(-1000), which underflows to 0.0 in "
               "float64: never form a density and take its log; sum the per-dimension log-densities.")
def _(f, rng):
    B, D = 3, 784
    x, mean, log_std = _gaussian_inputs(rng, (B,), D)
    expected = _oracle_log_normal(x, mean, log_std)
    # the test is only meaningful where exp(log-density) underflows: check that it does here
    assert onp.all(expected < -800.0)
    values = onp.asarray(f(x, mean, log_std), dtype=float)
    assert onp.all(onp.isfinite(values)), "your log-density is not finite for a 784-dimensional x"
    assert_close(values, expected, rtol=RTOL, atol=ATOL)


@EX1.test("is differentiable with autograd (gradients in mean and log_std)", points=1,
          hint="Use autograd.numpy (imported as np in this notebook), no in-place assignment, no "
               "float()/math.* on arrays. d/dmean = (x - mean)/sigma**2.")
def _(f, rng):
    B, D = _batch_and_event(rng)
    x, mean, log_std = _gaussian_inputs(rng, (B,), D)
    total = lambda m, s: anp.sum(f(x, m, s))  # noqa: E731
    z = (x - mean) * onp.exp(-log_std)
    # d/dmean = (x - mean) / sigma^2 and d/dlog_std = z^2 - 1, both of size < 1e2 here
    assert_close(autograd.grad(total, 0)(mean, log_std), z * onp.exp(-log_std), rtol=RTOL, atol=ATOL,
                 what="your gradient with respect to mean")
    assert_close(autograd.grad(total, 1)(mean, log_std), z**2 - 1.0, rtol=RTOL, atol=ATOL,
                 what="your gradient with respect to log_std")


# --- 0.2 ----------------------------------------------------------------------------------------

EX2 = exercise("0.2", "Bernoulli log-likelihood from logits", function="bernoulli_log_likelihood",
               reference=distributions.bernoulli_log_likelihood)


def _oracle_bernoulli(x, logits):
    # log sigmoid(l) = -softplus(-l), log(1 - sigmoid(l)) = -softplus(l): exact for any finite l
    return onp.where(x == 1, -onp.logaddexp(0.0, -logits), -onp.logaddexp(0.0, logits)).sum(axis=-1)


def _binary(rng, shape):
    return (rng.random(shape) < 0.5).astype(float)


@EX2.test("matches the log-likelihood at moderate logits (|logit| <= 10)", points=2,
          hint="log p(x | logits) = sum over the last axis of x log p + (1 - x) log(1 - p) with "
               "p = sigmoid(logits); x = 1 should favour large logits.")
def _(f, rng):
    B, D = _batch_and_event(rng)
    logits = onp.clip(rng.normal(0.0, 4.0, size=(B, D)), -10.0, 10.0)
    x = _binary(rng, (B, D))
    assert_close(f(x, logits), _oracle_bernoulli(x, logits), rtol=RTOL, atol=ATOL)


@EX2.test("is finite and exact at extreme logits (+-1e4)", points=2,
          hint="sigmoid(1e4) rounds to exactly 1.0, so log(1 - sigmoid) is log(0). Rewrite the formula "
               "with softplus(a) = log(1 + exp(a)), computed stably by np.logaddexp(0, a).")
def _(f, rng):
    D = int(rng.integers(4, 8))
    # rows hold every combination of x in {0, 1} and logit sign, so log(0) appears for a naive answer
    sign = onp.array([[1.0], [1.0], [-1.0], [-1.0]]) * onp.ones((4, D))
    x = onp.array([[1.0], [0.0], [1.0], [0.0]]) * onp.ones((4, D))
    mixed = rng.random((4, D)) < 0.5
    x = onp.where(mixed, 1.0 - x, x)  # columns mix the combinations as well
    sign = onp.where(rng.random((4, D)) < 0.5, sign, -sign)
    sign[:, 0], x[:, 0] = [1.0, 1.0, -1.0, -1.0], [1.0, 0.0, 1.0, 0.0]
    logits = sign * rng.uniform(1e4, 2e4, size=(4, D))
    # the exact values are sums of terms 0 or -|logit| (no cancellation): relative error <= D eps
    assert_close(f(x, logits), _oracle_bernoulli(x, logits), rtol=1e-10, atol=1e-10)


@EX2.test("is finite and exact for a 784-pixel image at moderate logits", points=1,
          hint="The probability of a whole image is about exp(-1000), which underflows to 0.0: sum "
               "per-pixel log-probabilities instead of taking the log of a product.")
def _(f, rng):
    B, D = 3, 784
    logits = rng.normal(0.0, 3.0, size=(B, D))
    x = _binary(rng, (B, D))
    expected = _oracle_bernoulli(x, logits)
    assert onp.all(expected < -800.0)  # exp(expected) underflows: the naive product fails here
    values = onp.asarray(f(x, logits), dtype=float)
    assert onp.all(onp.isfinite(values)), "your log-likelihood is not finite for a 784-pixel image"
    assert_close(values, expected, rtol=RTOL, atol=ATOL)


@EX2.test("keeps batch axes and broadcasts data (S, B, D) against logits (B, D)", points=1,
          hint="Reduce only the last (event) axis: np.sum(..., axis=-1).")
def _(f, rng):
    B, D = _batch_and_event(rng)
    S = int(rng.integers(2, 5))
    logits = onp.clip(rng.normal(0.0, 3.0, size=(B, D)), -10.0, 10.0)
    x = _binary(rng, (S, B, D))
    assert_close(f(x, logits), _oracle_bernoulli(x, logits), rtol=RTOL, atol=ATOL)


@EX2.test("is differentiable with autograd (gradient in the logits)", points=1,
          hint="Use autograd.numpy functions (np.logaddexp works); the gradient should be "
               "x - sigmoid(logits).")
def _(f, rng):
    B, D = _batch_and_event(rng)
    logits = rng.normal(0.0, 3.0, size=(B, D))
    x = _binary(rng, (B, D))
    gradient = autograd.grad(lambda l: anp.sum(f(x, l)))(logits)
    assert_close(gradient, x - scipy.special.expit(logits), rtol=RTOL, atol=ATOL,
                 what="your gradient with respect to the logits")


# --- 0.3 ----------------------------------------------------------------------------------------

EX3 = exercise("0.3", "Closed-form KL divergence to the standard normal", function="kl_normal_standard",
               reference=distributions.kl_normal_standard)


def _oracle_kl(mean, log_std):
    # written differently from the package: sum_j (mu^2 + sigma^2 - 1 - log sigma^2) / 2
    return 0.5 * (mean**2 + onp.exp(2.0 * log_std) - 1.0 - 2.0 * log_std).sum(axis=-1)


def _away_from_prior(rng, shape):
    """Means with |mu| in [0.5, 1.5] (random signs), so KL >= D / 8: never close to zero."""
    return rng.choice([-1.0, 1.0], size=shape) * rng.uniform(0.5, 1.5, size=shape)


@EX3.test("matches the closed form at random parameters", points=2,
          hint="Per dimension the KL is (mu^2 + sigma^2 - 1)/2 - log sigma with sigma = exp(log_std); "
               "sum over the last axis.")
def _(f, rng):
    B, D = _batch_and_event(rng)
    mean = rng.normal(0.0, 1.5, size=(B, D))
    log_std = rng.uniform(-2.0, 1.5, size=(B, D))
    assert_close(f(mean, log_std), _oracle_kl(mean, log_std), rtol=RTOL, atol=ATOL)


@EX3.test("agrees with a Monte Carlo estimate of E_q[log q(z) - log p(z)]", points=1,
          hint="KL(q || p) is the expectation under q of log q(z) - log p(z); your closed form must "
               "equal that average, for q = N(mean, sigma^2) and p = N(0, 1) in every dimension.")
def _(f, rng):
    D, n = 3, 20000
    mean = _away_from_prior(rng, (D,))
    log_std = rng.uniform(-1.0, 0.7, size=(D,))
    eps = rng.standard_normal((n, D))
    z = mean + onp.exp(log_std) * eps
    # log q(z) - log p(z) = sum_j -log sigma_j - eps_j^2 / 2 + z_j^2 / 2 (the log 2 pi terms cancel)
    log_ratio = (-log_std - 0.5 * eps**2 + 0.5 * z**2).sum(axis=-1)
    # = sum_j a_j eps_j^2 + b_j eps_j + const with a_j = (sigma_j^2 - 1) / 2, b_j = mu_j sigma_j, so its
    # variance is known exactly: sum_j 2 a_j^2 + b_j^2 (Var eps^2 = 2, Cov(eps^2, eps) = 0)
    sigma2 = onp.exp(2.0 * log_std)
    std = onp.sqrt(onp.sum(0.5 * (sigma2 - 1.0) ** 2 + mean**2 * sigma2))
    kl = onp.asarray(f(mean, log_std), dtype=float)
    assert kl.shape == (), f"for parameters of shape {(D,)} your result has shape {kl.shape}, expected ()"
    # z-test at 5 standard errors: false-failure rate 5.7e-7 (see the module docstring)
    assert_unbiased(log_ratio, kl, z=5.0, std=std, what="log q(z) - log p(z) over samples z ~ q",
                    against="your KL")


@EX3.test("is finite and exact for a narrow posterior in 784 dimensions", points=1,
          hint="prod(sigma) over hundreds of dimensions with sigma < 1 underflows to 0.0 (and log(0) "
               "is -inf): use log_std directly, sum_j log_std_j, instead of the log of a product.")
def _(f, rng):
    B, K = 3, 784
    mean = rng.normal(0.0, 1.0, size=(B, K))
    log_std = rng.uniform(-2.5, -1.0, size=(B, K))  # sum_j log_std_j ~ -1400: exp underflows
    values = onp.asarray(f(mean, log_std), dtype=float)
    assert onp.all(onp.isfinite(values)), "your KL is not finite for a narrow q in 784 dimensions"
    assert_close(values, _oracle_kl(mean, log_std), rtol=RTOL, atol=ATOL)


@EX3.test("is zero when q equals the prior and positive otherwise", points=1,
          hint="KL(q || p) >= 0 with equality only when q = p: check the sign of each term and the -1.")
def _(f, rng):
    B, D = _batch_and_event(rng)
    zero = onp.zeros((B, D))
    assert_close(f(zero, zero), onp.zeros(B), rtol=0.0, atol=1e-12,
                 what="your KL between N(0, I) and itself")
    mean = _away_from_prior(rng, (B, D))
    log_std = rng.uniform(-1.0, 1.0, size=(B, D))
    values = onp.asarray(f(mean, log_std), dtype=float)
    assert values.shape == (B,), f"your result has shape {values.shape}, expected shape {(B,)}"
    assert onp.all(values > 0), "your KL is not positive for a q different from the prior"


@EX3.test("keeps batch axes and broadcasts means (S, B, D) against log_std (B, D)", points=1,
          hint="Reduce only the last (event) axis: np.sum(..., axis=-1).")
def _(f, rng):
    B, D = _batch_and_event(rng)
    S = int(rng.integers(2, 5))
    mean = rng.normal(0.0, 1.5, size=(S, B, D))
    log_std = rng.uniform(-2.0, 1.5, size=(B, D))
    assert_close(f(mean, log_std), _oracle_kl(mean, log_std), rtol=RTOL, atol=ATOL)


@EX3.test("is differentiable with autograd (gradients in mean and log_std)", points=1,
          hint="Use autograd.numpy functions; d/dmean = mean and d/dlog_std = sigma**2 - 1.")
def _(f, rng):
    B, D = _batch_and_event(rng)
    mean = rng.normal(0.0, 1.5, size=(B, D))
    log_std = rng.uniform(-2.0, 1.5, size=(B, D))
    total = lambda m, s: anp.sum(f(m, s))  # noqa: E731
    assert_close(autograd.grad(total, 0)(mean, log_std), mean, rtol=RTOL, atol=ATOL,
                 what="your gradient with respect to mean")
    assert_close(autograd.grad(total, 1)(mean, log_std), onp.exp(2.0 * log_std) - 1.0, rtol=RTOL,
                 atol=ATOL, what="your gradient with respect to log_std")
