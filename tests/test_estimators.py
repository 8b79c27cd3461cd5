"""Gradient estimators (vae_from_scratch.{numpy,torch}.estimators): unbiasedness against closed-form
gradients, the variance orderings the chapters claim, the path-derivative estimator's zero variance at
the exact posterior, and numpy-vs-torch parity in float64.

Oracle: the linear-Gaussian testbed, whose ELBO under a Gaussian q has a closed form
(testbed.elbo_gaussian), so its exact gradient comes from autograd; Bernoulli expectations are
enumerated exactly.

False-failure budget (two-sided normal tail at |z| > 5: 5.7e-7 per z-test, CLT approximation with
10^4-10^5 iid terms; the variance comparisons have margins of many standard errors, see each test):
* test_elbo_estimators_are_unbiased: 4 estimators x 5 free coordinates = 20 z-tests -> 1.2e-5
* test_reparam_gradient_unbiased_simple: 4 z-tests -> 2.3e-6
* test_score_function_unbiased_with_any_constant_baseline: 2 baselines x 4 coords -> 4.6e-6
* test_score_function_bernoulli_unbiased: 3 baselines x 3 coords -> 5.2e-6
* test_leave_one_out_keeps_unbiased_with_two_samples: 4 z-tests -> 2.3e-6
* test_sample_bernoulli_frequencies: 4 z-tests -> 2.3e-6
* test_exact_elbo_oracle_is_right: 1 z-test -> 5.7e-7
Total < 3e-5. Every test draws from a fixed seed, so a run is reproducible; the rates above are
those of a fresh seed.
"""

import itertools

import numpy as onp
import pytest
import torch
from autograd import grad

import autograd.numpy as anp
from vae_from_scratch.numpy import distributions as nd
from vae_from_scratch.numpy import estimators as ne
from vae_from_scratch.numpy import reparameterization as nr
from vae_from_scratch.numpy import testbed
from vae_from_scratch.torch import distributions as td
from vae_from_scratch.torch import estimators as te
from vae_from_scratch.torch import reparameterization as tr

Z_MAX = 5.0


# --- a linear-Gaussian problem with a full-covariance Gaussian q ---------------------------------


class Problem(testbed.FullCovarianceQ):
    """Testbed with D observations and K latents at one sampled x; phi = [mean (K), log_std (K), L' (K*K)]
    (see testbed.FullCovarianceQ, whose exact_elbo is the closed form testbed.elbo_gaussian)."""

    def __init__(self, seed=0, D=4, K=2):
        rng = onp.random.default_rng(seed)
        W, b, log_s = rng.normal(size=(D, K)), rng.normal(size=D), onp.log(0.7)
        super().__init__(testbed.sample(rng, 1, W, b, log_s)[0][0], W, b, log_s)
        self.phi_0 = onp.concatenate([onp.zeros(K), onp.full(K, 0.3), onp.zeros(K * K)])
        self.log_px = testbed.log_marginal(self.x, W, b, log_s)


def _zscores(per_sample, exact):
    n = per_sample.shape[0]
    return (per_sample.mean(0) - exact) / (per_sample.std(0, ddof=1) / onp.sqrt(n))


def test_exact_elbo_oracle_is_right():
    P = Problem()
    # the closed form is tight at the exact posterior and matches a Monte Carlo average elsewhere
    assert abs(P.exact_elbo(P.phi_star) - P.log_px) < 1e-10
    rng = onp.random.default_rng(1)
    eps = rng.normal(size=(200_000, P.K))
    values = ne.elbo_surrogate(P.log_joint, P.sample, P.log_q, P.phi_0, eps)
    z = (values.mean() - P.exact_elbo(P.phi_0)) / (values.std() / onp.sqrt(len(values)))
    assert abs(z) < Z_MAX  # one more z-test: 5.7e-7
    assert P.exact_elbo(P.phi_0) < P.log_px - 0.1


# --- per-sample machinery --------------------------------------------------------------------------


def test_per_sample_gradients_equal_a_loop_of_grads():
    P = Problem()
    rng = onp.random.default_rng(2)
    eps = rng.normal(size=(5, P.K))
    batched = ne.elbo_gradient(P.log_joint, P.sample, P.log_q, P.phi_0, eps)
    assert batched.shape == (5, P.phi_0.size)
    for s in range(5):
        single = grad(lambda p: ne.elbo_surrogate(P.log_joint, P.sample, P.log_q, p[None], eps[s:s + 1])[0])(P.phi_0)
        onp.testing.assert_allclose(batched[s], single, rtol=1e-12, atol=1e-12)


def test_per_sample_gradients_rejects_wrong_output_shape():
    with pytest.raises(ValueError, match="one value per sample"):
        ne.per_sample_gradients(lambda p, e: anp.sum(p * e), onp.zeros(2), onp.ones((3, 2)))
    with pytest.raises(ValueError, match="one value per sample"):
        te.per_sample_gradients(lambda p, e: (p * e).sum(), torch.zeros(2), torch.ones(3, 2))


# --- unbiasedness (monograph 2.30-2.32 and 2.72-2.73) -----------------------------------------------


def test_reparam_gradient_unbiased_simple():
    # E_{N(mu, sigma^2)}[sum z^2] = sum mu^2 + sigma^2: d/dmu = 2 mu, d/dlog_sigma = 2 sigma^2
    rng = onp.random.default_rng(3)
    phi = onp.array([0.5, -1.0, 0.2, -0.4])
    sample = lambda p, e: nr.rsample_normal_diag(p[..., :2], p[..., 2:], e)[0]
    g = ne.reparam_gradient(lambda z: anp.sum(z**2, -1), sample, phi, rng.normal(size=(50_000, 2)))
    exact = onp.concatenate([2 * phi[:2], 2 * onp.exp(2 * phi[2:])])
    assert onp.all(onp.abs(_zscores(g, exact)) < Z_MAX)


def test_elbo_estimators_are_unbiased():
    P = Problem()
    rng = onp.random.default_rng(4)
    N = 40_000
    phi = 0.5 * P.phi_0 + 0.5 * P.phi_star
    exact = grad(P.exact_elbo)(phi)
    eps = rng.normal(size=(N, P.K))
    z = P.sample(onp.tile(phi, (N, 1)), eps)
    estimates = {
        "reparameterization": ne.elbo_gradient(P.log_joint, P.sample, P.log_q, phi, eps),
        "path derivative": ne.path_derivative_gradient(P.log_joint, P.sample, P.log_q, phi, eps),
        "score function": ne.score_function_elbo_gradient(P.log_joint, P.log_q, phi, z),
        "score function + leave-one-out": ne.score_function_elbo_gradient(
            P.log_joint, P.log_q, phi, z, baseline="leave-one-out"),
    }
    free = P.free
    assert onp.all(exact[~free] == 0)
    for name, g in estimates.items():
        assert g.shape == (N, phi.size)
        assert onp.all(g[:, ~free] == 0), name
        zs = _zscores(g[:, free], exact[free])
        assert onp.all(onp.abs(zs) < Z_MAX), (name, zs)


def test_score_function_unbiased_with_any_constant_baseline():
    # f(z) = sum(z^3) under N(mu, sigma^2): E = sum mu^3 + 3 mu sigma^2
    rng = onp.random.default_rng(5)
    phi = onp.array([0.3, -0.6, -0.2, 0.1])
    mu, sigma2 = phi[:2], onp.exp(2 * phi[2:])
    exact = onp.concatenate([3 * mu**2 + 3 * sigma2, 6 * mu * sigma2])
    log_q = lambda p, z: nd.log_normal_diag(z, p[..., :2], p[..., 2:])
    N = 200_000
    z = mu + onp.sqrt(sigma2) * rng.normal(size=(N, 2))
    f = lambda z: anp.sum(z**3, -1)
    for baseline in [None, 7.0]:
        g = ne.score_function_gradient(f, log_q, phi, z, baseline=baseline)
        assert onp.all(onp.abs(_zscores(g, exact)) < Z_MAX), baseline


def _bernoulli_problem():
    K = 3
    logits = onp.array([0.4, -1.1, 2.0])
    w = onp.array([1.5, -2.0, 0.7])
    f = lambda z: anp.dot(z, w) + 3.0 * z[..., 0] * z[..., 1] - 2.0 * z[..., 2] * z[..., 0] + 5.0
    states = onp.array(list(itertools.product([0.0, 1.0], repeat=K)))

    def expectation(lg):
        return anp.sum(anp.exp(nd.bernoulli_log_likelihood(states, lg)) * f(states))

    return K, logits, f, states, expectation


def test_score_is_mean_zero_exactly_for_bernoulli():
    K, logits, f, states, _ = _bernoulli_problem()
    q = onp.exp(nd.bernoulli_log_likelihood(states, logits))
    scores = ne.score_function_gradient(lambda z: onp.ones(len(z)),
                                        lambda p, z: nd.bernoulli_log_likelihood(z, p), logits, states)
    onp.testing.assert_allclose(scores, states - 1 / (1 + onp.exp(-logits)), rtol=1e-12)  # d log q / d logit
    onp.testing.assert_allclose(q @ scores, onp.zeros(K), atol=1e-15)


def test_score_function_bernoulli_unbiased():
    K, logits, f, states, expectation = _bernoulli_problem()
    exact = grad(expectation)(logits)
    rng = onp.random.default_rng(6)
    N = 100_000
    z = ne.sample_bernoulli(logits, rng.uniform(size=(N, K)))
    log_q = lambda p, zz: nd.bernoulli_log_likelihood(zz, p)
    variances = {}
    for baseline in [None, 5.0, "leave-one-out"]:
        g = ne.score_function_gradient(f, log_q, logits, z, baseline=baseline)
        assert onp.all(onp.abs(_zscores(g, exact)) < Z_MAX), baseline
        variances[baseline] = g.var(0).sum()
    # subtracting (about) the mean of f cuts the variance: measured ~27x; the estimate of a variance
    # ratio from 1e5 samples has a relative error of about 1%, so 2x is a margin of > 50 errors
    assert variances[None] > 2 * variances["leave-one-out"]


def test_leave_one_out_baseline_values_and_errors():
    v = onp.array([1.0, 2.0, 6.0])
    onp.testing.assert_allclose(ne.leave_one_out_baseline(v), [4.0, 3.5, 1.5])
    v2 = onp.arange(6.0).reshape(3, 2)
    onp.testing.assert_allclose(ne.leave_one_out_baseline(v2), (v2.sum(0) - v2) / 2)
    onp.testing.assert_allclose(te.leave_one_out_baseline(torch.tensor(v2)).numpy(), (v2.sum(0) - v2) / 2)
    with pytest.raises(ValueError, match="at least 2"):
        ne.leave_one_out_baseline(onp.array([1.0]))
    with pytest.raises(ValueError, match="at least 2"):
        te.leave_one_out_baseline(torch.ones(1))
    with pytest.raises(ValueError, match="unknown baseline"):
        ne.score_function_surrogate(onp.ones(3), onp.ones(3), baseline="mean")
    with pytest.raises(ValueError, match="unknown baseline"):
        te.score_function_surrogate(torch.ones(3), torch.ones(3), baseline="mean")


def test_leave_one_out_keeps_unbiased_with_two_samples():
    # with S = 2 the baseline "mean of all samples, including this one" would halve the gradient;
    # the leave-one-out baseline must not. 20000 independent pairs.
    rng = onp.random.default_rng(7)
    phi = onp.array([0.3, -0.6, -0.2, 0.1])
    mu, sigma = phi[:2], onp.exp(phi[2:])
    exact = onp.concatenate([3 * mu**2 + 3 * sigma**2, 6 * mu * sigma**2])
    log_q = lambda p, z: nd.log_normal_diag(z, p[..., :2], p[..., 2:])
    pairs = mu + sigma * rng.normal(size=(2, 20_000, 2))
    f = lambda z: anp.sum(z**3, -1)
    baseline = ne.leave_one_out_baseline(f(pairs))  # (2, 20000): the other member of each pair
    z = pairs.reshape(-1, 2)
    g = ne.score_function_gradient(f, log_q, phi, z, baseline=baseline.reshape(-1))
    pair_means = g.reshape(2, -1, 4).mean(0)       # the S = 2 estimator, 20000 iid copies
    assert onp.all(onp.abs(_zscores(pair_means, exact)) < Z_MAX)


# --- variance orderings ------------------------------------------------------------------------------


def test_path_derivative_is_exactly_zero_at_the_exact_posterior():
    P = Problem()
    rng = onp.random.default_rng(8)
    eps = rng.normal(size=(2000, P.K))
    g_pd = ne.path_derivative_gradient(P.log_joint, P.sample, P.log_q, P.phi_star, eps)
    g_total = ne.elbo_gradient(P.log_joint, P.sample, P.log_q, P.phi_star, eps)
    assert onp.max(onp.abs(g_pd)) < 1e-9            # every single sample, up to round-off
    # the standard estimator keeps the score term: its variance stays of order one (measured ~17);
    # the sample variance of 2000 draws cannot fall 100x below its expectation by chance
    assert g_total.var(0).sum() > 0.2
    # and both are unbiased for the exact gradient, which is zero at the optimum
    onp.testing.assert_allclose(grad(P.exact_elbo)(P.phi_star), 0.0, atol=1e-10)
    # their values (the ELBO estimates) are identical: only the gradient differs
    v_pd = ne.path_derivative_surrogate(P.log_joint, P.sample, P.log_q, onp.tile(P.phi_star, (5, 1)), eps[:5])
    v_total = ne.elbo_surrogate(P.log_joint, P.sample, P.log_q, onp.tile(P.phi_star, (5, 1)), eps[:5])
    onp.testing.assert_allclose(v_pd, v_total, rtol=1e-14)
    onp.testing.assert_allclose(v_pd, P.log_px, rtol=1e-10)  # log p(x,z) - log q(z) = log p(x)


def test_path_derivative_variance_shrinks_towards_the_optimum():
    P = Problem()
    rng = onp.random.default_rng(9)
    eps = rng.normal(size=(20_000, P.K))
    var_pd, var_total = [], []
    for t in [0.0, 0.9, 0.99]:
        phi = (1 - t) * P.phi_0 + t * P.phi_star
        var_pd.append(ne.path_derivative_gradient(P.log_joint, P.sample, P.log_q, phi, eps).var(0).sum())
        var_total.append(ne.elbo_gradient(P.log_joint, P.sample, P.log_q, phi, eps).var(0).sum())
    # measured: path derivative 801 -> 2.2 -> 0.021; standard 884 -> 23 -> 17 (order-of-magnitude
    # margins; the relative error of each variance estimate from 2e4 draws is a few percent)
    assert var_pd[0] > 5 * var_pd[1] > 25 * var_pd[2]
    assert var_total[2] > 0.5 * var_total[1]         # the standard estimator does not go to zero
    assert var_total[2] > 100 * var_pd[2]


def test_variance_ordering_score_function_baseline_reparameterization():
    # diagonal Gaussian q at the prior on a testbed with K = 5 latents: measured per-sample total
    # variances 4.9e4 (score function), 9.9e3 (leave-one-out, S = 2 pairs x 2), 4.9e2 (reparam.);
    # margins of 5x and 20x against required 3x each: far beyond the few-percent sampling error
    rng = onp.random.default_rng(10)
    D, K, N = 20, 5, 20_000
    W = rng.normal(size=(D, K)) / onp.sqrt(K)
    b = rng.normal(size=D)
    x = testbed.sample(rng, 1, W, b, 0.0)[0][0]
    log_joint = lambda z: testbed.log_joint(x, z, W, b, 0.0)
    sample = lambda p, e: nr.rsample_normal_diag(p[..., :K], p[..., K:], e)[0]
    log_q = lambda p, z: nd.log_normal_diag(z, p[..., :K], p[..., K:])
    phi = onp.zeros(2 * K)
    eps = rng.normal(size=(N, K))
    z = sample(onp.tile(phi, (N, 1)), eps)
    f = log_joint(z) - log_q(phi, z)
    loo = ne.leave_one_out_baseline(f.reshape(-1, 2).T).T.reshape(-1)  # pairs (2s, 2s+1)
    v_rp = ne.elbo_gradient(log_joint, sample, log_q, phi, eps).var(0).sum()
    v_sf = ne.score_function_elbo_gradient(log_joint, log_q, phi, z).var(0).sum()
    g_loo = ne.score_function_elbo_gradient(log_joint, log_q, phi, z, baseline=loo)
    v_loo = 2 * g_loo.reshape(-1, 2, 2 * K).mean(1).var(0).sum()  # per-sample equivalent of S = 2
    assert v_sf > 3 * v_loo > 3 * 3 * v_rp


# --- Bernoulli sampling ------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:Output seems independent of input")
def test_sample_bernoulli_frequencies_and_no_gradient():
    rng = onp.random.default_rng(11)
    logits = onp.array([-2.0, 0.0, 0.5, 3.0])
    p = 1 / (1 + onp.exp(-logits))
    N = 100_000
    z = ne.sample_bernoulli(logits, rng.uniform(size=(N, 4)))
    assert set(onp.unique(z)) <= {0.0, 1.0}
    assert onp.all(onp.abs((z.mean(0) - p) / onp.sqrt(p * (1 - p) / N)) < Z_MAX)
    u = rng.uniform(size=(10, 4))
    onp.testing.assert_array_equal(grad(lambda lg: anp.sum(ne.sample_bernoulli(lg, u)))(logits), 0.0)
    zt = te.sample_bernoulli(torch.tensor(logits), u=torch.tensor(u))
    onp.testing.assert_array_equal(zt.numpy(), ne.sample_bernoulli(logits, u))
    zg = te.sample_bernoulli(torch.tensor(logits), generator=torch.Generator().manual_seed(0), sample_shape=(7,))
    assert zg.shape == (7, 4) and zg.dtype == torch.float64


# --- torch parity (float64) -------------------------------------------------------------------------


class TorchProblem:
    """The same Problem written with the torch package functions."""

    def __init__(self, P):
        self.P = P
        self.W, self.b, self.x = (torch.tensor(a, dtype=torch.float64) for a in (P.W, P.b, P.x))

    def unpack(self, phi):
        K = self.P.K
        L, _ = tr.full_covariance_factor(phi[..., 2 * K:].reshape(phi.shape[:-1] + (K, K)), phi[..., K:2 * K])
        return phi[..., :K], L

    def sample(self, phi, eps):
        return tr.rsample_normal_full(*self.unpack(phi), eps=eps)[0]

    def log_q(self, phi, z):
        return tr.log_normal_full(z, *self.unpack(phi))

    def log_joint(self, z):
        mean = z @ self.W.T + self.b
        log_s = torch.full_like(self.x, self.P.log_s)
        return td.log_standard_normal(z) + td.log_normal_diag(self.x, mean, log_s)


def test_torch_estimators_match_numpy_float64():
    P = Problem()
    T = TorchProblem(P)
    rng = onp.random.default_rng(12)
    N = 64
    phi = 0.5 * P.phi_0 + 0.5 * P.phi_star
    eps = rng.normal(size=(N, P.K))
    z = P.sample(onp.tile(phi, (N, 1)), eps)
    t = lambda a: torch.tensor(a, dtype=torch.float64)
    pairs = [
        (ne.elbo_gradient(P.log_joint, P.sample, P.log_q, phi, eps),
         te.elbo_gradient(T.log_joint, T.sample, T.log_q, t(phi), t(eps))),
        (ne.path_derivative_gradient(P.log_joint, P.sample, P.log_q, phi, eps),
         te.path_derivative_gradient(T.log_joint, T.sample, T.log_q, t(phi), t(eps))),
        (ne.score_function_elbo_gradient(P.log_joint, P.log_q, phi, z, baseline="leave-one-out"),
         te.score_function_elbo_gradient(T.log_joint, T.log_q, t(phi), t(z), baseline="leave-one-out")),
        (ne.score_function_elbo_gradient(P.log_joint, P.log_q, phi, z, baseline=onp.full(N, 2.0)),
         te.score_function_elbo_gradient(T.log_joint, T.log_q, t(phi), t(z), baseline=torch.full((N,), 2.0))),
        (ne.reparam_gradient(lambda zz: anp.sum(zz**2, -1), P.sample, phi, eps),
         te.reparam_gradient(lambda zz: zz.pow(2).sum(-1), T.sample, t(phi), t(eps))),
    ]
    for g_np, g_t in pairs:
        assert g_t.shape == g_np.shape and g_t.dtype == torch.float64
        onp.testing.assert_allclose(g_t.numpy(), g_np, rtol=0, atol=1e-10)
    onp.testing.assert_allclose(T.log_joint(t(z)).numpy(), P.log_joint(z), rtol=0, atol=1e-10)


def test_torch_surrogates_backpropagate_to_the_estimators():
    # training code uses the surrogates' mean; its gradient must be the mean per-sample gradient
    P = Problem()
    T = TorchProblem(P)
    rng = onp.random.default_rng(13)
    N = 32
    phi = torch.tensor(0.3 * P.phi_0 + 0.7 * P.phi_star, dtype=torch.float64, requires_grad=True)
    eps = torch.tensor(rng.normal(size=(N, P.K)), dtype=torch.float64)
    pd = te.path_derivative_surrogate(T.log_joint, T.sample, T.log_q, phi, eps).mean()
    (g,) = torch.autograd.grad(pd, phi)
    torch.testing.assert_close(g, te.path_derivative_gradient(T.log_joint, T.sample, T.log_q, phi, eps).mean(0))
    z = T.sample(phi, eps).detach()
    lq = T.log_q(phi, z)
    f = T.log_joint(z) - lq
    sf = te.score_function_surrogate(f, lq, baseline="leave-one-out").mean()
    (g,) = torch.autograd.grad(sf, phi)
    torch.testing.assert_close(
        g, te.score_function_elbo_gradient(T.log_joint, T.log_q, phi, z, baseline="leave-one-out").mean(0))
    # the surrogate does not differentiate through f: only the log q factor carries gradient
    phi2 = phi.detach().clone().requires_grad_()
    lq2 = T.log_q(phi2, z)
    (g_bad,) = torch.autograd.grad((lq2 * (T.log_joint(z) - lq2)).mean(), phi2)
    assert not torch.allclose(g, g_bad)
