"""Tests of the Monte Carlo ELBO estimators (vae_from_scratch.{numpy,torch}.objectives) and of the
closed-form KL between diagonal Gaussians they use.

Oracles: hand-written formulas with scipy.stats log-densities, the closed-form ELBO of the
linear-Gaussian testbed, a full-covariance Gaussian KL written with numpy.linalg; autograd's
check_grads and torch's gradcheck; numpy-vs-torch parity in float64.

Statistical tests are two-sided z-tests at 5 standard errors: false-failure rate about 5.7e-7 each
(normal approximation of a mean of >= 20,000 i.i.d. terms); the 7 of them in this file total < 4e-6
per run. All randomness is seeded, so a given run is reproducible.
"""

import autograd.numpy as anp
import numpy as onp
import pytest
import scipy.stats as st
import torch
from autograd.test_util import check_grads

from vae_from_scratch.numpy import distributions as nd
from vae_from_scratch.numpy import objectives as no
from vae_from_scratch.numpy import testbed as ntb
from vae_from_scratch.torch import distributions as td
from vae_from_scratch.torch import objectives as to
from vae_from_scratch.torch import testbed as ttb

Z_SE = 5.0  # z-test threshold: P(|N(0,1)| > 5) = 5.7e-7


def T(a):
    return torch.as_tensor(onp.asarray(a, dtype=float), dtype=torch.float64)


def _problem(seed=0, D=4, K=3, B=5):
    """A linear-Gaussian testbed, a batch of data and a diagonal-Gaussian q per data point."""
    rng = onp.random.default_rng(seed)
    W = rng.standard_normal((D, K))
    b = rng.standard_normal(D)
    log_s = -0.4
    x, _ = ntb.sample(rng, B, W, b, log_s)
    mean = rng.standard_normal((B, K)) * 0.5
    log_std = rng.uniform(-1.0, 0.0, (B, K))
    return rng, W, b, log_s, x, mean, log_std


def _loglik_np(x, W, b, log_s):
    return lambda z: nd.log_normal_diag(x, anp.einsum("dk,...k->...d", W, z) + b, log_s * onp.ones(x.shape[-1]))


def _loglik_torch(x, W, b, log_s):
    ls = torch.full((x.shape[-1],), float(log_s), dtype=torch.float64)
    return lambda z: td.log_normal_diag(x, z @ W.T + b, ls)


def _kl_full_cov(m_q, cov_q, m_p, cov_p):
    """Oracle: KL between multivariate normals with full covariances (numpy.linalg only)."""
    k = m_q.shape[-1]
    inv_p = onp.linalg.inv(cov_p)
    d = m_p - m_q
    return 0.5 * (onp.trace(inv_p @ cov_q) + d @ inv_p @ d - k
                  + onp.linalg.slogdet(cov_p)[1] - onp.linalg.slogdet(cov_q)[1])


# --- elbo / elbo_analytic_kl ----------------------------------------------------------------------


def test_elbo_averages_the_bracket_over_the_sample_axis_only():
    rng = onp.random.default_rng(1)
    a, c, d = rng.standard_normal((7, 3)), rng.standard_normal((7, 1)), rng.standard_normal((7, 3))
    expected = onp.array([onp.mean(a[:, j] + c[:, 0] - d[:, j]) for j in range(3)])
    onp.testing.assert_allclose(no.elbo(a, c, d), expected, rtol=1e-13)
    onp.testing.assert_allclose(to.elbo(T(a), T(c), T(d)).numpy(), expected, rtol=1e-13)
    kl = rng.standard_normal(3)
    onp.testing.assert_allclose(no.elbo_analytic_kl(a, kl), a.mean(0) - kl, rtol=1e-13)
    onp.testing.assert_allclose(to.elbo_analytic_kl(T(a), T(kl)).numpy(), a.mean(0) - kl, rtol=1e-13)


def test_multi_sample_estimate_is_the_mean_of_single_sample_estimates():
    _, W, b, log_s, x, mean, log_std = _problem(2)
    eps = onp.random.default_rng(3).standard_normal((6,) + mean.shape)
    loglik = _loglik_np(x, W, b, log_s)
    for kl in ("analytic", "sampled"):
        multi = no.elbo_normal_diag(loglik, mean, log_std, eps=eps, kl=kl)
        singles = [no.elbo_normal_diag(loglik, mean, log_std, eps=eps[s:s + 1], kl=kl) for s in range(6)]
        assert multi.shape == (mean.shape[0],)
        onp.testing.assert_allclose(multi, onp.mean(singles, axis=0), rtol=1e-12)


def test_elbo_normal_diag_matches_a_scipy_oracle():
    """z = mu + sigma * eps; bracket from scipy.stats.norm.logpdf; analytic KL from the full-cov formula."""
    _, W, b, log_s, x, mean, log_std = _problem(4)
    eps = onp.random.default_rng(5).standard_normal((3,) + mean.shape)
    z = mean + onp.exp(log_std) * eps
    log_px = st.norm.logpdf(x, z @ W.T + b, onp.exp(log_s)).sum(-1)
    log_pz = st.norm.logpdf(z).sum(-1)
    log_qz = st.norm.logpdf(z, mean, onp.exp(log_std)).sum(-1)
    kl = onp.array([_kl_full_cov(m, onp.diag(onp.exp(2 * s)), onp.zeros(3), onp.eye(3))
                    for m, s in zip(mean, log_std)])
    loglik = _loglik_np(x, W, b, log_s)
    onp.testing.assert_allclose(no.elbo_normal_diag(loglik, mean, log_std, eps=eps, kl="sampled"),
                                (log_px + log_pz - log_qz).mean(0), rtol=1e-11)
    onp.testing.assert_allclose(no.elbo_normal_diag(loglik, mean, log_std, eps=eps, kl="analytic"),
                                log_px.mean(0) - kl, rtol=1e-11)


def test_non_standard_prior_uses_kl_normal_diag():
    _, W, b, log_s, x, mean, log_std = _problem(6)
    pm, pls = onp.array([0.3, -1.0, 0.5]), onp.array([0.2, -0.3, 0.0])
    eps = onp.random.default_rng(7).standard_normal((4,) + mean.shape)
    z = mean + onp.exp(log_std) * eps
    loglik = _loglik_np(x, W, b, log_s)
    got = no.elbo_normal_diag(loglik, mean, log_std, eps=eps, kl="analytic", prior_mean=pm, prior_log_std=pls)
    kl = onp.array([_kl_full_cov(m, onp.diag(onp.exp(2 * s)), pm, onp.diag(onp.exp(2 * pls)))
                    for m, s in zip(mean, log_std)])
    onp.testing.assert_allclose(got, loglik(z).mean(0) - kl, rtol=1e-11)
    got = no.elbo_normal_diag(loglik, mean, log_std, eps=eps, kl="sampled", prior_mean=pm, prior_log_std=pls)
    expected = (loglik(z) + st.norm.logpdf(z, pm, onp.exp(pls)).sum(-1)
                - st.norm.logpdf(z, mean, onp.exp(log_std)).sum(-1)).mean(0)
    onp.testing.assert_allclose(got, expected, rtol=1e-11)


# --- kl_normal_diag (used by the analytic-KL estimator) --------------------------------------------


def test_kl_normal_diag_against_full_covariance_oracle_and_properties():
    rng = onp.random.default_rng(8)
    mq, lq, mp, lp = (rng.standard_normal((6, 4)) for _ in range(4))
    expected = onp.array([_kl_full_cov(mq[i], onp.diag(onp.exp(2 * lq[i])), mp[i], onp.diag(onp.exp(2 * lp[i])))
                          for i in range(6)])
    onp.testing.assert_allclose(nd.kl_normal_diag(mq, lq, mp, lp), expected, rtol=1e-11)
    onp.testing.assert_allclose(td.kl_normal_diag(T(mq), T(lq), T(mp), T(lp)).numpy(), expected, rtol=1e-11)
    assert onp.all(expected > 0)
    onp.testing.assert_allclose(nd.kl_normal_diag(mq, lq, mq, lq), 0.0, atol=1e-14)
    assert not onp.allclose(nd.kl_normal_diag(mq, lq, mp, lp), nd.kl_normal_diag(mp, lp, mq, lq))  # not symmetric


def test_kl_normal_diag_is_the_expected_log_ratio():
    """Statistical: mean of log q(z) - log p(z), z ~ q, within 5 standard errors of the closed form."""
    rng = onp.random.default_rng(9)
    mq, lq, mp, lp = onp.array([0.5, -1.0]), onp.array([-0.5, 0.3]), onp.array([0.0, 1.0]), onp.array([0.2, -0.1])
    z = mq + onp.exp(lq) * rng.standard_normal((40000, 2))
    ratio = st.norm.logpdf(z, mq, onp.exp(lq)).sum(-1) - st.norm.logpdf(z, mp, onp.exp(lp)).sum(-1)
    se = ratio.std(ddof=1) / onp.sqrt(len(ratio))
    assert abs(ratio.mean() - nd.kl_normal_diag(mq, lq, mp, lp)) < Z_SE * se


# --- unbiasedness on the linear-Gaussian testbed (exact ELBO known) ------------------------------------


@pytest.mark.parametrize("kl", ["analytic", "sampled"])
def test_numpy_estimator_is_unbiased_on_the_testbed(kl):
    rng, W, b, log_s, x, mean, log_std = _problem(10, B=1)
    exact = ntb.elbo_gaussian(x, W, b, log_s, mean, onp.diag(onp.exp(log_std[0])))[0]
    eps = rng.standard_normal((20000, 1, 3))
    terms = _per_sample_terms(x, W, b, log_s, mean, log_std, eps, kl)
    se = terms.std(ddof=1) / onp.sqrt(len(terms))
    assert abs(terms.mean() - exact) < Z_SE * se
    onp.testing.assert_allclose(no.elbo_normal_diag(_loglik_np(x, W, b, log_s), mean, log_std, eps=eps, kl=kl)[0],
                                terms.mean(), rtol=1e-12)


def _per_sample_terms(x, W, b, log_s, mean, log_std, eps, kl):
    loglik = _loglik_np(x, W, b, log_s)
    z = mean + onp.exp(log_std) * eps  # (S, 1, K)
    if kl == "analytic":
        return (loglik(z) - nd.kl_normal_standard(mean, log_std))[:, 0]
    return (loglik(z) + nd.log_standard_normal(z) - nd.log_normal_diag(z, mean, log_std))[:, 0]


def test_torch_estimator_with_a_generator_is_unbiased_on_the_testbed():
    _, W, b, log_s, x, mean, log_std = _problem(11, B=2)
    exact = ntb.elbo_gaussian(x, W, b, log_s, mean, onp.stack([onp.diag(onp.exp(s)) for s in log_std]))
    g = torch.Generator().manual_seed(12)
    loglik = _loglik_torch(T(x), T(W), T(b), log_s)
    S = 20000
    reps = to.elbo_normal_diag(loglik, T(mean), T(log_std), generator=g, num_samples=S, kl="sampled")
    assert reps.shape == (2,)
    z_terms = _torch_sampled_terms(T(x), T(W), T(b), log_s, T(mean), T(log_std), S, 13)
    se = z_terms.std(0) / S**0.5
    assert bool(((z_terms.mean(0) - T(exact)).abs() < Z_SE * se).all())
    assert bool(((reps - T(exact)).abs() < Z_SE * se).all())  # a second, independent draw of the estimator


def _torch_sampled_terms(x, W, b, log_s, mean, log_std, S, seed):
    g = torch.Generator().manual_seed(seed)
    eps = torch.randn((S,) + tuple(mean.shape), generator=g, dtype=torch.float64)
    z = mean + log_std.exp() * eps
    return _loglik_torch(x, W, b, log_s)(z) + td.log_standard_normal(z) - td.log_normal_diag(z, mean, log_std)


def test_sampled_estimator_has_zero_variance_at_the_exact_posterior():
    """With K = 1 the exact posterior is a (1-D) diagonal Gaussian: every sample of
    log p(x, z) - log q(z) then equals log p(x) exactly (monograph eqs. 2.8-2.10 with zero KL)."""
    rng = onp.random.default_rng(14)
    W, b, log_s = rng.standard_normal((3, 1)), rng.standard_normal(3), -0.2
    x, _ = ntb.sample(rng, 4, W, b, log_s)
    pm, pc = ntb.posterior(x, W, b, log_s)
    log_std = 0.5 * onp.log(onp.diag(pc)) * onp.ones((4, 1))
    loglik = _loglik_np(x, W, b, log_s)
    for s in range(5):
        eps = rng.standard_normal((1, 4, 1))
        onp.testing.assert_allclose(no.elbo_normal_diag(loglik, pm, log_std, eps=eps, kl="sampled"),
                                    ntb.log_marginal(x, W, b, log_s), rtol=1e-11)


# --- gradients -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("kl", ["analytic", "sampled"])
def test_autograd_gradients(kl):
    _, W, b, log_s, x, mean, log_std = _problem(15)
    eps = onp.random.default_rng(16).standard_normal((3,) + mean.shape)
    loglik = _loglik_np(x, W, b, log_s)
    check_grads(lambda m, s: no.elbo_normal_diag(loglik, m, s, eps=eps, kl=kl), modes=["rev"], order=1)(mean, log_std)
    check_grads(lambda pm, ps: no.elbo_normal_diag(loglik, mean, log_std, eps=eps, kl=kl, prior_mean=pm,
                                                   prior_log_std=ps), modes=["rev"], order=1)(
        onp.array([0.1, 0.2, -0.3]), onp.array([0.0, -0.2, 0.3]))


@pytest.mark.parametrize("kl", ["analytic", "sampled"])
def test_torch_gradcheck(kl):
    _, W, b, log_s, x, mean, log_std = _problem(17, B=2)
    eps = T(onp.random.default_rng(18).standard_normal((2,) + mean.shape))
    loglik = _loglik_torch(T(x), T(W), T(b), log_s)
    inputs = (T(mean).requires_grad_(), T(log_std).requires_grad_())
    assert torch.autograd.gradcheck(lambda m, s: to.elbo_normal_diag(loglik, m, s, eps=eps, kl=kl), inputs)


# --- numpy vs torch ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kl", ["analytic", "sampled"])
def test_parity_numpy_torch_float64(kl):
    _, W, b, log_s, x, mean, log_std = _problem(19, B=6)
    eps = onp.random.default_rng(20).standard_normal((4,) + mean.shape)
    pm, pls = onp.array([0.3, -1.0, 0.5]), onp.array([0.2, -0.3, 0.0])
    a = no.elbo_normal_diag(_loglik_np(x, W, b, log_s), mean, log_std, eps=eps, kl=kl, prior_mean=pm, prior_log_std=pls)
    c = to.elbo_normal_diag(_loglik_torch(T(x), T(W), T(b), log_s), T(mean), T(log_std), eps=T(eps), kl=kl,
                            prior_mean=T(pm), prior_log_std=T(pls))
    assert c.dtype == torch.float64
    onp.testing.assert_allclose(c.numpy(), a, rtol=1e-12, atol=1e-12)


def test_generator_reproducible_and_shapes():
    _, W, b, log_s, x, mean, log_std = _problem(21)
    loglik = _loglik_torch(T(x), T(W), T(b), log_s)
    first = to.elbo_normal_diag(loglik, T(mean), T(log_std), generator=torch.Generator().manual_seed(0), num_samples=3)
    again = to.elbo_normal_diag(loglik, T(mean), T(log_std), generator=torch.Generator().manual_seed(0), num_samples=3)
    other = to.elbo_normal_diag(loglik, T(mean), T(log_std), generator=torch.Generator().manual_seed(1), num_samples=3)
    assert first.shape == (5,)
    assert torch.equal(first, again) and not torch.equal(first, other)
    rng_a = no.elbo_normal_diag(_loglik_np(x, W, b, log_s), mean, log_std, rng=onp.random.default_rng(0), num_samples=3)
    rng_b = no.elbo_normal_diag(_loglik_np(x, W, b, log_s), mean, log_std, rng=onp.random.default_rng(0), num_samples=3)
    assert rng_a.shape == (5,) and onp.array_equal(rng_a, rng_b)


def test_extreme_log_std_gives_finite_values():
    rng = onp.random.default_rng(22)
    x = rng.standard_normal((2, 3))
    W, b = rng.standard_normal((3, 2)), onp.zeros(3)
    for ls in (-30.0, 30.0):
        log_std = onp.full((2, 2), ls)
        eps = rng.standard_normal((2, 2, 2))
        for kl in ("analytic", "sampled"):
            v = no.elbo_normal_diag(_loglik_np(x, W, b, 0.0), onp.zeros((2, 2)), log_std, eps=eps, kl=kl)
            t = to.elbo_normal_diag(_loglik_torch(T(x), T(W), T(b), 0.0), T(onp.zeros((2, 2))), T(log_std),
                                    eps=T(eps), kl=kl)
            assert onp.all(onp.isfinite(v)) and bool(torch.isfinite(t).all())


# --- errors --------------------------------------------------------------------------------------------


def test_clear_value_errors():
    _, W, b, log_s, x, mean, log_std = _problem(23)
    loglik = _loglik_np(x, W, b, log_s)
    eps = onp.zeros((2,) + mean.shape)
    with pytest.raises(ValueError, match="kl must be"):
        no.elbo_normal_diag(loglik, mean, log_std, eps=eps, kl="closed")
    with pytest.raises(ValueError, match="eps, or a numpy Generator"):
        no.elbo_normal_diag(loglik, mean, log_std)
    with pytest.raises(ValueError, match="not both"):
        no.elbo_normal_diag(loglik, mean, log_std, eps=eps, rng=onp.random.default_rng(0))
    with pytest.raises(ValueError, match="num_samples"):
        no.elbo_normal_diag(loglik, mean, log_std, rng=onp.random.default_rng(0), num_samples=0)
    with pytest.raises(ValueError, match="leading sample axis"):
        no.elbo_normal_diag(loglik, mean[0], log_std[0], eps=onp.zeros(3))
    with pytest.raises(ValueError, match="must have shape"):
        no.elbo_normal_diag(lambda z: loglik(z).sum(0), mean, log_std, eps=eps)
    with pytest.raises(ValueError, match="scalar"):
        no.elbo(1.0, onp.zeros(2), onp.zeros(2))
    with pytest.raises(ValueError, match="broadcast"):
        no.elbo(onp.zeros((2, 3)), onp.zeros((2, 4)), onp.zeros((2, 3)))
    with pytest.raises(ValueError, match="real-valued"):
        no.elbo(onp.array(["a"]), onp.zeros(1), onp.zeros(1))

    tl = _loglik_torch(T(x), T(W), T(b), log_s)
    with pytest.raises(ValueError, match="kl must be"):
        to.elbo_normal_diag(tl, T(mean), T(log_std), eps=T(eps), kl="closed")
    with pytest.raises(ValueError, match="not both"):
        to.elbo_normal_diag(tl, T(mean), T(log_std), eps=T(eps), generator=torch.Generator())
    with pytest.raises(ValueError, match="num_samples"):
        to.elbo_normal_diag(tl, T(mean), T(log_std), num_samples=0)
    with pytest.raises(ValueError, match="leading sample axis"):
        to.elbo_normal_diag(tl, T(mean[0]), T(log_std[0]), eps=T(onp.zeros(3)))
    with pytest.raises(ValueError, match="must have shape"):
        to.elbo_normal_diag(lambda z: tl(z).sum(0), T(mean), T(log_std), eps=T(eps))
    with pytest.raises(ValueError, match="scalar"):
        to.elbo(torch.tensor(1.0), torch.zeros(2), torch.zeros(2))
    with pytest.raises(ValueError, match="broadcast"):
        to.elbo(torch.zeros(2, 3), torch.zeros(2, 4), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="torch.Tensor"):
        to.elbo(onp.zeros((2, 3)), torch.zeros(2, 3), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="torch.Tensor"):
        to.elbo_analytic_kl(torch.zeros(2, 3), 1.0)
