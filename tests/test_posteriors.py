"""Posterior parts (vae_from_scratch.torch.posteriors): interface, densities, KL, importance sampling.

Oracles: scipy's multivariate normal density, the closed-form KL, the exact log p(x) of the
linear-Gaussian testbed, slogdet of the torch Jacobian.

Statistical tests (two-sided z-tests at 5 standard errors, false-failure rate 5.7e-7 each):
* test_sampled_kl_is_unbiased_for_the_closed_form: 2 data points -> 1.1e-6;
* test_importance_sampled_log_px_is_above_the_elbo_with_an_iaf_posterior: 3 one-sided tests -> < 1e-6.
Total for this file < 3e-6.
"""

import math

import numpy as onp
import pytest
import torch
from scipy import stats

from vae_from_scratch.data import linear_gaussian_testbed
from vae_from_scratch.torch import posteriors as tp
from vae_from_scratch.torch import testbed as ttb
from vae_from_scratch.torch.vae import POSTERIORS, VAE

Z_MAX = 5.0


def _posterior(name, H=6, K=3, **options):
    torch.manual_seed(0)
    return POSTERIORS[name](H, K, **options).double()


def test_registered_in_the_vae():
    assert POSTERIORS["full"] is tp.FullCovariancePosterior
    assert POSTERIORS["iaf"] is tp.IAFPosterior


@pytest.mark.parametrize("name", ["full", "iaf"])
def test_interface_shapes(name):
    post = _posterior(name, steps=2, flow_hidden=8) if name == "iaf" else _posterior(name)
    h = torch.randn(4, 6, dtype=torch.float64)
    params = post(h)
    z, log_q = post.sample(params)
    assert z.shape == (4, 3) and log_q.shape == (4,)
    g = torch.Generator().manual_seed(1)
    z, log_q = post.sample(params, sample_shape=(5,), generator=g)
    assert z.shape == (5, 4, 3) and log_q.shape == (5, 4)
    eps = torch.randn(7, 4, 3, dtype=torch.float64)
    z1, lq1 = post.sample(params, eps=eps)
    z2, lq2 = post.sample(params, eps=eps)
    assert torch.equal(z1, z2) and torch.equal(lq1, lq2)
    kl, mean = post.kl_to_prior(params), post.mean(params)
    assert post.kl_per_dim(params) is None
    if name == "iaf":
        assert kl is None and mean is None
    else:
        assert kl.shape == (4,) and mean.shape == (4, 3)
    with pytest.raises(ValueError):
        post.sample(params, eps=torch.randn(7, 4, 2, dtype=torch.float64))


@pytest.mark.parametrize("name", ["full", "iaf"])
def test_vae_with_the_posterior_elbo_and_log_weights(name):
    torch.manual_seed(0)
    options = {"steps": 2, "flow_hidden": [8, 8]} if name == "iaf" else {}
    model = VAE(12, (10,), 3, posterior=name, posterior_options=options).double()
    x = (torch.rand(5, 12, generator=torch.Generator().manual_seed(0)) < 0.5).double()
    terms = model.elbo_terms(x, generator=torch.Generator().manual_seed(1))
    assert terms["rec"].shape == terms["kl"].shape == (5,)
    if name == "iaf":  # the sampled KL split over dimensions (free bits), summing to the KL
        assert terms["kl_per_dim"].shape == (5, 3)
        assert torch.allclose(terms["kl_per_dim"].sum(-1), terms["kl"], rtol=1e-12, atol=1e-12)
    else:
        assert terms["kl_per_dim"] is None
    assert model.log_weights(x, k=4).shape == (4, 5)
    assert torch.isfinite(model.iwae(x, k=4)).all()
    # the ELBO with eps given: rec - kl, where kl is closed form (full) or sampled (iaf)
    eps = torch.randn(1, 5, 3, dtype=torch.float64)
    log_w = model.log_weights(x, eps=eps)[0]
    if name == "iaf":
        assert torch.allclose(model.elbo(x, eps=eps[0]), log_w, rtol=1e-12)


@pytest.mark.parametrize("name", ["diagonal", "full"])
def test_gaussian_log_q_matches_scipy(name):
    post = _posterior(name)
    with torch.no_grad():
        post.head.weight.normal_()  # make the off-diagonal entries matter
    h = torch.randn(3, 6, dtype=torch.float64)
    z, log_q = post.sample(post(h), sample_shape=(4,))
    with torch.no_grad():
        if name == "diagonal":
            mean, log_std = post(h)
            cov = torch.diag_embed(torch.exp(2 * log_std))
        else:
            mean, L = post(h)
            cov = L @ L.transpose(-1, -2)
    for b in range(3):
        oracle = stats.multivariate_normal(mean[b].numpy(), cov[b].numpy()).logpdf(z[:, b].detach().numpy())
        onp.testing.assert_allclose(log_q[:, b].detach().numpy(), oracle, rtol=1e-10)


def test_iaf_log_q_is_the_change_of_variables_density():
    post = _posterior("iaf", steps=3, flow_hidden=(5, 4))
    h = torch.randn(1, 6, dtype=torch.float64)
    eps = torch.randn(1, 3, dtype=torch.float64)
    z, log_q = post.sample(post(h), eps=eps)
    J = torch.autograd.functional.jacobian(lambda e: post.sample(post(h), eps=e.reshape(1, 3))[0].reshape(3),
                                           eps.reshape(3))
    log_q_oracle = (stats.norm.logpdf(eps.numpy()).sum() - onp.linalg.slogdet(J.numpy())[1])
    onp.testing.assert_allclose(log_q.item(), log_q_oracle, rtol=1e-10)


def test_sampled_kl_is_unbiased_for_the_closed_form():
    post = _posterior("full")
    with torch.no_grad():
        post.head.weight.normal_(std=0.5)
    h = torch.randn(2, 6, dtype=torch.float64)
    g = torch.Generator().manual_seed(3)
    z, log_q = post.sample(post(h), sample_shape=(40_000,), generator=g)
    kl_samples = tp.sampled_kl(z, log_q).detach()
    exact = post.kl_to_prior(post(h)).detach()
    se = kl_samples.std(0) / math.sqrt(kl_samples.shape[0])
    assert torch.all(torch.abs(kl_samples.mean(0) - exact) < Z_MAX * se)


def test_importance_sampled_log_px_is_above_the_elbo_with_an_iaf_posterior():
    tb = linear_gaussian_testbed(seed=1, data_dim=5, latent_dim=3, noise_std=0.5)
    W, b = torch.as_tensor(tb.W), torch.as_tensor(tb.b)
    x = torch.as_tensor(tb.sample(onp.random.default_rng(0), 1)[0])
    post = _posterior("iaf", H=4, steps=2, flow_hidden=8)
    h = torch.randn(1, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    g = torch.Generator().manual_seed(4)
    R, k = 4000, 20
    with torch.no_grad():
        z, log_q = post.sample(post(h), sample_shape=(R, k), generator=g)
        log_w = (ttb.log_joint(x, z, W, b, tb.log_s) - log_q)[..., 0]  # (R, k)
    elbo = log_w[:, 0]
    iwae = torch.logsumexp(log_w, dim=1) - math.log(k)
    log_px = float(ttb.log_marginal(x, W, b, tb.log_s)[0])
    diff = iwae - elbo  # paired: IWAE_k - ELBO on the same draws, positive in expectation
    assert diff.mean() > Z_MAX * diff.std() / math.sqrt(R)
    # and both stay below the exact log p(x) on average (they are lower bounds in expectation)
    assert iwae.mean() < log_px + Z_MAX * iwae.std() / math.sqrt(R)
    assert elbo.mean() + Z_MAX * elbo.std() / math.sqrt(R) < log_px


def test_training_stays_finite_at_extreme_inputs():
    # the trunk output h is bounded (tanh); extreme encoder outputs come from the head: means +-1e4,
    # log-stds +-30 and a context of 1e4
    post = tp.IAFPosterior(6, 3, steps=2, flow_hidden=8)
    with torch.no_grad():
        post.head.weight.zero_()
        post.head.bias.copy_(torch.tensor([1e4, -1e4, 0.0, 30.0, -30.0, 0.0, 1e4, -1e4, 1e4]))
    opt = torch.optim.Adam(post.parameters(), lr=1e-2)
    h = torch.tensor([[1.0, -1.0, 0.5, -0.5, 0.0, 1.0]] * 2)
    for _ in range(5):
        z, log_q = post.sample(post(h), generator=torch.Generator().manual_seed(0))
        kl = tp.sampled_kl(z, log_q)
        assert torch.isfinite(kl).all()
        opt.zero_grad()
        kl.mean().backward()
        assert all(torch.isfinite(p.grad).all() for p in post.parameters() if p.grad is not None)
        opt.step()
