"""Reparameterized samplers and their log-densities (vae_from_scratch.{numpy,torch}.reparameterization).

Oracles: scipy.stats densities, np.linalg.slogdet of the autograd Jacobian dz/deps, closed-form
moments, autograd check_grads / torch gradcheck, and numpy-vs-torch parity in float64.

Statistical tests (stated false-failure rates, two-sided normal tails, CLT approximation):
* test_full_covariance_samples_have_covariance_LLt: 6 covariance entries + 3 means, each |z| < 5
  -> at most 9 * 5.7e-7 ~ 5e-6.
* test_sampled_kl_matches_closed_form: 2 z-tests at 5 standard errors -> ~1.2e-6.
Total for this file < 1e-5.
"""

import numpy as onp
import pytest
import torch
from autograd import grad, jacobian
from autograd.test_util import check_grads
from scipy import stats

import autograd.numpy as anp
from vae_from_scratch.numpy import distributions as nd
from vae_from_scratch.numpy import reparameterization as nr
from vae_from_scratch.torch import reparameterization as tr

Z_MAX = 5.0  # two-sided P(|N(0,1)| > 5) = 5.7e-7


def _random_factor(rng, K, batch=()):
    L_prime = rng.normal(size=batch + (K, K))
    log_std = 0.4 * rng.normal(size=batch + (K,))
    return L_prime, log_std


# --- factorized Gaussian (monograph 2.36-2.44) ---------------------------------------------------


def test_diag_sample_and_log_density_match_scipy():
    rng = onp.random.default_rng(0)
    mean, log_std = rng.normal(size=4), rng.normal(size=4)
    eps = rng.normal(size=(7, 4))
    z, log_q = nr.rsample_normal_diag(mean, log_std, eps)
    assert z.shape == (7, 4) and log_q.shape == (7,)
    onp.testing.assert_allclose(z, mean + onp.exp(log_std) * eps, rtol=1e-14)
    expected = stats.multivariate_normal(mean, onp.diag(onp.exp(2 * log_std))).logpdf(z)
    onp.testing.assert_allclose(log_q, expected, rtol=1e-12)
    onp.testing.assert_allclose(log_q, nd.log_normal_diag(z, mean, log_std), rtol=1e-12)


def test_diag_log_det_equals_slogdet_of_autograd_jacobian():
    rng = onp.random.default_rng(1)
    mean, log_std = rng.normal(size=5), rng.normal(size=5)
    eps = rng.normal(size=5)
    J = jacobian(lambda e: nr.rsample_normal_diag(mean, log_std, e)[0])(eps)
    onp.testing.assert_allclose(J, onp.diag(onp.exp(log_std)), rtol=1e-14)  # K&W eq. 2.41
    sign, logabsdet = onp.linalg.slogdet(J)
    assert sign == 1.0
    onp.testing.assert_allclose(nr.log_det_jacobian_diag(log_std), logabsdet, rtol=1e-12)


def test_diag_broadcasts_batch_and_sample_axes():
    rng = onp.random.default_rng(2)
    mean, log_std = rng.normal(size=(3, 2)), rng.normal(size=(3, 2))
    eps = rng.normal(size=(5, 3, 2))
    z, log_q = nr.rsample_normal_diag(mean, log_std, eps)
    assert z.shape == (5, 3, 2) and log_q.shape == (5, 3)
    onp.testing.assert_allclose(log_q, nd.log_normal_diag(z, mean, log_std), rtol=1e-12)
    # a mean with batch axes and an event-only log_std still gives one log_q per z
    z2, log_q2 = nr.rsample_normal_diag(mean, log_std[0], eps[0, 0])
    assert z2.shape == (3, 2) and log_q2.shape == (3,)


def test_diag_gradients():
    rng = onp.random.default_rng(3)
    eps = rng.normal(size=(4, 3))
    fun = lambda p: anp.sum(nr.rsample_normal_diag(p[:3], p[3:], eps)[1]
                            + anp.sum(nr.rsample_normal_diag(p[:3], p[3:], eps)[0] ** 2, -1))
    check_grads(fun, modes=["rev"], order=2)(rng.normal(size=6))


# --- full-covariance Gaussian (monograph 2.45-2.55) ----------------------------------------------


def test_full_covariance_factor_structure():
    rng = onp.random.default_rng(4)
    L_prime, log_std = _random_factor(rng, 4)
    L, log_det = nr.full_covariance_factor(L_prime, log_std)
    onp.testing.assert_array_equal(onp.triu(L, 1), 0.0)                 # masked upper part
    onp.testing.assert_allclose(onp.diag(L), onp.exp(log_std), rtol=1e-15)  # diagonal = sigma
    onp.testing.assert_array_equal(onp.tril(L, -1), onp.tril(L_prime, -1))  # strictly lower = L'
    onp.testing.assert_allclose(log_det, onp.linalg.slogdet(L)[1], rtol=1e-12)
    mask = nr.strictly_lower_mask(4)
    onp.testing.assert_array_equal(mask, onp.tril(onp.ones((4, 4)), -1))


@pytest.mark.parametrize("K", [1, 2, 5])
def test_full_log_det_equals_slogdet_of_autograd_jacobian(K):
    rng = onp.random.default_rng(5 + K)
    L_prime, log_std = _random_factor(rng, K)
    mean, eps = rng.normal(size=K), rng.normal(size=K)
    L, log_det = nr.full_covariance_factor(L_prime, log_std)
    J = jacobian(lambda e: nr.rsample_normal_full(mean, L, e)[0])(eps)
    onp.testing.assert_allclose(J, L, rtol=1e-14)  # dz/deps = L, lower triangular (K&W eq. 2.48)
    sign, logabsdet = onp.linalg.slogdet(J)
    assert sign == 1.0
    onp.testing.assert_allclose(log_det, logabsdet, rtol=1e-12, atol=1e-12)
    onp.testing.assert_allclose(nr.log_det_jacobian_full(L), logabsdet, rtol=1e-12, atol=1e-12)


def test_full_log_density_matches_scipy_both_ways():
    rng = onp.random.default_rng(8)
    K = 3
    L_prime, log_std = _random_factor(rng, K)
    mean = rng.normal(size=K)
    L, _ = nr.full_covariance_factor(L_prime, log_std)
    eps = rng.normal(size=(6, K))
    z, log_q = nr.rsample_normal_full(mean, L, eps)
    expected = stats.multivariate_normal(mean, L @ L.T).logpdf(z)
    onp.testing.assert_allclose(log_q, expected, rtol=1e-11)
    onp.testing.assert_allclose(nr.log_normal_full(z, mean, L), expected, rtol=1e-11)


def test_full_batched_factors_broadcast():
    rng = onp.random.default_rng(9)
    K, B, S = 3, 4, 5
    L_prime, log_std = _random_factor(rng, K, (B,))
    mean = rng.normal(size=(B, K))
    L, log_det = nr.full_covariance_factor(L_prime, log_std)
    assert L.shape == (B, K, K) and log_det.shape == (B,)
    eps = rng.normal(size=(S, B, K))
    z, log_q = nr.rsample_normal_full(mean, L, eps)
    assert z.shape == (S, B, K) and log_q.shape == (S, B)
    for b in range(B):
        expected = stats.multivariate_normal(mean[b], L[b] @ L[b].T).logpdf(z[:, b])
        onp.testing.assert_allclose(log_q[:, b], expected, rtol=1e-11)
    onp.testing.assert_allclose(nr.log_normal_full(z, mean, L), log_q, rtol=1e-11)


def test_full_gradients():
    rng = onp.random.default_rng(10)
    K = 3
    eps = rng.normal(size=(4, K))
    z_fixed = rng.normal(size=(4, K))

    def fun(p):
        L, _ = nr.full_covariance_factor(anp.reshape(p[2 * K:], (K, K)), p[K:2 * K])
        z, log_q = nr.rsample_normal_full(p[:K], L, eps)
        return anp.sum(log_q) + anp.sum(z**2) + anp.sum(nr.log_normal_full(z_fixed, p[:K], L))

    check_grads(fun, modes=["rev"], order=2)(rng.normal(size=2 * K + K * K))


def test_full_covariance_samples_have_covariance_LLt():
    rng = onp.random.default_rng(11)
    K, N = 3, 200_000
    L, _ = nr.full_covariance_factor(*_random_factor(rng, K))
    mean = rng.normal(size=K)
    z, _ = nr.rsample_normal_full(mean, L, rng.normal(size=(N, K)))
    cov = L @ L.T
    # mean: z-score per coordinate
    zscore_mean = (z.mean(0) - mean) / onp.sqrt(onp.diag(cov) / N)
    assert onp.all(onp.abs(zscore_mean) < Z_MAX), zscore_mean
    # covariance entries: products d_i d_j, each an iid average with its own sample std
    d = z - mean
    for i in range(K):
        for j in range(i + 1):
            prod = d[:, i] * d[:, j]
            zscore = (prod.mean() - cov[i, j]) / (prod.std() / onp.sqrt(N))
            assert abs(zscore) < Z_MAX, (i, j, zscore)


def test_sampled_kl_matches_closed_form():
    rng = onp.random.default_rng(12)
    K, N = 3, 100_000
    mean = rng.normal(size=K)
    L, _ = nr.full_covariance_factor(*_random_factor(rng, K))
    z, log_q = nr.rsample_normal_full(mean, L, rng.normal(size=(N, K)))
    sampled = log_q - nd.log_standard_normal(z)
    zscore = (sampled.mean() - nr.kl_normal_full_standard(mean, L)) / (sampled.std() / onp.sqrt(N))
    assert abs(zscore) < Z_MAX
    # diagonal case: the full-covariance KL reduces to the package's closed form
    log_std = rng.normal(size=K)
    onp.testing.assert_allclose(nr.kl_normal_full_standard(mean, onp.diag(onp.exp(log_std))),
                                nd.kl_normal_standard(mean, log_std), rtol=1e-12)
    z, log_q = nr.rsample_normal_diag(mean, log_std, rng.normal(size=(N, K)))
    sampled = log_q - nd.log_standard_normal(z)
    zscore = (sampled.mean() - nd.kl_normal_standard(mean, log_std)) / (sampled.std() / onp.sqrt(N))
    assert abs(zscore) < Z_MAX


def test_kl_full_is_zero_at_standard_normal_and_positive_elsewhere():
    K = 4
    assert abs(nr.kl_normal_full_standard(onp.zeros(K), onp.eye(K))) < 1e-15
    rng = onp.random.default_rng(13)
    L, _ = nr.full_covariance_factor(*_random_factor(rng, K))
    assert nr.kl_normal_full_standard(rng.normal(size=K), L) > 0


# --- errors -------------------------------------------------------------------------------------


def test_errors_numpy():
    with pytest.raises(ValueError, match="lower triangular"):
        nr.rsample_normal_full(onp.zeros(2), onp.ones((2, 2)), onp.zeros(2))
    with pytest.raises(ValueError, match=r"\(\.\.\., K, K\)"):
        nr.full_covariance_factor(onp.zeros((2, 3)), onp.zeros(3))
    with pytest.raises(ValueError, match="K=2"):
        nr.full_covariance_factor(onp.zeros((2, 2)), onp.zeros(3))
    with pytest.raises(ValueError, match="event"):
        nr.rsample_normal_diag(onp.zeros(2), onp.zeros(3), onp.zeros(2))
    with pytest.raises(ValueError, match="K=3"):
        nr.log_normal_full(onp.zeros(3), onp.zeros(3), onp.eye(2))
    with pytest.raises(ValueError, match="positive integer"):
        nr.strictly_lower_mask(0)


def test_errors_torch():
    with pytest.raises(ValueError, match="lower triangular"):
        tr.rsample_normal_full(torch.zeros(2), torch.ones(2, 2), torch.zeros(2))
    with pytest.raises(ValueError, match=r"\(\.\.\., K, K\)"):
        tr.full_covariance_factor(torch.zeros(2, 3), torch.zeros(3))
    with pytest.raises(ValueError, match="K=2"):
        tr.full_covariance_factor(torch.zeros(2, 2), torch.zeros(3))
    with pytest.raises(ValueError, match="event"):
        tr.rsample_normal_diag(torch.zeros(2), torch.zeros(3), torch.zeros(2))
    with pytest.raises(ValueError, match="torch.Tensor"):
        tr.log_normal_full(torch.zeros(3), torch.zeros(3), onp.eye(3))


# --- torch: parity with numpy in float64, gradcheck, generator --------------------------------------


def _t(a):
    return torch.tensor(a, dtype=torch.float64)


def test_torch_parity_float64():
    rng = onp.random.default_rng(14)
    K, B, S = 3, 2, 4
    L_prime, log_std = _random_factor(rng, K, (B,))
    mean = rng.normal(size=(B, K))
    eps = rng.normal(size=(S, B, K))
    z_np, lq_np = nr.rsample_normal_diag(mean, log_std, eps)
    z_t, lq_t = tr.rsample_normal_diag(_t(mean), _t(log_std), eps=_t(eps))
    onp.testing.assert_allclose(z_t.numpy(), z_np, rtol=0, atol=1e-12)
    onp.testing.assert_allclose(lq_t.numpy(), lq_np, rtol=0, atol=1e-10)
    L_np, ld_np = nr.full_covariance_factor(L_prime, log_std)
    L_t, ld_t = tr.full_covariance_factor(_t(L_prime), _t(log_std))
    onp.testing.assert_allclose(L_t.numpy(), L_np, rtol=0, atol=1e-12)
    onp.testing.assert_allclose(ld_t.numpy(), ld_np, rtol=0, atol=1e-12)
    z_np, lq_np = nr.rsample_normal_full(mean, L_np, eps)
    z_t, lq_t = tr.rsample_normal_full(_t(mean), L_t, eps=_t(eps))
    onp.testing.assert_allclose(z_t.numpy(), z_np, rtol=0, atol=1e-12)
    onp.testing.assert_allclose(lq_t.numpy(), lq_np, rtol=0, atol=1e-10)
    onp.testing.assert_allclose(tr.log_normal_full(z_t, _t(mean), L_t).numpy(),
                                nr.log_normal_full(z_np, mean, L_np), rtol=0, atol=1e-10)
    onp.testing.assert_allclose(tr.kl_normal_full_standard(_t(mean), L_t).numpy(),
                                nr.kl_normal_full_standard(mean, L_np), rtol=0, atol=1e-10)
    onp.testing.assert_allclose(tr.log_det_jacobian_full(L_t).numpy(), nr.log_det_jacobian_full(L_np),
                                rtol=0, atol=1e-12)
    onp.testing.assert_array_equal(tr.strictly_lower_mask(K).numpy(), nr.strictly_lower_mask(K))


def test_torch_gradient_parity_and_gradcheck():
    rng = onp.random.default_rng(15)
    K = 3
    p0 = rng.normal(size=2 * K + K * K)
    eps = rng.normal(size=(5, K))
    z_fixed = rng.normal(size=(5, K))

    def fun_np(p):
        L, _ = nr.full_covariance_factor(anp.reshape(p[2 * K:], (K, K)), p[K:2 * K])
        z, log_q = nr.rsample_normal_full(p[:K], L, eps)
        return anp.sum(log_q * anp.sum(z, -1)) + anp.sum(nr.log_normal_full(z_fixed, p[:K], L))

    def fun_t(p):
        L, _ = tr.full_covariance_factor(p[2 * K:].reshape(K, K), p[K:2 * K])
        z, log_q = tr.rsample_normal_full(p[:K], L, eps=_t(eps))
        return (log_q * z.sum(-1)).sum() + tr.log_normal_full(_t(z_fixed), p[:K], L).sum()

    p_t = _t(p0).requires_grad_()
    (g_t,) = torch.autograd.grad(fun_t(p_t), p_t)
    onp.testing.assert_allclose(g_t.numpy(), grad(fun_np)(p0), rtol=0, atol=1e-10)
    assert torch.autograd.gradcheck(fun_t, (p_t,))

    def diag_t(p):
        z, log_q = tr.rsample_normal_diag(p[:K], p[K:2 * K], eps=_t(eps))
        return (log_q + z.pow(2).sum(-1)).sum()

    assert torch.autograd.gradcheck(diag_t, (p_t,))


def test_torch_generator_is_deterministic_and_shapes():
    mean, log_std = torch.zeros(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64)
    a = tr.rsample_normal_diag(mean, log_std, generator=torch.Generator().manual_seed(0), sample_shape=(4,))
    b = tr.rsample_normal_diag(mean, log_std, generator=torch.Generator().manual_seed(0), sample_shape=(4,))
    assert a[0].shape == (4, 3) and a[1].shape == (4,)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    L, _ = tr.full_covariance_factor(torch.randn(2, 3, 3, dtype=torch.float64,
                                                 generator=torch.Generator().manual_seed(1)),
                                     torch.zeros(2, 3, dtype=torch.float64))
    z, log_q = tr.rsample_normal_full(torch.zeros(2, 3, dtype=torch.float64), L,
                                      generator=torch.Generator().manual_seed(2), sample_shape=(5,))
    assert z.shape == (5, 2, 3) and log_q.shape == (5, 2)
    torch.testing.assert_close(tr.log_normal_full(z, torch.zeros(2, 3, dtype=torch.float64), L), log_q)


# --- validate flag: the triangularity check can be switched off (it syncs the device in torch) -----


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_validate_flag_controls_the_triangularity_check(backend):
    K = 3
    if backend == "numpy":
        mod, arr = nr, onp.asarray
    else:
        mod, arr = tr, _t
    upper = arr(onp.eye(K) + onp.triu(onp.ones((K, K)), 1))        # not lower triangular
    mean, eps = arr(onp.zeros(K)), arr(onp.ones(K))
    calls = {
        "rsample_normal_full": lambda v: (mod.rsample_normal_full(mean, upper, eps=eps, validate=v)
                                          if backend == "torch" else
                                          mod.rsample_normal_full(mean, upper, eps, validate=v)),
        "log_normal_full": lambda v: mod.log_normal_full(eps, mean, upper, validate=v),
        "log_det_jacobian_full": lambda v: mod.log_det_jacobian_full(upper, validate=v),
        "kl_normal_full_standard": lambda v: mod.kl_normal_full_standard(mean, upper, validate=v),
    }
    for name, call in calls.items():
        with pytest.raises(ValueError, match="lower triangular"):
            call(True)
        call(False)  # no check, no error: the caller vouches for L
    # shape errors are still raised without validation (they cost nothing)
    with pytest.raises(ValueError, match="K=2"):
        mod.log_normal_full(arr(onp.zeros(2)), arr(onp.zeros(2)), upper, validate=False)


def test_torch_checks_the_values_at_most_once_per_call(monkeypatch):
    # each value check is a host-device synchronization: nested calls must not repeat it, and
    # validate=False must skip it entirely
    counter = []
    original = tr._check_lower_triangular
    monkeypatch.setattr(tr, "_check_lower_triangular", lambda L: (counter.append(1), original(L))[1])
    L, _ = tr.full_covariance_factor(_t(onp.ones((3, 3))), _t(onp.zeros(3)))
    mean, eps = _t(onp.zeros(3)), _t(onp.ones((4, 3)))
    calls = [lambda v: tr.rsample_normal_full(mean, L, eps=eps, validate=v),
             lambda v: tr.log_normal_full(eps, mean, L, validate=v),
             lambda v: tr.log_det_jacobian_full(L, validate=v),
             lambda v: tr.kl_normal_full_standard(mean, L, validate=v)]
    for call in calls:
        counter.clear()
        call(True)
        assert len(counter) == 1
        counter.clear()
        call(False)
        assert len(counter) == 0


# --- inputs both backends refuse, with the same ValueError message ---------------------------------


def _full_calls(mod, arr, L, mean, eps):
    """The four functions that take a factor L, called the same way in either backend."""
    return {
        "rsample_normal_full": lambda v: (mod.rsample_normal_full(mean, L, eps=eps, validate=v)
                                          if mod is tr else mod.rsample_normal_full(mean, L, eps, validate=v)),
        "log_normal_full": lambda v: mod.log_normal_full(eps, mean, L, validate=v),
        "log_det_jacobian_full": lambda v: mod.log_det_jacobian_full(L, validate=v),
        "kl_normal_full_standard": lambda v: mod.kl_normal_full_standard(mean, L, validate=v),
    }


@pytest.mark.parametrize("bad", [0.0, onp.inf, onp.nan])
def test_a_factor_with_a_zero_or_non_finite_diagonal_is_refused_by_both_backends(bad):
    # before: torch returned NaN/inf, NumPy raised a bare "Singular matrix", the KL returned inf
    L = onp.array([[1.0, 0.0, 0.0], [0.4, bad, 0.0], [0.1, -0.2, 0.7]])
    messages = {}
    for backend, mod, arr in [("numpy", nr, onp.asarray), ("torch", tr, _t)]:
        calls = _full_calls(mod, arr, arr(L), arr(onp.zeros(3)), arr(onp.ones((2, 3))))
        for name, call in calls.items():
            with pytest.raises(ValueError, match="non-zero diagonal") as info:
                call(True)
            messages[backend, name] = str(info.value)
    assert len(set(messages.values())) == 1  # one message, word for word, in both backends


def test_a_negative_diagonal_is_still_accepted():
    # z = mu + L eps with L_jj < 0 is a valid Gaussian (covariance L L^T); log|det L| uses |L_jj|
    L = onp.array([[-1.5, 0.0], [0.3, 0.8]])
    for mod, arr in [(nr, onp.asarray), (tr, _t)]:
        value = mod.log_normal_full(arr(onp.array([0.2, -0.1])), arr(onp.zeros(2)), arr(L))
        expected = stats.multivariate_normal(onp.zeros(2), L @ L.T).logpdf([0.2, -0.1])
        assert abs(float(value) - expected) < 1e-12


def test_numpy_singular_factor_without_validation_raises_the_same_value_error():
    # validate=False skips the value checks; NumPy's solve still fails on a singular L, and then it
    # says why in the package's words instead of numpy's bare "Singular matrix"
    L = onp.array([[1.0, 0.0], [0.4, 0.0]])
    with pytest.raises(ValueError, match="non-zero diagonal"):
        nr.log_normal_full(onp.ones(2), onp.zeros(2), L, validate=False)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_factor_batch_shapes_that_do_not_broadcast_are_a_value_error(backend):
    # torch.broadcast_shapes and matmul raise RuntimeError; the package raises ValueError in both
    mod, arr = (nr, onp.asarray) if backend == "numpy" else (tr, _t)
    L = arr(onp.tile(onp.eye(2), (4, 1, 1)))                     # batch (4,)
    mean, eps = arr(onp.zeros((3, 2))), arr(onp.ones((3, 2)))    # batch (3,)
    for name, call in _full_calls(mod, arr, L, mean, eps).items():
        if name == "log_det_jacobian_full":
            continue  # takes L alone: nothing to broadcast with
        with pytest.raises(ValueError, match="batch shapes do not broadcast"):
            call(True)
        with pytest.raises(ValueError, match="batch shapes do not broadcast"):
            call(False)  # shapes are free to check: always checked


def test_torch_factor_and_mean_of_different_dtypes_are_a_value_error():
    L = torch.eye(2, dtype=torch.float32)
    with pytest.raises(ValueError, match="same dtype"):
        tr.log_normal_full(torch.ones(2, dtype=torch.float64), torch.zeros(2, dtype=torch.float64), L)
    with pytest.raises(ValueError, match="same dtype"):
        tr.rsample_normal_full(torch.zeros(2, dtype=torch.float64), L, eps=torch.ones(2, dtype=torch.float64))


@pytest.mark.parametrize("bad", [-onp.inf, onp.inf, onp.nan])
def test_rsample_normal_diag_refuses_a_non_finite_log_std_in_both_backends(bad):
    log_std = onp.array([0.1, bad])
    messages = []
    for mod, arr in [(nr, onp.asarray), (tr, _t)]:
        with pytest.raises(ValueError, match="log_std must be finite") as info:
            mod.rsample_normal_diag(arr(onp.zeros(2)), arr(log_std), arr(onp.ones(2)))
        messages.append(str(info.value))
    assert messages[0] == messages[1]
    # validate=False skips the check (the training hot path): no error, the arithmetic goes through
    z, _ = tr.rsample_normal_diag(_t(onp.zeros(2)), _t(log_std), _t(onp.ones(2)), validate=False)
    assert z.shape == (2,)
