r"""Exercise set 5: the variational autoencoder (``exercises/05_vae.ipynb``).

5.1 the Bernoulli-decoder ELBO of a minibatch, 5.2 the importance-sampled log-likelihood with a stable
log-mean-exp, 5.3 one AEVB step (K&W Algorithm 1) with plain stochastic gradient ascent, 5.4 (derive)
the Gaussian that maximizes the beta-weighted objective on the linear-Gaussian testbed, and its value.
References in :mod:`vae_from_scratch.numpy.vae`. Answers receive the parameter pytree
``{"encoder": [(W, b), ...], "decoder": [(W, b), ...]}`` of that module and may use its ``encode``,
``decode`` and :mod:`vae_from_scratch.numpy.distributions` (5.3 also ``vae.elbo``).

Tolerances. Every comparison is against an independent float64 oracle written in plain NumPy/SciPy
(or, for 5.3, the reference composed from checked parts). Inputs are small (at most 9 pixels,
3 latent dimensions, 8 samples) with values below 1e2 (1e4 in the extreme tests), so a correct answer
agrees with the oracle to ~1e-12 absolute (relative ~1e-15 in the extreme tests, where terms do not
cancel); we allow ``rtol = atol = 1e-9`` (1e-10 relative in the extreme tests), a margin of 1000x.
The typical mistakes (a KL sign flip, log-variance used as log-std, a mean over pixels, a missing
``- log S``, gradient descent instead of ascent, a sum instead of a mean over the minibatch) change
the result by far more than 1e-3.

The 784-pixel tests (5.1, 5.2) use images of MNIST's size, where every log-weight is far below
exp's range (-745) in 5.2; 5.4 compares closed forms (log-densities of at most 784 dimensions,
magnitude below 1e4) at rtol 1e-9, and its maximum test compares the objective at the answer with
its value at perturbed Gaussians, which are lower by at least 1e-6 (second order in the perturbation
of size 1e-2), against a rounding error below 1e-10.

All tests are deterministic given their random inputs: the false-failure rate of each exercise is 0.
"""

import autograd
import autograd.numpy as anp
import numpy as onp
import scipy.special
import scipy.stats

from vae_from_scratch.numpy import objectives as _objectives
from vae_from_scratch.numpy import vae

from ..core import assert_close, exercise

RTOL = ATOL = 1e-9  # see the module docstring


# --- random problems ------------------------------------------------------------------------------


def _problem(rng, D=None):
    """Random small VAE and binary minibatch: B in 4..6 data points, D in 7..9 pixels (or ``D``), K in
    2..3 latents (B, D, K and the sample count S are all different, so a wrong axis changes a shape)."""
    B, K = int(rng.integers(4, 7)), int(rng.integers(2, 4))
    D = int(rng.integers(7, 10)) if D is None else D
    H = int(rng.integers(3, 6))
    params = vae.init_vae(rng, D, (H,), K)
    # larger-than-default encoder outputs so that log_std is far from 0 and KL terms matter
    params["encoder"][-1] = (params["encoder"][-1][0] * 2.0, rng.normal(0.0, 0.7, size=2 * K))
    x = (rng.random((B, D)) < 0.4).astype(float)
    return params, x, B, D, K


def _extreme(params, x, rng, scale):
    """Make the decoder's logits huge (|logit| ~ scale, the bias dominates): returns new params and
    data in which pixel 0 always disagrees with its logit's sign (so log p(x|z) <= -scale/2 for every
    data point) and the other pixels disagree at random."""
    W, b = params["decoder"][-1]
    sign = rng.choice([-1.0, 1.0], size=b.shape)
    params = {"encoder": params["encoder"], "decoder": params["decoder"][:-1] + [(W, sign * scale)]}
    x = x.copy()
    x[:, 0] = 1.0 if sign[0] < 0 else 0.0
    return params, x


def _oracle_terms(params, x, eps):
    """Plain-NumPy log p(x|z), log p(z), log q(z|x) and KL for eps (S, B, K)."""
    h = onp.tanh(x @ params["encoder"][0][0] + params["encoder"][0][1])
    out = h @ params["encoder"][1][0] + params["encoder"][1][1]
    K = out.shape[-1] // 2
    mean, log_std = out[:, :K], out[:, K:]
    z = mean + onp.exp(log_std) * eps
    g = onp.tanh(z @ params["decoder"][0][0] + params["decoder"][0][1])
    logits = g @ params["decoder"][1][0] + params["decoder"][1][1]
    # log sigmoid(l) = -log(1 + e^-l), log(1 - sigmoid(l)) = -log(1 + e^l), both exact via logaddexp
    log_px_z = onp.where(x == 1, -onp.logaddexp(0.0, -logits), -onp.logaddexp(0.0, logits)).sum(-1)
    log_pz = (-0.5 * z**2 - 0.5 * onp.log(2 * onp.pi)).sum(-1)
    log_qz = (-0.5 * eps**2 - log_std - 0.5 * onp.log(2 * onp.pi)).sum(-1)
    kl = 0.5 * (mean**2 + onp.exp(2 * log_std) - 1.0 - 2.0 * log_std).sum(-1)
    return log_px_z, log_pz, log_qz, kl


def _oracle_elbo(params, x, eps):
    eps3 = eps if eps.ndim == 3 else eps[None]
    log_px_z, _, _, kl = _oracle_terms(params, x, eps3)
    return log_px_z.mean(0) - kl


def _oracle_iwae(params, x, eps):
    log_px_z, log_pz, log_qz, _ = _oracle_terms(params, x, eps)
    return scipy.special.logsumexp(log_px_z + log_pz - log_qz, axis=0) - onp.log(eps.shape[0])


# --- 5.1 ---------------------------------------------------------------------------------------------

EX1 = exercise("5.1", "The Bernoulli-decoder ELBO of a minibatch", function="elbo", reference=vae.elbo)
EX1.forbidden = (vae.minibatch_elbo, vae.iwae, vae.log_weights, _objectives.elbo_analytic_kl,
                 _objectives.elbo_normal_diag)


@EX1.test("matches the ELBO estimate with one sample per data point", points=2,
          hint="z = mean + exp(log_std) * eps; reconstruction = Bernoulli log-likelihood of x under "
               "decode(params, z), summed over pixels; subtract the closed-form KL to N(0, I), summed "
               "over latent dimensions. One value per data point.")
def _(f, rng):
    params, x, B, D, K = _problem(rng)
    eps = rng.standard_normal((B, K))
    assert_close(f(params, x, eps), _oracle_elbo(params, x, eps), rtol=RTOL, atol=ATOL)


@EX1.test("averages the reconstruction over S samples eps of shape (S, B, K)", points=2,
          hint="With eps of shape (S, B, K), z has shape (S, B, K): average the reconstruction term over "
               "the first (sample) axis, and subtract the KL once; the KL does not depend on eps.")
def _(f, rng):
    params, x, B, D, K = _problem(rng)
    S = int(rng.integers(7, 9))
    eps = rng.standard_normal((S, B, K))
    assert_close(f(params, x, eps), _oracle_elbo(params, x, eps), rtol=RTOL, atol=ATOL)


@EX1.test("is finite and exact when the decoder's logits are huge (|logit| ~ 1e4)", points=1,
          hint="sigmoid(1e4) is exactly 1.0 in floating point, so log(1 - sigmoid) = log(0). Use the "
               "package's bernoulli_log_likelihood(x, logits), or x * l - softplus(l) with "
               "softplus(l) = np.logaddexp(0, l).")
def _(f, rng):
    params, x, B, D, K = _problem(rng)
    params, x = _extreme(params, x, rng, 1e4)
    eps = rng.standard_normal((B, K))
    assert_close(f(params, x, eps), _oracle_elbo(params, x, eps), rtol=1e-10, atol=1e-6)


@EX1.test("is exact for 784-pixel images (MNIST's size) with several samples", points=1,
          hint="Sum the Bernoulli log-likelihood over all pixels (not a mean), average over the samples, "
               "subtract the KL once.")
def _(f, rng):
    params, x, B, D, K = _problem(rng, D=784)
    eps = rng.standard_normal((5, B, K))
    assert_close(f(params, x, eps), _oracle_elbo(params, x, eps), rtol=RTOL, atol=ATOL)


@EX1.test("is differentiable with autograd in all parameters", points=1,
          hint="Build it from autograd.numpy (np.*) and the package's functions; no in-place assignment, "
               "no float() on arrays.")
def _(f, rng):
    params, x, B, D, K = _problem(rng)
    eps = rng.standard_normal((B, K))
    got = autograd.grad(lambda p: anp.sum(f(p, x, eps)))(params)
    want = autograd.grad(lambda p: anp.sum(vae.elbo(p, x, eps)))(params)
    for part in ("encoder", "decoder"):
        for (gW, gb), (wW, wb) in zip(got[part], want[part]):
            assert_close(gW, wW, rtol=1e-8, atol=1e-9, what=f"your gradient with respect to a {part} weight")
            assert_close(gb, wb, rtol=1e-8, atol=1e-9, what=f"your gradient with respect to a {part} bias")


# --- 5.2 ---------------------------------------------------------------------------------------------

EX2 = exercise("5.2", "Importance-sampled log-likelihood with a stable log-mean-exp", function="iwae",
               reference=vae.iwae)
EX2.forbidden = (vae.log_weights,)


@EX2.test("matches the importance-sampling estimate at random parameters", points=2,
          hint="log w_l = log p(x | z_l) + log p(z_l) - log q(z_l | x) with z_l = mean + exp(log_std) * eps_l; "
               "the estimate is log((1/k) sum_l exp(log w_l)), one value per data point.")
def _(f, rng):
    params, x, B, D, K = _problem(rng)
    eps = rng.standard_normal((int(rng.integers(7, 9)), B, K))
    assert_close(f(params, x, eps), _oracle_iwae(params, x, eps), rtol=RTOL, atol=ATOL)


@EX2.test("is finite and exact when every weight underflows (log w ~ -1e4)", points=2,
          hint="exp(-1e4) is 0.0 in floating point. Subtract the largest log-weight before exponentiating "
               "and add it back after the log (m + log mean exp(log w - m)).")
def _(f, rng):
    params, x, B, D, K = _problem(rng)
    params, x = _extreme(params, x, rng, 3e3)
    eps = rng.standard_normal((int(rng.integers(7, 9)), B, K))
    expected = _oracle_iwae(params, x, eps)
    assert onp.all(expected < -1000.0)  # the construction guarantees underflow of exp for every weight
    assert_close(f(params, x, eps), expected, rtol=1e-10, atol=1e-6)


@EX2.test("is finite and exact for 784-pixel images, whose weights all underflow", points=1,
          hint="A 784-pixel image has log p(x | z) in the hundreds or thousands of negative nats: exp of "
               "it is 0.0 in float64. Factor out the largest log-weight: m + log mean exp(log w - m).")
def _(f, rng):
    params, x, B, D, K = _problem(rng, D=784)
    params, x = _extreme(params, x, rng, 4.0)   # logits of size 4: realistic, not extreme
    eps = rng.standard_normal((int(rng.integers(5, 8)), B, K))
    expected = _oracle_iwae(params, x, eps)
    assert onp.all(expected < -750.0)  # about half of 784 pixels disagree with a logit of size 4
    assert_close(f(params, x, eps), expected, rtol=1e-10, atol=1e-6)


@EX2.test("repeating the same sample S times gives that sample's log-weight", points=1,
          hint="With S identical samples the mean of the weights is one weight: the log of a MEAN, not of "
               "a sum, so subtract log S after the log-sum-exp.")
def _(f, rng):
    params, x, B, D, K = _problem(rng)
    eps1 = rng.standard_normal((1, B, K))
    S = int(rng.integers(5, 9))
    log_px_z, log_pz, log_qz, _ = _oracle_terms(params, x, eps1)
    assert_close(f(params, x, onp.repeat(eps1, S, axis=0)), (log_px_z + log_pz - log_qz)[0],
                 rtol=RTOL, atol=ATOL)


@EX2.test("is at least the average log-weight (Jensen) and one value per data point", points=1,
          hint="Reduce over the sample axis (axis 0) only; log of the mean of exp is >= the mean of the logs.")
def _(f, rng):
    params, x, B, D, K = _problem(rng)
    eps = rng.standard_normal((int(rng.integers(7, 9)), B, K))
    value = onp.asarray(f(params, x, eps), dtype=float)
    assert value.shape == (B,), f"your result has shape {value.shape}, expected one value per data point ({B},)"
    log_px_z, log_pz, log_qz, _ = _oracle_terms(params, x, eps)
    assert onp.all(value >= (log_px_z + log_pz - log_qz).mean(0) - 1e-9), (
        "your estimate is below the average log-weight for some data point")


# --- 5.3 ---------------------------------------------------------------------------------------------

EX3 = exercise("5.3", "One AEVB step with stochastic gradient ascent", function="aevb_sgd_step",
               reference=vae.sgd_step)
EX3.forbidden = (vae.aevb_step, vae.adam_update, vae._elbo_grad, vae.train)


def _flat(params):
    return onp.concatenate([onp.ravel(a) for part in ("encoder", "decoder") for layer in params[part]
                            for a in layer])


def _check_structure(new, params):
    assert isinstance(new, dict) and set(new) == {"encoder", "decoder"}, (
        "return a parameter pytree: a dict with keys 'encoder' and 'decoder'")
    for part in ("encoder", "decoder"):
        assert len(new[part]) == len(params[part]), f"your {part} has a different number of layers"
        for (W, b), (W0, b0) in zip(new[part], params[part]):
            assert onp.shape(W) == onp.shape(W0) and onp.shape(b) == onp.shape(b0), (
                f"a {part} layer changed shape")


@EX3.test("matches one gradient-ascent step on the minibatch-average ELBO", points=2,
          hint="Differentiate the AVERAGE over the minibatch of vae.elbo(params, x, eps) with autograd.grad "
               "(with respect to params), then move every weight by +lr times its gradient (ascent).")
def _(f, rng):
    params, x, B, D, K = _problem(rng)
    eps = rng.standard_normal((B, K))
    lr = float(rng.uniform(0.01, 0.1))
    new = f(params, x, eps, lr)
    _check_structure(new, params)
    grads = autograd.grad(lambda p: anp.mean(_oracle_elbo_autograd(p, x, eps)))(params)
    assert_close(_flat(new), _flat(params) + lr * _flat(grads), rtol=RTOL, atol=ATOL,
                 what="your updated parameters")


def _oracle_elbo_autograd(p, x, eps):
    """The ELBO written out with autograd.numpy (independent of the package's vae.elbo)."""
    out = anp.dot(anp.tanh(anp.dot(x, p["encoder"][0][0]) + p["encoder"][0][1]), p["encoder"][1][0]) \
        + p["encoder"][1][1]
    K = out.shape[-1] // 2
    mean, log_std = out[:, :K], out[:, K:]
    z = mean + anp.exp(log_std) * eps
    logits = anp.dot(anp.tanh(anp.dot(z, p["decoder"][0][0]) + p["decoder"][0][1]), p["decoder"][1][0]) \
        + p["decoder"][1][1]
    recon = anp.sum(x * logits - anp.logaddexp(0.0, logits), axis=-1)
    return recon - anp.sum(0.5 * (mean**2 + anp.exp(2 * log_std) - 1.0) - log_std, axis=-1)


@EX3.test("raises the minibatch ELBO for a small learning rate, and leaves its input unchanged", points=1,
          hint="Ascent: new = params + lr * gradient of the ELBO (the ELBO is maximized). Build new arrays; "
               "do not modify the arrays of params in place.")
def _(f, rng):
    params, x, B, D, K = _problem(rng)
    before = _flat(params)
    eps = rng.standard_normal((B, K))
    new = f(params, x, eps, 1e-4)
    assert onp.array_equal(_flat(params), before), "your function modified its input params"
    gain = onp.mean(_oracle_elbo(new, x, eps)) - onp.mean(_oracle_elbo(params, x, eps))
    assert gain > 0, "a small step of your update lowers the minibatch ELBO"


@EX3.test("updates both the encoder (phi) and the decoder (theta)", points=1,
          hint="Algorithm 1 updates theta and phi together: take the gradient with respect to the whole "
               "params pytree, not one part of it.")
def _(f, rng):
    params, x, B, D, K = _problem(rng)
    eps = rng.standard_normal((B, K))
    new = f(params, x, eps, 0.05)
    for part in ("encoder", "decoder"):
        moved = sum(float(onp.max(onp.abs(onp.asarray(W) - W0))) for (W, _), (W0, _) in
                    zip(new[part], params[part]))
        assert moved > 1e-8, f"your step leaves the {part} unchanged"


# --- 5.4 ---------------------------------------------------------------------------------------------


def _beta_optimal_reference(x, W, b, log_s, beta):
    r"""The maximizer over Gaussians :math:`q` of :math:`\mathbb E_q[\log p(\mathbf x\mid\mathbf z)] - \beta
    D_{KL}(q\|\mathcal N(\mathbf 0,\mathbf I))` for :math:`p(\mathbf x\mid\mathbf z) = \mathcal N(\mathbf W\mathbf z
    + \mathbf b, s^2\mathbf I)`, and the maximum.

    The maximizer is :math:`q \propto p(\mathbf z)\,p(\mathbf x\mid\mathbf z)^{1/\beta}`: precision
    :math:`\mathbf I + \mathbf W^\top\mathbf W/(\beta s^2)`, mean :math:`\boldsymbol\Sigma\mathbf W^\top
    (\mathbf x - \mathbf b)/(\beta s^2)`; the maximum is :math:`\beta\log\int p(\mathbf z)\,p(\mathbf x\mid
    \mathbf z)^{1/\beta}d\mathbf z = -\tfrac D2\log 2\pi s^2 + \tfrac{\beta D}2\log 2\pi\beta s^2 + \beta
    \log\mathcal N(\mathbf x;\mathbf b, \mathbf W\mathbf W^\top + \beta s^2\mathbf I)`. Returns
    ``(mean (K,), cov (K, K), value)``.
    """
    x, W, b = (onp.asarray(a, dtype=float) for a in (x, W, b))
    D, K = W.shape
    s2 = onp.exp(2.0 * log_s)
    cov = onp.linalg.inv(onp.eye(K) + W.T @ W / (beta * s2))
    mean = cov @ W.T @ (x - b) / (beta * s2)
    cov_x = W @ W.T + beta * s2 * onp.eye(D)
    chol = onp.linalg.cholesky(cov_x)
    white = onp.linalg.solve(chol, x - b)
    log_n = -0.5 * (white @ white + 2.0 * onp.sum(onp.log(onp.diag(chol))) + D * onp.log(2 * onp.pi))
    value = -0.5 * D * onp.log(2 * onp.pi * s2) + 0.5 * beta * D * onp.log(2 * onp.pi * beta * s2) \
        + beta * log_n
    return mean, cov, value


def _beta_objective(x, W, b, log_s, beta, mean, cov):
    """The beta-weighted objective at q = N(mean, cov), in closed form (independent of the above)."""
    D, K = W.shape
    s2 = onp.exp(2.0 * log_s)
    r = x - W @ mean - b
    expected_log_lik = -0.5 * D * onp.log(2 * onp.pi * s2) - (r @ r + onp.trace(W @ cov @ W.T)) / (2 * s2)
    kl = 0.5 * (onp.trace(cov) + mean @ mean - K - onp.linalg.slogdet(cov)[1])
    return expected_log_lik - beta * kl


def _testbed_problem(rng, D=5, K=2, log_s_range=(-1.0, 0.0)):
    W = rng.normal(size=(D, K))
    b = rng.normal(size=D)
    log_s = float(rng.uniform(*log_s_range))
    x = W @ rng.normal(size=K) + b + onp.exp(log_s) * rng.normal(size=D)
    return x, W, b, log_s


def _check_answer(answer, K):
    try:
        mean, cov, value = answer
    except (TypeError, ValueError):
        raise AssertionError("return a tuple (mean, cov, value)") from None
    mean, cov = onp.asarray(mean, dtype=float), onp.asarray(cov, dtype=float)
    if mean.shape != (K,) or cov.shape != (K, K) or onp.shape(value) != ():
        raise AssertionError(f"expected shapes ({K},), ({K}, {K}) and a number, got {mean.shape}, "
                             f"{cov.shape} and {onp.shape(value)}")
    return mean, cov, float(value)


EX4 = exercise("5.4", "Derive: the best Gaussian for a weighted KL, and the objective's maximum",
               function="beta_optimal_gaussian", reference=_beta_optimal_reference)


@EX4.test("mean and covariance of the maximizing q, for random beta", points=2,
          hint="Complete the square: E_q[log p(x|z)] - beta KL(q || p(z)) is beta times an ELBO whose "
               "likelihood is p(x|z)^(1/beta), so q is proportional to p(z) p(x|z)^(1/beta). Its precision "
               "is I + W^T W / (beta s^2); beta divides the likelihood's precision, not the prior's.")
def _(f, rng):
    for beta in (float(rng.uniform(0.2, 0.9)), float(rng.uniform(1.5, 5.0))):
        x, W, b, log_s = _testbed_problem(rng)
        mean, cov, _ = _check_answer(f(x, W, b, log_s, beta), 2)
        want_mean, want_cov, _ = _beta_optimal_reference(x, W, b, log_s, beta)
        assert_close(mean, want_mean, rtol=RTOL, atol=ATOL, what=f"your mean (beta = {beta:.2f})")
        assert_close(cov, want_cov, rtol=RTOL, atol=ATOL, what=f"your covariance (beta = {beta:.2f})")


@EX4.test("the value of the maximum, for random beta", points=2,
          hint="The maximum is beta log of the integral of p(z) p(x|z)^(1/beta): write p(x|z)^(1/beta) as a "
               "constant times a Gaussian in x with variance beta s^2, then integrate z out as for p(x). "
               "Or evaluate the objective in closed form at your q. Either way it is L_beta, not the ELBO.")
def _(f, rng):
    for beta in (float(rng.uniform(0.2, 0.9)), float(rng.uniform(1.5, 5.0))):
        x, W, b, log_s = _testbed_problem(rng)
        _, _, value = _check_answer(f(x, W, b, log_s, beta), 2)
        want = _beta_optimal_reference(x, W, b, log_s, beta)[2]
        assert_close(value, want, rtol=RTOL, atol=ATOL, what=f"your maximum (beta = {beta:.2f})")


@EX4.test("is a maximum: the objective at your q equals your value, and nearby Gaussians do worse",
          points=1, hint="Your value must be the objective evaluated at your own q.")
def _(f, rng):
    x, W, b, log_s = _testbed_problem(rng)
    beta = float(rng.uniform(0.3, 4.0))
    mean, cov, value = _check_answer(f(x, W, b, log_s, beta), 2)
    at_answer = _beta_objective(x, W, b, log_s, beta, mean, cov)
    assert_close(value, at_answer, rtol=RTOL, atol=ATOL, what="your value against the objective at your q")
    chol = onp.linalg.cholesky(cov)
    for _ in range(5):
        A = onp.tril(rng.normal(0.0, 1e-2, size=(2, 2)))
        moved_cov = (chol + A) @ (chol + A).T
        moved = _beta_objective(x, W, b, log_s, beta, mean + rng.normal(0.0, 1e-2, size=2), moved_cov)
        assert moved < at_answer, "a nearby Gaussian has a higher objective than yours"


@EX4.test("beta = 1 gives the exact posterior and log p(x)", points=1,
          hint="At beta = 1 the objective is the ELBO, whose maximum over all q is log p(x), reached at the "
               "posterior (a Gaussian here).")
def _(f, rng):
    x, W, b, log_s = _testbed_problem(rng)
    mean, cov, value = _check_answer(f(x, W, b, log_s, 1.0), 2)
    s2 = onp.exp(2 * log_s)
    post_cov = onp.linalg.inv(onp.eye(2) + W.T @ W / s2)
    assert_close(mean, post_cov @ W.T @ (x - b) / s2, rtol=RTOL, atol=ATOL, what="your mean at beta = 1")
    assert_close(cov, post_cov, rtol=RTOL, atol=ATOL, what="your covariance at beta = 1")
    marginal = scipy.stats.multivariate_normal(b, W @ W.T + s2 * onp.eye(len(x))).logpdf(x)
    assert_close(value, marginal, rtol=RTOL, atol=ATOL, what="your value at beta = 1")


@EX4.test("is finite and exact with 784 observed and 16 latent dimensions", points=1,
          hint="det of a 784 x 784 covariance under- or overflows: use a Cholesky factor or "
               "np.linalg.slogdet for log-determinants, and solve instead of inverting large matrices.")
def _(f, rng):
    # noise variance beta s^2 in (0.07, 0.15): the 784 x 784 covariance of x has 768 eigenvalues that
    # small, so its determinant (about 0.1^768) is 0.0 in float64, while its log is about -1700
    x, W, b, log_s = _testbed_problem(rng, D=784, K=16, log_s_range=(-1.55, -1.45))
    beta = float(rng.uniform(1.5, 3.0))
    mean, cov, value = _check_answer(f(x, W, b, log_s, beta), 16)
    want_mean, want_cov, want = _beta_optimal_reference(x, W, b, log_s, beta)
    assert_close(mean, want_mean, rtol=1e-8, atol=1e-9, what="your mean (D = 784)")
    assert_close(cov, want_cov, rtol=1e-8, atol=1e-9, what="your covariance (D = 784)")
    assert_close(value, want, rtol=RTOL, atol=1e-6, what="your maximum (D = 784)")
