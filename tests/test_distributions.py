"""vae_from_scratch.{numpy,torch}.distributions: oracles, gradients, parity, stability, errors, sampling.

* oracles: scipy.stats (norm.logpdf, bernoulli.logpmf) and KL by numerical integration (scipy quad);
* gradients: autograd ``check_grads`` (forward and reverse mode, order 2), torch ``gradcheck`` and
  ``gradgradcheck`` in float64;
* parity: numpy and torch on the same random broadcast float64 inputs, values and gradients, < 1e-12;
* stability: finite values and gradients at logits +-1e4 and log-std +-30;
* errors: clear ValueErrors for mismatched event sizes, non-broadcastable batches, non-binary
  Bernoulli targets, complex / str dtypes and scalars;
* sampling: ``eps`` is used exactly; moments of generated samples by z-tests at 5 standard errors
  (two-sided false-failure rate about 5.7e-7 each; 8 such tests here, < 5e-6 in total).
"""

import numpy as np
import pytest
import torch
from autograd import grad
from autograd.test_util import check_grads
from scipy import integrate, special, stats
from torch.autograd import gradcheck, gradgradcheck

from vae_from_scratch.numpy import distributions as nd
from vae_from_scratch.torch import distributions as td

BACKENDS = ["numpy", "torch"]
DIST = {"numpy": nd, "torch": td}
PARITY_TOL = 1e-12


def t64(a):
    return torch.as_tensor(np.asarray(a), dtype=torch.float64)


def inputs(name, rng, batch=(4, 3), event=5):
    """Random arguments for ``name``, deliberately broadcast: some have leading batch axes, some not."""
    S, B = batch
    full, row, one = (S, B, event), (B, event), (1, event)
    normal = lambda shape, scale=1.0: scale * rng.standard_normal(shape)
    if name == "softplus":
        return (rng.uniform(-45, 45, size=full),)
    if name == "log_standard_normal":
        return (normal(full, 2.0),)
    if name == "log_normal_diag":
        return normal(full, 2.0), normal(row), normal(one, 0.7)
    if name == "bernoulli_log_likelihood":
        return rng.integers(0, 2, size=row).astype(float), normal(full, 3.0)
    if name in ("kl_normal_standard_per_dim", "kl_normal_standard"):
        return normal(row), normal(full, 0.7)
    if name == "kl_normal_diag":
        return normal(full), normal(row, 0.7), normal(one), normal(row, 0.7)
    if name == "sample_normal_diag":
        return normal(row), normal(one, 0.7), normal(full)
    raise KeyError(name)


FUNCTIONS = ["softplus", "log_standard_normal", "log_normal_diag", "bernoulli_log_likelihood",
             "kl_normal_standard_per_dim", "kl_normal_standard", "kl_normal_diag", "sample_normal_diag"]
# Which arguments are differentiable (the Bernoulli targets x are data, not parameters).
DIFF_ARGS = {name: None for name in FUNCTIONS}
DIFF_ARGS["bernoulli_log_likelihood"] = (1,)


def test_both_backends_have_the_same_names():
    public = lambda m: {n for n in dir(m) if not n.startswith("_") and callable(getattr(m, n))
                        and getattr(getattr(m, n), "__module__", None) == m.__name__}
    assert public(nd) == public(td) == set(FUNCTIONS)


# --- oracles ---------------------------------------------------------------------------------------


def kl_by_quadrature(mean_q, std_q, mean_p, std_p):
    """KL(N(mean_q, std_q^2) || N(mean_p, std_p^2)) = E_q[log q - log p] by adaptive quadrature."""
    def integrand(z):
        log_q = stats.norm.logpdf(z, mean_q, std_q)
        return np.exp(log_q) * (log_q - stats.norm.logpdf(z, mean_p, std_p))
    value, error = integrate.quad(integrand, mean_q - 14 * std_q, mean_q + 14 * std_q, points=[mean_q],
                                  epsabs=1e-13, epsrel=1e-11, limit=200)
    assert error < 1e-9
    return value


def oracle(name, *args):
    if name == "softplus":
        (x,) = args
        return np.log1p(np.exp(x))
    if name == "log_standard_normal":
        return stats.norm.logpdf(args[0]).sum(-1)
    if name == "log_normal_diag":
        x, mean, log_std = args
        return stats.norm.logpdf(x, mean, np.exp(log_std)).sum(-1)
    if name == "bernoulli_log_likelihood":
        x, logits = args
        return stats.bernoulli.logpmf(x, special.expit(logits)).sum(-1)
    if name == "kl_normal_standard_per_dim":
        mean, log_std = np.broadcast_arrays(*args)
        return np.vectorize(lambda m, s: kl_by_quadrature(m, np.exp(s), 0.0, 1.0))(mean, log_std)
    if name == "kl_normal_standard":
        return oracle("kl_normal_standard_per_dim", *args).sum(-1)
    if name == "kl_normal_diag":
        arrays = np.broadcast_arrays(*args)
        per_dim = np.vectorize(lambda mq, sq, mp, sp: kl_by_quadrature(mq, np.exp(sq), mp, np.exp(sp)))
        return per_dim(*arrays).sum(-1)
    if name == "sample_normal_diag":
        mean, log_std, eps = args
        return mean + np.exp(log_std) * eps
    raise KeyError(name)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", FUNCTIONS)
def test_against_oracle(name, backend):
    rng = np.random.default_rng(FUNCTIONS.index(name))
    batch = (2, 3) if "kl" in name else (4, 3)  # quadrature is slow-ish: fewer points
    args = inputs(name, rng, batch=batch, event=4)
    if name == "softplus":
        args = (np.clip(args[0], -30, 30),)  # log1p(exp(x)) is itself exact only where exp(x) is finite
    expected = oracle(name, *args)
    if backend == "numpy":
        value = getattr(nd, name)(*args)
    else:
        value = getattr(td, name)(*map(t64, args)).numpy()
    assert value.shape == expected.shape
    np.testing.assert_allclose(value, expected, rtol=1e-10, atol=1e-10)


def test_kl_identities():
    rng = np.random.default_rng(7)
    mean, log_std = inputs("kl_normal_standard", rng)
    for d in (nd, td):
        m, s = (mean, log_std) if d is nd else (t64(mean), t64(log_std))
        zeros = m * 0
        total = np.asarray(d.kl_normal_standard(m, s))
        np.testing.assert_allclose(total, np.asarray(d.kl_normal_standard_per_dim(m, s)).sum(-1), rtol=1e-13)
        np.testing.assert_allclose(total, np.asarray(d.kl_normal_diag(m, s, zeros, zeros)), rtol=1e-13)
        assert np.all(total >= 0)
        np.testing.assert_allclose(np.asarray(d.kl_normal_diag(m, s, m, s)), 0.0, atol=1e-14)


# --- gradients -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", FUNCTIONS)
def test_autograd_check_grads(name):
    rng = np.random.default_rng(11)
    args = inputs(name, rng, batch=(2, 3), event=3)
    if name == "softplus":
        args = (np.clip(args[0], -5, 5),)  # finite differences need curvature on the scale of the step
    diff = DIFF_ARGS[name] or tuple(range(len(args)))

    def f(*params):
        full = list(args)
        for i, p in zip(diff, params):
            full[i] = p
        return getattr(nd, name)(*full)

    check_grads(f, modes=["fwd", "rev"], order=2)(*[args[i] for i in diff])


@pytest.mark.parametrize("name", FUNCTIONS)
def test_torch_gradcheck(name):
    rng = np.random.default_rng(12)
    args = [t64(a) for a in inputs(name, rng, batch=(2, 3), event=3)]
    if name == "softplus":
        args = [args[0].clamp(-5, 5)]
    diff = DIFF_ARGS[name] or tuple(range(len(args)))
    for i in diff:
        args[i].requires_grad_(True)
    assert gradcheck(getattr(td, name), tuple(args))
    assert gradgradcheck(getattr(td, name), tuple(args))


# --- parity -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize("seed", range(3))
def test_numpy_torch_parity_values_and_gradients(name, seed):
    rng = np.random.default_rng(100 + seed)
    args = inputs(name, rng)
    value_np = getattr(nd, name)(*args)
    targs = [t64(a) for a in args]
    diff = DIFF_ARGS[name] or tuple(range(len(args)))
    for i in diff:
        targs[i].requires_grad_(True)
    value_t = getattr(td, name)(*targs)
    assert value_t.dtype == torch.float64 and value_t.shape == value_np.shape
    scale = np.maximum(1.0, np.abs(value_np))
    assert np.max(np.abs(value_np - value_t.detach().numpy()) / scale) < PARITY_TOL

    # Gradients of a random linear functional of the output, with respect to every parameter.
    weights = rng.standard_normal(value_np.shape)
    value_t.backward(t64(weights))
    for i in diff:
        def functional(a, i=i):
            full = list(args)
            full[i] = a
            return np.sum(weights * getattr(nd, name)(*full))
        g_np = grad(functional)(args[i])
        g_t = targs[i].grad.numpy()
        assert g_t.shape == g_np.shape == args[i].shape
        assert np.max(np.abs(g_np - g_t) / np.maximum(1.0, np.abs(g_np))) < PARITY_TOL


# --- stability at extreme inputs ------------------------------------------------------------------

EXTREME_LOGITS = np.array([[1e4, -1e4, 1e4, -1e4, 0.0]])
EXTREME_X = np.array([[1.0, 0.0, 0.0, 1.0, 1.0]])
EXTREME_LOG_STD = np.array([[30.0, -30.0, 30.0, -30.0, 0.0]])


def extreme_cases():
    mean = np.array([[3.0, -2.0, 0.0, 0.5, 1.0]])
    swapped = EXTREME_LOG_STD[:, [1, 0, 3, 2, 4]]  # q and p at opposite extremes
    return {
        "bernoulli_log_likelihood": (EXTREME_X, EXTREME_LOGITS),
        "softplus": (EXTREME_LOGITS,),
        "log_normal_diag": (mean + 1.0, mean, EXTREME_LOG_STD),
        "kl_normal_standard_per_dim": (mean, EXTREME_LOG_STD),
        "kl_normal_standard": (mean, EXTREME_LOG_STD),
        "kl_normal_diag": (mean, EXTREME_LOG_STD, -mean, swapped),
        "sample_normal_diag": (mean, EXTREME_LOG_STD, np.ones_like(mean)),
    }


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", sorted(extreme_cases()))
def test_finite_values_and_gradients_at_extremes(name, backend):
    args = extreme_cases()[name]
    diff = DIFF_ARGS[name] or tuple(range(len(args)))
    if backend == "numpy":
        value = getattr(nd, name)(*args)
        grads = []
        for i in diff:
            def total(a, i=i):
                full = list(args)
                full[i] = a
                return np.sum(getattr(nd, name)(*full))
            grads.append(grad(total)(args[i]))
    else:
        targs = [t64(a) for a in args]
        for i in diff:
            targs[i].requires_grad_(True)
        out = getattr(td, name)(*targs)
        out.sum().backward()
        value, grads = out.detach().numpy(), [targs[i].grad.numpy() for i in diff]
    assert np.all(np.isfinite(value)), value
    for g in grads:
        assert np.all(np.isfinite(g)), g


@pytest.mark.parametrize("backend", BACKENDS)
def test_bernoulli_extreme_values_are_right(backend):
    """x l - softplus(l) at |l| = 1e4: 0 when the logit agrees with x, -1e4 when it disagrees."""
    d = DIST[backend]
    x, logits = (EXTREME_X, EXTREME_LOGITS) if backend == "numpy" else (t64(EXTREME_X), t64(EXTREME_LOGITS))
    per_pixel = [float(np.asarray(d.bernoulli_log_likelihood(x[:, j:j + 1], logits[:, j:j + 1]))[0])
                 for j in range(4)]
    assert per_pixel == [0.0, 0.0, -1e4, -1e4]


@pytest.mark.parametrize("name", ["bernoulli_log_likelihood", "log_normal_diag", "kl_normal_standard",
                                  "sample_normal_diag"])
def test_torch_float32_finite_at_extremes(name):
    """float32 too (kl_normal_diag is excluded: with log-stds 30 and -30 the true value, ~e^120, exceeds
    float32's range)."""
    targs = [torch.as_tensor(a, dtype=torch.float32) for a in extreme_cases()[name]]
    diff = DIFF_ARGS[name] or tuple(range(len(targs)))
    for i in diff:
        targs[i].requires_grad_(True)
    out = getattr(td, name)(*targs)
    out.sum().backward()
    assert torch.isfinite(out).all()
    for i in diff:
        assert torch.isfinite(targs[i].grad).all()


# --- errors -------------------------------------------------------------------------------------


def call(backend, name, *args):
    convert = (lambda a: a) if backend == "numpy" else (
        lambda a: a if isinstance(a, (str, list)) or a is None else torch.as_tensor(np.asarray(a)))
    return getattr(DIST[backend], name)(*map(convert, args))


z3, z4 = np.zeros((2, 3)), np.zeros((2, 4))
ERROR_CASES = {
    "event size, log_normal_diag": (("log_normal_diag", z3, z4, z3), "event"),
    "event size, bernoulli": (("bernoulli_log_likelihood", z3, z4), "event"),
    "event size, kl_normal_diag": (("kl_normal_diag", z3, z3, z3, z4), "event"),
    "event size, kl_normal_standard": (("kl_normal_standard", z3, z4), "event"),
    "event size, sample eps": (("sample_normal_diag", z3, z3, z4), "event"),
    "batch, log_normal_diag": (("log_normal_diag", np.zeros((3, 2)), np.zeros((4, 2)), np.zeros(2)), "broadcast"),
    "batch, kl_normal_diag": (("kl_normal_diag", z3, np.zeros((5, 3)), z3, z3), "broadcast"),
    "batch, sample eps vs log_std": (("sample_normal_diag", np.zeros((1, 3)), np.zeros((3, 3)),
                                      np.zeros((4, 3))), "broadcast"),
    "bernoulli x = 0.5": (("bernoulli_log_likelihood", np.array([0.0, 0.5]), np.zeros(2)), "0 and 1"),
    "bernoulli x = 2": (("bernoulli_log_likelihood", np.array([2.0, 1.0]), np.zeros(2)), "0 and 1"),
    "bernoulli x = -1": (("bernoulli_log_likelihood", np.array([-1.0, 1.0]), np.zeros(2)), "0 and 1"),
    "bernoulli x = nan": (("bernoulli_log_likelihood", np.array([np.nan, 1.0]), np.zeros(2)), "0 and 1"),
    "complex, log_standard_normal": (("log_standard_normal", np.ones(3, complex)), "real"),
    "complex, log_normal_diag mean": (("log_normal_diag", z3, z3 + 0j, z3), "real"),
    "complex, bernoulli logits": (("bernoulli_log_likelihood", np.ones(3), np.ones(3, complex)), "real"),
    "scalar, log_standard_normal": (("log_standard_normal", np.float64(1.0)), "scalar"),
    "scalar, log_normal_diag": (("log_normal_diag", np.array(0.0), np.zeros(1), np.zeros(1)), "scalar"),
    "scalar, kl_normal_standard": (("kl_normal_standard", np.array(0.0), np.array(0.0)), "scalar"),
    "scalar, sample": (("sample_normal_diag", np.array(0.0), np.array(0.0), np.array(0.0)), "scalar"),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", sorted(ERROR_CASES))
def test_clear_value_errors(case, backend):
    (name, *args), words = ERROR_CASES[case]
    with pytest.raises(ValueError, match=words):
        call(backend, name, *args)


@pytest.mark.parametrize("bad", [np.array(["a", "b"]), ["a", "b"], [1j, 2j], [None, None]])
def test_numpy_rejects_non_real_dtypes(bad):
    with pytest.raises(ValueError, match="real-valued"):
        nd.log_standard_normal(bad)
    with pytest.raises(ValueError, match="real-valued"):
        nd.kl_normal_standard(np.zeros(2), bad)


def test_numpy_accepts_lists_and_integers():
    np.testing.assert_allclose(nd.log_standard_normal([0, 1]), stats.norm.logpdf([0, 1]).sum())
    np.testing.assert_allclose(nd.bernoulli_log_likelihood(np.array([True, False]), [0.0, 0.0]), 2 * np.log(0.5))


def test_torch_rejects_non_tensors_and_integer_logits():
    with pytest.raises(ValueError, match="torch.Tensor"):
        td.log_standard_normal("abc")
    with pytest.raises(ValueError, match="torch.Tensor"):
        td.log_normal_diag(np.zeros(2), torch.zeros(2), torch.zeros(2))
    with pytest.raises(ValueError, match="floating-point"):
        td.bernoulli_log_likelihood(torch.tensor([1, 0]), torch.tensor([2, -1]))
    value = td.bernoulli_log_likelihood(torch.tensor([True, False]), torch.zeros(2, dtype=torch.float64))
    assert value.dtype == torch.float64 and abs(float(value) - 2 * np.log(0.5)) < 1e-15


# --- reparameterized sampling -----------------------------------------------------------------------


def test_sample_uses_eps_exactly_and_broadcasts():
    rng = np.random.default_rng(5)
    mean, log_std, eps = inputs("sample_normal_diag", rng)
    z = nd.sample_normal_diag(mean, log_std, eps)
    assert z.shape == eps.shape == (4, 3, 5)
    np.testing.assert_array_equal(z, mean + np.exp(log_std) * eps)
    zt = td.sample_normal_diag(t64(mean), t64(log_std), eps=t64(eps))
    np.testing.assert_array_equal(zt.numpy(), (t64(mean) + torch.exp(t64(log_std)) * t64(eps)).numpy())
    np.testing.assert_allclose(zt.numpy(), z, rtol=1e-15, atol=1e-15)


def test_torch_sample_with_generator_is_reproducible_and_reparameterized():
    mean, log_std = t64(np.zeros((3, 2)) + 1.0), t64(np.full((1, 2), -0.5))
    a = td.sample_normal_diag(mean, log_std, generator=torch.Generator().manual_seed(3), sample_shape=(7,))
    b = td.sample_normal_diag(mean, log_std, generator=torch.Generator().manual_seed(3), sample_shape=(7,))
    assert a.shape == (7, 3, 2) and a.dtype == torch.float64
    assert torch.equal(a, b)
    eps = torch.randn((7, 3, 2), generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    assert torch.equal(a, mean + torch.exp(log_std) * eps)
    c = td.sample_normal_diag(mean, log_std, generator=torch.Generator().manual_seed(4), sample_shape=(7,))
    assert not torch.equal(a, c)


MOMENT_MEAN = np.array([1.5, -0.5])
MOMENT_LOG_STD = np.log(np.array([0.5, 2.0]))


def assert_normal_moments(z):
    """Per dimension: sample mean and variance within 5 standard errors of mu and sigma^2.

    SE(mean) = sigma / sqrt(n); SE(variance) = sigma^2 sqrt(2 / (n - 1)) for normal data.
    4 z-tests, 2.3e-6 false-failure rate in total.
    """
    n = z.shape[0]
    sigma2 = np.exp(2 * MOMENT_LOG_STD)
    assert np.all(np.abs(z.mean(0) - MOMENT_MEAN) < 5 * np.sqrt(sigma2 / n)), z.mean(0)
    assert np.all(np.abs(z.var(0, ddof=1) - sigma2) < 5 * sigma2 * np.sqrt(2 / (n - 1))), z.var(0, ddof=1)


def test_sample_moments_numpy():
    rng = np.random.default_rng(21)
    n = 200_000
    assert_normal_moments(nd.sample_normal_diag(MOMENT_MEAN, MOMENT_LOG_STD, rng.standard_normal((n, 2))))


def test_sample_moments_torch_generator():
    z = td.sample_normal_diag(t64(MOMENT_MEAN), t64(MOMENT_LOG_STD), generator=torch.Generator().manual_seed(22),
                              sample_shape=(200_000,))
    assert_normal_moments(z.numpy())


def test_torch_bernoulli_validate_flag_controls_only_the_binary_check():
    """validate=False (used on the training hot path) skips the 0/1 check, nothing else."""
    x = torch.tensor([[0.0, 1.0, 0.5]], dtype=torch.float64)
    logits = torch.tensor([[0.3, -2.0, 1.5]], dtype=torch.float64)
    with pytest.raises(ValueError, match="only 0 and 1"):
        td.bernoulli_log_likelihood(x, logits)
    expected = (x * logits - torch.nn.functional.softplus(logits)).sum(-1)
    torch.testing.assert_close(td.bernoulli_log_likelihood(x, logits, validate=False), expected)
    with pytest.raises(ValueError, match="event"):
        td.bernoulli_log_likelihood(x, logits[:, :2], validate=False)


@pytest.mark.parametrize("bad", [-np.inf, np.inf, np.nan])
def test_log_normal_diag_refuses_a_non_finite_log_std_in_both_backends(bad):
    # before: log_std = -inf returned NaN ((x - mean) * exp(inf) = 0 * inf)
    x, mean, log_std = np.array([0.3, 0.0]), np.zeros(2), np.array([0.2, bad])
    with pytest.raises(ValueError, match="log_std must be finite") as np_error:
        nd.log_normal_diag(x, mean, log_std)
    t = lambda a: torch.tensor(a, dtype=torch.float64)  # noqa: E731
    with pytest.raises(ValueError, match="log_std must be finite") as torch_error:
        td.log_normal_diag(t(x), t(mean), t(log_std))
    assert str(np_error.value) == str(torch_error.value)  # the same message in both backends


@pytest.mark.filterwarnings("ignore:invalid value encountered")
def test_log_normal_diag_validate_flag_controls_only_the_finiteness_check():
    """validate=False (the training hot path: no host sync) skips the value check, not the shapes."""
    x, mean, log_std = torch.zeros(1, 2), torch.zeros(1, 2), torch.tensor([[0.0, -float("inf")]])
    assert torch.isnan(td.log_normal_diag(x, mean, log_std, validate=False)).all()
    assert np.isnan(nd.log_normal_diag(x.numpy(), mean.numpy(), log_std.numpy(), validate=False)).all()
    with pytest.raises(ValueError, match="event"):
        td.log_normal_diag(x, mean[:, :1].expand(1, 3), log_std, validate=False)
    finite = torch.tensor([[0.5, -30.0]], dtype=torch.float64)
    torch.testing.assert_close(td.log_normal_diag(x.double(), mean.double(), finite, validate=False),
                               td.log_normal_diag(x.double(), mean.double(), finite))


def test_training_objectives_never_run_the_host_syncing_value_check(monkeypatch):
    """The VAE's ELBO and IWAE objectives (the training hot path) pass validate=False."""
    from vae_from_scratch.torch import vae as tvae

    calls = []
    monkeypatch.setattr(td, "_check_finite_log_std", lambda log_std: calls.append(1))
    torch.manual_seed(0)
    model = tvae.VAE(6, (5,), 2)
    x = (torch.rand(4, 6, generator=torch.Generator().manual_seed(1)) < 0.5).float()
    model.log_weights(x, k=3, generator=torch.Generator().manual_seed(2))
    model.iwae(x, k=3, generator=torch.Generator().manual_seed(3))
    model.elbo(x, generator=torch.Generator().manual_seed(4))
    assert calls == []
