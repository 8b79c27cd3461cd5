"""Importance-sampled log-likelihood, log-mean-exp, the IWAE bound and the amortization gap.

The estimator is checked on the linear-Gaussian testbed, where log p(x), the posterior and the ELBO of
any Gaussian q are exact. False-failure budget: the statistical tests are z-tests at 5 standard errors
(at most 5.7e-7 each); about 60 of them in this file, below 3.5e-5 in total.
"""

import numpy as np
import pytest
import torch

from vae_from_scratch.data import linear_gaussian_testbed
from vae_from_scratch.numpy import distributions as nd
from vae_from_scratch.numpy import evaluation as nev
from vae_from_scratch.numpy import vae as nvae
from vae_from_scratch.torch import evaluation as tev
from vae_from_scratch.torch import vae as tvae

Z5 = 5.0  # z-test threshold (two-sided false-failure rate ~5.7e-7 each)


# --- log-mean-exp -----------------------------------------------------------------------------------


@pytest.mark.parametrize("shift", [-1e4, -800.0, 0.0, 800.0, 1e4])
def test_logmeanexp_is_stable_at_any_offset(shift):
    a = np.array([[0.0, np.log(3.0)], [-1.0, 0.5], [2.0, -3.0]]) + shift
    expected = np.log(np.mean(np.exp(a - shift), axis=0)) + shift  # the naive formula, offset removed
    np.testing.assert_allclose(nev.logmeanexp(a, axis=0), expected, rtol=1e-13, atol=1e-12)
    torch.testing.assert_close(tev.logmeanexp(torch.tensor(a), dim=0), torch.tensor(expected),
                               rtol=1e-13, atol=1e-12)
    assert np.all(np.isfinite(nev.logmeanexp(a, axis=1)))


def test_naive_log_mean_exp_fails_where_the_stable_one_does_not():
    a = np.array([-800.0, -801.0])  # typical magnitudes of log-weights for large images
    with np.errstate(divide="ignore"):
        assert np.log(np.mean(np.exp(a))) == -np.inf
    np.testing.assert_allclose(nev.logmeanexp(a), -800.0 + np.log((1 + np.exp(-1)) / 2), rtol=1e-14)
    float32 = torch.tensor([-110.0, -120.0], dtype=torch.float32)  # float32 underflows near -104
    assert torch.log(torch.exp(float32).mean()) == -np.inf
    assert torch.isfinite(tev.logmeanexp(float32))


def test_logmeanexp_gradient_is_the_softmax():
    from autograd import grad

    a = np.array([1.0, -2.0, 0.3, 5.0])
    np.testing.assert_allclose(grad(nev.logmeanexp)(a), np.exp(a) / np.exp(a).sum(), rtol=1e-12)


def test_logmeanexp_of_empty_axis_raises():
    with pytest.raises(ValueError, match="empty"):
        nev.logmeanexp(np.zeros((0, 3)), axis=0)
    with pytest.raises(ValueError, match="empty"):
        tev.logmeanexp(torch.zeros(0, 3), dim=0)


def test_iwae_curve_endpoints_and_monotonicity():
    rng = np.random.default_rng(0)
    log_w = rng.normal(-90.0, 3.0, size=(1000, 4))
    curve = nev.iwae_curve(log_w, [1, 10, 100, 1000])
    np.testing.assert_allclose(curve[0], log_w.mean(0), rtol=1e-14)
    np.testing.assert_allclose(curve[-1], nev.iwae_bound(log_w), rtol=1e-14)
    torch.testing.assert_close(tev.iwae_curve(torch.tensor(log_w), [1, 10, 100, 1000]), torch.tensor(curve))
    # a group's logmeanexp >= its mean, so L_k >= L_1 for every k here
    assert np.all(curve[1:] >= curve[0])
    np.testing.assert_allclose(nev.elbo_from_log_weights(log_w), log_w.mean(0))
    with pytest.raises(ValueError, match="k="):
        nev.iwae_curve(log_w, [2000])


# --- the linear-Gaussian testbed: the estimator against exact log p(x) ----------------------------


@pytest.fixture(scope="module")
def testbed():
    tb = linear_gaussian_testbed(seed=3, data_dim=5, latent_dim=2, noise_std=0.5)
    x, _ = tb.sample(np.random.default_rng(0), 4)
    post_mean, post_cov = tb.posterior(x)
    q_mean = post_mean + 0.3                                      # a deliberately imperfect q:
    q_log_std = np.log(1.5 * np.sqrt(np.diag(post_cov))) * np.ones_like(post_mean)  # shifted, too wide
    # exact ELBO of q: log p(x) - KL(q || p(z|x)), the KL between Gaussians in closed form
    prec = np.linalg.inv(post_cov)
    var_q = np.exp(2 * q_log_std)
    diff = q_mean - post_mean
    kl = 0.5 * ((prec.diagonal() * var_q).sum(1) + np.einsum("bi,ij,bj->b", diff, prec, diff) - 2
                + np.linalg.slogdet(post_cov)[1] - 2 * q_log_std.sum(1))
    exact = tb.log_marginal(x)
    return dict(tb=tb, x=x, q_mean=q_mean, q_log_std=q_log_std, exact=exact, exact_elbo=exact - kl,
                post_mean=post_mean, post_cov=post_cov)


def _q_log_weights(tb, q_mean, q_log_std, repeats):
    """log p(x, z) - log q(z) for data tiled ``repeats`` times (rows i, i+n, ... are the same x)."""
    mean, log_std = np.tile(q_mean, (repeats, 1)), np.tile(q_log_std, (repeats, 1))

    def fn(xb, e):  # called block by block in row order: track which rows and samples we are at
        b = xb.shape[0]
        rows = slice(fn.offset, fn.offset + b)
        z = mean[rows] + np.exp(log_std[rows]) * e
        out = tb.log_joint(xb, z) - nd.log_normal_diag(z, mean[rows], log_std[rows])
        if e.shape[0] + fn.sample_offset >= fn.k:  # last sample block of this data block
            fn.offset, fn.sample_offset = fn.offset + b, 0
        else:
            fn.sample_offset += e.shape[0]
        return out

    fn.offset, fn.sample_offset = 0, 0
    return fn


REPEATS = {1: 4000, 10: 2000, 100: 8000, 1000: 1500, 10000: 20}  # independent estimates per k


@pytest.fixture(scope="module")
def estimates(testbed):
    """For each k: mean and standard error, over REPEATS[k] independent runs, of the estimate per point."""
    tb, x = testbed["tb"], testbed["x"]
    out = {}
    for k, repeats in REPEATS.items():
        fn = _q_log_weights(tb, testbed["q_mean"], testbed["q_log_std"], repeats)
        fn.k = k
        est = nev.importance_log_likelihood(fn, np.tile(x, (repeats, 1)), k, 2,
                                            rng=np.random.default_rng(k), batch_size=400,
                                            sample_batch_size=2000).reshape(repeats, len(x))
        out[k] = (est.mean(0), est.std(0, ddof=1) / np.sqrt(repeats))
    return out


@pytest.mark.parametrize("k", sorted(REPEATS))
def test_importance_sampling_is_above_the_elbo_below_log_px_in_expectation(testbed, estimates, k):
    mean, se = estimates[k]
    assert np.all(mean <= testbed["exact"] + Z5 * se), "above log p(x) in expectation"
    assert np.all(mean >= testbed["exact_elbo"] - Z5 * se), "below the ELBO in expectation"
    if k == 1:  # one sample: the estimator is the ELBO itself
        assert np.all(np.abs(mean - testbed["exact_elbo"]) <= Z5 * se)


def test_importance_sampling_converges_to_log_px(testbed, estimates):
    """The gap log p(x) - E[estimate] shrinks with k (about like 1/k) and vanishes."""
    gaps = {k: (testbed["exact"] - mean, se) for k, (mean, se) in estimates.items()}
    assert np.all(gaps[1][0] > 3.0)  # a visibly loose ELBO (KL(q || posterior) is about 3.6 here)
    ks = sorted(gaps)
    for small, large in zip(ks[:3], ks[1:4]):  # 1 > 10 > 100 > 1000, each drop beyond 5 SE
        drop, se = gaps[small][0] - gaps[large][0], np.hypot(gaps[small][1], gaps[large][1])
        assert np.all(drop > Z5 * se), (small, large, drop, se)
    gap, se = gaps[10000]
    assert np.all(np.abs(gap) < 0.02 + Z5 * se)  # bias ~ 1/k: a few 1e-3 at k = 1e4


def test_exact_posterior_as_proposal_gives_log_px_with_one_sample(testbed):
    """With q = p(z|x) every weight equals p(x): the estimate is exact for any k, zero variance."""
    tb, x = testbed["tb"], testbed["x"]
    L = np.linalg.cholesky(testbed["post_cov"])

    def fn(xb, e):
        m = testbed["post_mean"][: len(xb)]
        z = m + np.einsum("ij,sbj->sbi", L, e)
        log_q = nd.log_standard_normal(e) - np.log(np.diag(L)).sum()
        return tb.log_joint(xb, z) - log_q

    for k in (1, 7):
        np.testing.assert_allclose(nev.importance_log_likelihood(fn, x, k, 2, rng=np.random.default_rng(0)),
                                   testbed["exact"], rtol=1e-10)


# --- blocking and parity on a VAE ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_vae():
    rng = np.random.default_rng(0)
    params = nvae.init_vae(rng, 16, (12,), 3)
    x = (rng.random((13, 16)) < 0.35).astype(float)
    eps = rng.standard_normal((37, 13, 3))
    model = tvae.VAE(16, (12,), 3).double().load_numpy_params(params)
    return params, x, eps, model


def test_blocked_evaluation_equals_unblocked(small_vae):
    params, x, eps, model = small_vae
    fn = lambda xb, e: nvae.log_weights(params, xb, e)  # noqa: E731
    reference = nev.iwae_bound(nvae.log_weights(params, x, eps))  # everything at once
    for batch, samples in [(13, 37), (4, 5), (1, 9), (5, 36), (100, 1000)]:
        np.testing.assert_allclose(
            nev.importance_log_likelihood(fn, x, 37, 3, eps=eps, batch_size=batch, sample_batch_size=samples),
            reference, rtol=1e-13)
        torch.testing.assert_close(
            tev.importance_log_likelihood(lambda xb, e: model.log_weights(xb, eps=e), torch.tensor(x), 37, 3,
                                          eps=torch.tensor(eps), batch_size=batch, sample_batch_size=samples),
            torch.tensor(reference), rtol=1e-13, atol=0)
    torch.testing.assert_close(
        tev.vae_log_likelihood(model, torch.tensor(x), k=37, eps=torch.tensor(eps), batch_size=3,
                               max_block_elements=500), torch.tensor(reference), rtol=1e-13, atol=0)


def test_numpy_torch_parity_of_the_estimator(small_vae):
    params, x, eps, model = small_vae
    np_result = nev.importance_log_likelihood(lambda xb, e: nvae.log_weights(params, xb, e), x, 37, 3,
                                              eps=eps, batch_size=5, sample_batch_size=8)
    t_result = tev.vae_log_likelihood(model, torch.tensor(x), k=37, eps=torch.tensor(eps), batch_size=5,
                                      sample_batch_size=8)
    assert np.max(np.abs(np_result - t_result.numpy())) < 1e-10


def test_generator_draws_are_reproducible_and_memory_blocks_are_bounded(small_vae):
    _, x, _, model = small_vae
    xt = torch.tensor(x)
    calls = []

    def fn(xb, e):
        calls.append(e.shape)
        return model.log_weights(xb, eps=e)

    a = tev.importance_log_likelihood(fn, xt, 50, 3, generator=torch.Generator().manual_seed(0),
                                      batch_size=4, sample_batch_size=16)
    b = tev.importance_log_likelihood(fn, xt, 50, 3, generator=torch.Generator().manual_seed(0),
                                      batch_size=4, sample_batch_size=16)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert max(s[0] * s[1] for s in calls) <= 16 * 4  # no block larger than the bound
    assert a.shape == (13,)


def test_estimator_input_errors(small_vae):
    params, x, eps, model = small_vae
    fn = lambda xb, e: nvae.log_weights(params, xb, e)  # noqa: E731
    with pytest.raises(ValueError, match="eps must have shape"):
        nev.importance_log_likelihood(fn, x, 36, 3, eps=eps)
    with pytest.raises(ValueError, match="rng"):
        nev.importance_log_likelihood(fn, x, 5, 3)
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        nev.importance_log_likelihood(fn, x[0], 5, 3, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="positive"):
        tev.importance_log_likelihood(fn, torch.tensor(x), 0, 3)
    with pytest.raises(ValueError, match="eps must have shape"):
        tev.importance_log_likelihood(fn, torch.tensor(x), 36, 3, eps=torch.tensor(eps))


def test_amortization_gap_decomposition(small_vae):
    """q* (optimized per data point from the encoder's output) has a higher ELBO than the encoder; the
    approximation gap is >= 0 exactly (log-mean-exp >= mean over the same samples); the model's
    weights are untouched and its parameters still require gradients afterwards."""
    _, x, _, model = small_vae
    before = [p.detach().clone() for p in model.parameters()]
    g = torch.Generator().manual_seed(0)
    out = tev.amortization_gap(model, torch.tensor(x), k=500, steps=100, lr=0.05, generator=g,
                               sample_batch_size=300)
    assert set(out) == {"log_px", "elbo_optimal", "elbo_encoder", "approximation_gap", "amortization_gap"}
    assert torch.all(out["approximation_gap"] >= 0)
    assert out["amortization_gap"].mean() > 0.5  # a random encoder is far from each point's optimum
    torch.testing.assert_close(out["log_px"] - out["elbo_encoder"],
                               out["approximation_gap"] + out["amortization_gap"])
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert all(p.requires_grad for p in model.parameters())


# --- the fast evaluation path: same numbers as the model's own log-weights -------------------------


def _model_and_data(posterior="diagonal", activation="tanh", decoder="bernoulli", B=7, D=20, seed=0):
    torch.manual_seed(seed)
    model = tvae.VAE(D, (9, 6), 4, activation, posterior=posterior, decoder=decoder).double().eval()
    x = (torch.rand(B, D, dtype=torch.float64) < 0.4).double()
    return model, x


@pytest.mark.parametrize("posterior", sorted(tvae.POSTERIORS))
@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_fast_log_weights_equal_the_models_own_in_float64(posterior, activation):
    model, x = _model_and_data(posterior, activation)
    assert tev.bernoulli_mlp_layers(model.decoder) is not None  # the fast path is taken
    eps = torch.randn(11, x.shape[0], model.latent_dim, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(tev.vae_log_weights(model, x, eps), model.log_weights(x, eps=eps),
                                   rtol=1e-12, atol=1e-10)


@pytest.mark.parametrize("S,B,chunk_rows", [(11, 7, 1), (11, 7, 14), (11, 7, 20), (3, 40, 8), (1, 1, 512)])
def test_fast_bernoulli_term_at_every_chunking(S, B, chunk_rows):
    model, x = _model_and_data(B=B)
    z = torch.randn(S, B, model.latent_dim, dtype=torch.float64)
    layers = tev.bernoulli_mlp_layers(model.decoder)
    with torch.no_grad():
        torch.testing.assert_close(tev.bernoulli_mlp_log_prob(layers, x, z, chunk_rows=chunk_rows),
                                   model.decoder.log_prob(x, z), rtol=1e-12, atol=1e-10)


def test_fast_bernoulli_term_is_finite_and_exact_at_extreme_logits():
    model, x = _model_and_data()
    layers = tev.bernoulli_mlp_layers(model.decoder)
    with torch.no_grad():
        model.decoder.net[-1].bias.copy_(torch.linspace(-1e4, 1e4, x.shape[1], dtype=torch.float64))
        z = torch.randn(5, x.shape[0], model.latent_dim, dtype=torch.float64)
        fast = tev.bernoulli_mlp_log_prob(layers, x, z)
        assert torch.isfinite(fast).all()
        torch.testing.assert_close(fast, model.decoder.log_prob(x, z), rtol=1e-12, atol=1e-8)


def test_decoders_without_the_fast_path_fall_back_to_their_log_prob():
    model, x = _model_and_data(decoder="autoregressive")
    assert tev.bernoulli_mlp_layers(model.decoder) is None
    eps = torch.randn(5, x.shape[0], model.latent_dim, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(tev.vae_log_weights(model, x, eps), model.log_weights(x, eps=eps),
                                   rtol=0, atol=0)


def test_float32_fast_path_agrees_with_the_models_log_weights_within_float32_rounding():
    torch.manual_seed(1)
    model = tvae.build_vae(784, "burda").eval()
    x = (torch.rand(30, 784) < 0.2).float()
    eps = torch.randn(40, 30, 50)
    with torch.no_grad():
        fast, own = tev.vae_log_weights(model, x, eps), model.log_weights(x, eps=eps)
    # |log w| is about 550 nats, a sum of 784 + 50 terms: float32 rounding is about 1e-4 nats
    assert float((fast - own).abs().max()) < 2e-3


@pytest.mark.parametrize("workers", [2, 3])
def test_workers_give_the_same_estimate_bit_for_bit_and_restore_torch_threads(workers):
    model, x = _model_and_data(B=13)
    threads = torch.get_num_threads()
    serial = tev.vae_log_likelihood(model, x, k=50, generator=torch.Generator().manual_seed(3), batch_size=4,
                                    sample_batch_size=7)
    parallel = tev.vae_log_likelihood(model, x, k=50, generator=torch.Generator().manual_seed(3),
                                      batch_size=4, sample_batch_size=7, workers=workers)
    torch.testing.assert_close(parallel, serial, rtol=0, atol=0)
    assert torch.get_num_threads() == threads


def test_workers_surface_errors_and_restore_torch_threads():
    threads = torch.get_num_threads()

    def broken(xb, e):
        raise RuntimeError("boom in a worker")

    with pytest.raises(RuntimeError, match="boom in a worker"):
        tev.importance_log_likelihood(broken, torch.zeros(6, 3), 10, 2, generator=torch.Generator(),
                                      batch_size=2, sample_batch_size=3, workers=2)
    assert torch.get_num_threads() == threads
    with pytest.raises(ValueError, match="workers"):
        tev.importance_log_likelihood(broken, torch.zeros(6, 3), 10, 2, workers=0)
