"""The NumPy VAE with a choice of posterior (diagonal, full covariance, IAF) against the torch VAE,
the IAF log-density against an autograd Jacobian, and log p(x) >= ELBO on average."""

import autograd.numpy as anp
import numpy as np
import pytest
from autograd import jacobian

from vae_from_scratch.numpy import vae as nv

torch = pytest.importorskip("torch")
from vae_from_scratch.torch.vae import VAE  # noqa: E402

KINDS = ["diagonal", "full", "iaf"]
OPTIONS = {"diagonal": {}, "full": {}, "iaf": {"steps": 2, "flow_hidden": (7, 6),
                                               "forget_bias": 0.5}}
D, HIDDEN, K, B = 9, (8, 6), 3, 4


def _models(kind, seed=0):
    torch.manual_seed(seed)
    model = VAE(D, HIDDEN, K, "tanh", posterior=kind, posterior_options=OPTIONS[kind]).double()
    with torch.no_grad():  # move off the near-identity start so that every part matters
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return model, model.posterior_numpy_params()


def _data(seed=1, S=5):
    rng = np.random.default_rng(seed)
    return (rng.random((B, D)) < 0.5).astype(float), rng.standard_normal((S, B, K))


@pytest.mark.parametrize("kind", KINDS)
def test_numpy_matches_torch(kind):
    model, params = _models(kind)
    fb = OPTIONS[kind].get("forget_bias", 1.0)
    x, eps = _data()
    xt, et = torch.as_tensor(x), torch.as_tensor(eps)
    with torch.no_grad():
        z_t, lq_t = model.posterior.sample(model.encode(xt), eps=et)
        elbo_t, lw_t = model.elbo(xt, eps=et), model.log_weights(xt, eps=et)
        elbo1_t = model.elbo(xt, eps=et[0])
    z, lq = nv.posterior_sample(kind, params, nv.features(params, x), eps, forget_bias=fb)
    np.testing.assert_allclose(z, z_t.numpy(), atol=1e-10, rtol=0)
    np.testing.assert_allclose(lq, lq_t.numpy(), atol=1e-10, rtol=0)
    np.testing.assert_allclose(nv.posterior_elbo(kind, params, x, eps, forget_bias=fb),
                               elbo_t.numpy(), atol=1e-10, rtol=0)
    np.testing.assert_allclose(nv.posterior_elbo(kind, params, x, eps[0], forget_bias=fb),
                               elbo1_t.numpy(), atol=1e-10, rtol=0)
    np.testing.assert_allclose(nv.posterior_log_weights(kind, params, x, eps, forget_bias=fb),
                               lw_t.numpy(), atol=1e-10, rtol=0)


def test_diagonal_kind_equals_the_chapter5_functions():
    params = nv.init_vae(np.random.default_rng(0), D, HIDDEN, K)
    x, eps = _data()
    np.testing.assert_allclose(nv.posterior_elbo("diagonal", params, x, eps),
                               nv.elbo(params, x, eps), atol=1e-12, rtol=0)
    np.testing.assert_allclose(nv.posterior_log_weights("diagonal", params, x, eps),
                               nv.log_weights(params, x, eps), atol=1e-12, rtol=0)


def test_iaf_log_q_is_base_density_minus_log_det_of_autograd_jacobian():
    _, params = _models("iaf")
    x, eps = _data(S=1)
    h = nv.features(params, x)
    z, lq = nv.posterior_sample("iaf", params, h, eps[0], forget_bias=0.5)
    for i in range(B):
        def f(e, i=i):
            return nv.posterior_sample("iaf", params, h[i:i + 1], e[None], forget_bias=0.5)[0][0]
        J = jacobian(f)(eps[0, i])
        sign, logdet = np.linalg.slogdet(J)
        log_base = -0.5 * np.sum(eps[0, i] ** 2) - 0.5 * K * np.log(2 * np.pi)
        assert sign != 0
        np.testing.assert_allclose(lq[i], log_base - logdet, atol=1e-10, rtol=0)
    assert np.all(np.isfinite(anp.asarray(z)))


@pytest.mark.parametrize("kind", KINDS)
def test_importance_sampled_log_likelihood_is_above_the_elbo(kind):
    rng = np.random.default_rng(3)
    params = nv.init_posterior_vae(rng, D, HIDDEN, K, kind, steps=2, flow_hidden=(7, 6))
    x = (rng.random((B, D)) < 0.5).astype(float)
    gaps = []
    for _ in range(20):
        eps = rng.standard_normal((200, B, K))
        log_px = nv.logmeanexp(nv.posterior_log_weights(kind, params, x, eps), axis=0)
        gaps.append(log_px - nv.posterior_elbo(kind, params, x, eps[:1]))
    gaps = np.asarray(gaps)
    mean, se = gaps.mean(0), gaps.std(0, ddof=1) / np.sqrt(len(gaps))
    assert np.all(mean > -3 * se), (mean, se)
