"""Tests of the linear-Gaussian testbed (vae_from_scratch.{numpy,torch}.testbed): its exact marginal,
posterior, closed-form ELBO and KL to the posterior.

Oracles: scipy.stats.multivariate_normal, Bayes' rule (log p(x,z) - log p(z|x) must not depend on z),
the identity ELBO + KL = log p(x) (monograph eq. 2.8), a full-covariance Gaussian KL written with
numpy.linalg, Monte Carlo means; autograd check_grads and torch gradcheck; numpy-vs-torch parity.

Statistical tests: two-sided z-tests at 5 standard errors (false-failure rate 5.7e-7 each, normal
approximation, >= 20,000 samples). This file runs 2 * (4 + 4 + 1) + 1 = 19 of them: total < 1.1e-5 per run.
"""

import numpy as onp
import pytest
import scipy.stats as st
import torch
from autograd.test_util import check_grads

from vae_from_scratch.numpy import testbed as nt
from vae_from_scratch.torch import testbed as tt

Z_SE = 5.0


def T(a):
    return torch.as_tensor(onp.asarray(a, dtype=float), dtype=torch.float64)


def _model(seed=0, D=5, K=3):
    rng = onp.random.default_rng(seed)
    return rng, rng.standard_normal((D, K)), rng.standard_normal(D), float(rng.uniform(-1.0, 0.5))


def _random_q(rng, B, K, diagonal=False):
    mean = rng.standard_normal((B, K))
    if diagonal:
        L = onp.stack([onp.diag(onp.exp(rng.uniform(-1, 0.5, K))) for _ in range(B)])
    else:
        L = onp.tril(rng.standard_normal((B, K, K)) * 0.4, -1) + onp.stack(
            [onp.diag(onp.exp(rng.uniform(-1, 0.5, K)) * rng.choice([-1, 1], K)) for _ in range(B)])
    return mean, L


def _kl_full(m_q, cov_q, m_p, cov_p):
    inv_p = onp.linalg.inv(cov_p)
    d = m_p - m_q
    return 0.5 * (onp.trace(inv_p @ cov_q) + d @ inv_p @ d - len(m_q)
                  + onp.linalg.slogdet(cov_p)[1] - onp.linalg.slogdet(cov_q)[1])


def test_log_marginal_matches_scipy():
    rng, W, b, log_s = _model(1)
    x = rng.standard_normal((7, 5)) * 2
    expected = st.multivariate_normal(b, W @ W.T + onp.exp(2 * log_s) * onp.eye(5)).logpdf(x)
    onp.testing.assert_allclose(nt.log_marginal(x, W, b, log_s), expected, rtol=1e-11)
    onp.testing.assert_allclose(tt.log_marginal(T(x), T(W), T(b), log_s).numpy(), expected, rtol=1e-11)
    assert nt.log_marginal(x.reshape(7, 1, 5), W, b, log_s).shape == (7, 1)
    assert tt.log_marginal(T(x).reshape(7, 1, 5), T(W), T(b), log_s).shape == (7, 1)


def test_posterior_satisfies_bayes_rule():
    """log p(x, z) - log N(z; posterior) equals log p(x) for every z (monograph eq. 1.19)."""
    rng, W, b, log_s = _model(2)
    x = rng.standard_normal((3, 5))
    z = rng.standard_normal((4, 3, 3)) * 2
    for backend in ("numpy", "torch"):
        if backend == "numpy":
            mean, cov = nt.posterior(x, W, b, log_s)
            lj, lm = nt.log_joint(x, z, W, b, log_s), nt.log_marginal(x, W, b, log_s)
        else:
            mean, cov = (a.numpy() for a in tt.posterior(T(x), T(W), T(b), log_s))
            lj = tt.log_joint(T(x), T(z), T(W), T(b), log_s).numpy()
            lm = tt.log_marginal(T(x), T(W), T(b), log_s).numpy()
        assert mean.shape == (3, 3) and cov.shape == (3, 3)
        log_post = onp.stack([[st.multivariate_normal(mean[n], cov).logpdf(z[s, n]) for n in range(3)]
                              for s in range(4)])
        onp.testing.assert_allclose(lj - log_post, onp.broadcast_to(lm, (4, 3)), rtol=1e-10)


@pytest.mark.parametrize("diagonal", [False, True])
def test_elbo_plus_kl_equals_log_marginal(diagonal):
    """Monograph eq. 2.8: ELBO(q) + KL(q || p(z|x)) = log p(x), for any Gaussian q; and KL >= 0."""
    rng, W, b, log_s = _model(3)
    x = rng.standard_normal((6, 5))
    mean, L = _random_q(rng, 6, 3, diagonal)
    for mod, conv in ((nt, onp.asarray), (tt, T)):
        elbo = onp.asarray(mod.elbo_gaussian(conv(x), conv(W), conv(b), log_s, conv(mean), conv(L)))
        kl = onp.asarray(mod.kl_to_posterior(conv(x), conv(W), conv(b), log_s, conv(mean), conv(L)))
        lm = onp.asarray(mod.log_marginal(conv(x), conv(W), conv(b), log_s))
        onp.testing.assert_allclose(elbo + kl, lm, rtol=1e-11)
        assert onp.all(kl > 0) and onp.all(elbo < lm)
    # a single shared (K, K) scale broadcasts against a batch of means
    e1 = nt.elbo_gaussian(x, W, b, log_s, mean, L[0])
    onp.testing.assert_allclose(e1[0], nt.elbo_gaussian(x[:1], W, b, log_s, mean[:1], L[:1])[0], rtol=1e-13)


def test_kl_to_posterior_matches_full_covariance_oracle_and_is_zero_at_the_posterior():
    rng, W, b, log_s = _model(4)
    x = rng.standard_normal((3, 5))
    mean, L = _random_q(rng, 3, 3)
    pm, pc = nt.posterior(x, W, b, log_s)
    expected = [_kl_full(mean[n], L[n] @ L[n].T, pm[n], pc) for n in range(3)]
    onp.testing.assert_allclose(nt.kl_to_posterior(x, W, b, log_s, mean, L), expected, rtol=1e-10)
    chol = onp.linalg.cholesky(pc)
    onp.testing.assert_allclose(nt.kl_to_posterior(x, W, b, log_s, pm, chol), 0.0, atol=1e-11)
    onp.testing.assert_allclose(nt.elbo_gaussian(x, W, b, log_s, pm, chol), nt.log_marginal(x, W, b, log_s),
                                rtol=1e-12)
    # the sign of the diagonal of L does not change q
    onp.testing.assert_allclose(nt.kl_to_posterior(x, W, b, log_s, pm, -chol), 0.0, atol=1e-11)


def test_closed_form_elbo_matches_monte_carlo():
    """Statistical: mean of log p(x,z) - log q(z), z ~ q full-covariance, within 5 SE of elbo_gaussian."""
    rng, W, b, log_s = _model(5)
    x = rng.standard_normal((1, 5))
    mean, L = _random_q(rng, 1, 3)
    z = mean[0] + rng.standard_normal((20000, 3)) @ L[0].T
    terms = nt.log_joint(x[0], z, W, b, log_s) - st.multivariate_normal(mean[0], L[0] @ L[0].T).logpdf(z)
    se = terms.std(ddof=1) / onp.sqrt(len(terms))
    assert abs(terms.mean() - nt.elbo_gaussian(x, W, b, log_s, mean, L)[0]) < Z_SE * se


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_sample_has_the_model_moments(backend):
    """Statistical: per-coordinate mean and variance of x within 5 SE of b and diag(WW^T + s^2 I)."""
    rng, W, b, log_s = _model(6, D=4, K=2)
    n = 40000
    if backend == "numpy":
        x, z = nt.sample(onp.random.default_rng(7), n, W, b, log_s)
    else:
        x, z = (a.numpy() for a in tt.sample(torch.Generator().manual_seed(7), n, T(W), T(b), log_s))
    assert x.shape == (n, 4) and z.shape == (n, 2)
    var = onp.diag(W @ W.T) + onp.exp(2 * log_s)
    assert onp.all(onp.abs(x.mean(0) - b) < Z_SE * onp.sqrt(var / n))
    assert onp.all(onp.abs(x.var(0, ddof=1) - var) < Z_SE * var * onp.sqrt(2.0 / (n - 1)))
    # x given z: the residual has variance s^2 (1 test per backend)
    resid = x - z @ W.T - b
    assert abs(resid.var(ddof=1) - onp.exp(2 * log_s)) < Z_SE * onp.exp(2 * log_s) * onp.sqrt(2.0 / (resid.size - 1))


def test_torch_sample_is_reproducible():
    _, W, b, log_s = _model(8)
    a = tt.sample(torch.Generator().manual_seed(3), 5, T(W), T(b), log_s)
    c = tt.sample(torch.Generator().manual_seed(3), 5, T(W), T(b), T(log_s))
    assert all(torch.equal(u, v) for u, v in zip(a, c))


def test_parity_numpy_torch_float64():
    rng, W, b, log_s = _model(9)
    x = rng.standard_normal((4, 5))
    z = rng.standard_normal((2, 4, 3))
    mean, L = _random_q(rng, 4, 3)
    args_np, args_t = (x, W, b, log_s), (T(x), T(W), T(b), T(log_s))
    pairs = [
        (nt.log_joint(x, z, W, b, log_s), tt.log_joint(T(x), T(z), T(W), T(b), T(log_s))),
        (nt.log_marginal(*args_np), tt.log_marginal(*args_t)),
        (nt.elbo_gaussian(*args_np, mean, L), tt.elbo_gaussian(*args_t, T(mean), T(L))),
        (nt.kl_to_posterior(*args_np, mean, L), tt.kl_to_posterior(*args_t, T(mean), T(L))),
    ]
    pairs += list(zip(nt.posterior(*args_np), tt.posterior(*args_t)))
    for a, c in pairs:
        assert c.dtype == torch.float64
        onp.testing.assert_allclose(c.numpy(), a, rtol=1e-12, atol=1e-12)


def test_autograd_gradients():
    rng, W, b, log_s = _model(10, D=3, K=2)
    x = rng.standard_normal((2, 3))
    mean, L = _random_q(rng, 2, 2)
    kw = dict(modes=["rev"], order=1)
    check_grads(lambda W_, ls: nt.log_marginal(x, W_, b, ls), **kw)(W, log_s)
    check_grads(lambda W_, b_, ls, m, L_: nt.elbo_gaussian(x, W_, b_, ls, m, L_), **kw)(W, b, log_s, mean, L)
    check_grads(lambda W_, ls, m: nt.kl_to_posterior(x, W_, b, ls, m, L), **kw)(W, log_s, mean)
    check_grads(lambda W_, ls: nt.posterior(x, W_, b, ls)[0], **kw)(W, log_s)


def test_torch_gradcheck():
    rng, W, b, log_s = _model(11, D=3, K=2)
    x = T(rng.standard_normal((2, 3)))
    mean, L = _random_q(rng, 2, 2)
    W_, b_, ls_, m_ = (T(a).requires_grad_() for a in (W, b, log_s, mean))
    assert torch.autograd.gradcheck(lambda W, b, ls: tt.log_marginal(x, W, b, ls), (W_, b_, ls_))
    assert torch.autograd.gradcheck(lambda W, b, ls, m: tt.elbo_gaussian(x, W, b, ls, m, T(L)), (W_, b_, ls_, m_))
    assert torch.autograd.gradcheck(lambda W, ls, m: tt.kl_to_posterior(x, W, b_, ls, m, T(L)), (W_, ls_, m_))


def test_clear_value_errors():
    rng, W, b, log_s = _model(12)
    x = rng.standard_normal((2, 5))
    mean, L = _random_q(rng, 2, 3)
    for mod, conv in ((nt, onp.asarray), (tt, T)):
        with pytest.raises(ValueError, match="W must be"):
            mod.log_marginal(conv(x), conv(W[0]), conv(b), log_s)
        with pytest.raises(ValueError, match="must end in D"):
            mod.log_marginal(conv(x[:, :4]), conv(W), conv(b), log_s)
        with pytest.raises(ValueError, match="lower triangular"):
            mod.elbo_gaussian(conv(x), conv(W), conv(b), log_s, conv(mean), conv(L.transpose(0, 2, 1)))
        with pytest.raises(ValueError, match="non-zero diagonal"):
            mod.kl_to_posterior(conv(x), conv(W), conv(b), log_s, conv(mean), conv(onp.zeros((3, 3))))
        with pytest.raises(ValueError, match="scale_tril must end"):
            mod.elbo_gaussian(conv(x), conv(W), conv(b), log_s, conv(mean), conv(L[:, :2, :2]))
        with pytest.raises(ValueError, match="mean must end"):
            mod.elbo_gaussian(conv(x), conv(W), conv(b), log_s, conv(mean[:, :2]), conv(L))
    with pytest.raises(ValueError, match="log_s must be a scalar"):
        tt.log_marginal(T(x), T(W), T(b), torch.zeros(2))
    with pytest.raises(ValueError, match="torch.Tensor"):
        tt.log_marginal(x, T(W), T(b), log_s)
