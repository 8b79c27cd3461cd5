"""The VAE of chapter 5: NumPy/autograd reference and the PyTorch module, checked against each other.

False-failure budget: the one statistical test is a z-test at 5 standard errors (two-sided,
about 6e-7); the rest is deterministic.
"""

import numpy as np
import pytest
import torch

from vae_from_scratch.torch.objectives import make_objective
from autograd.test_util import check_grads

from vae_from_scratch.numpy import distributions as nd
from vae_from_scratch.numpy import vae as nvae
from vae_from_scratch.torch import vae as tvae

D, H, K = 12, (9, 7), 3


@pytest.fixture
def setup():
    rng = np.random.default_rng(0)
    params = nvae.init_vae(rng, D, H, K)
    x = (rng.random((5, D)) < 0.4).astype(float)
    return rng, params, x


def test_shapes_and_layout(setup):
    rng, params, x = setup
    assert [W.shape for W, _ in params["encoder"]] == [(D, 9), (9, 7), (7, 2 * K)]
    assert [W.shape for W, _ in params["decoder"]] == [(K, 7), (7, 9), (9, D)]
    mean, log_std = nvae.encode(params, x)
    assert mean.shape == log_std.shape == (5, K)
    assert nvae.decode(params, mean).shape == (5, D)
    assert nvae.elbo(params, x, rng.standard_normal((5, K))).shape == (5,)
    assert nvae.elbo(params, x, rng.standard_normal((4, 5, K))).shape == (5,)
    assert nvae.log_weights(params, x, rng.standard_normal((4, 5, K))).shape == (4, 5)
    assert nvae.latent_dim_of(params) == K


def test_elbo_is_reconstruction_minus_kl(setup):
    """The estimator spelled out by hand: log p(x|z) at z = mu + sigma*eps, minus the closed-form KL."""
    rng, params, x = setup
    eps = rng.standard_normal((5, K))
    out = nvae.mlp(params["encoder"], x)
    mean, log_std = out[:, :K], out[:, K:]
    z = mean + np.exp(log_std) * eps
    logits = nvae.mlp(params["decoder"], z)
    p = 1 / (1 + np.exp(-logits))
    recon = np.sum(x * np.log(p) + (1 - x) * np.log(1 - p), axis=1)
    kl = np.sum(0.5 * (mean**2 + np.exp(2 * log_std) - 1) - log_std, axis=1)
    np.testing.assert_allclose(nvae.elbo(params, x, eps), recon - kl, rtol=1e-10)


def test_closed_form_kl_and_sampled_kl_estimate_the_same_elbo(setup):
    """E_eps[elbo(eps)] = E_eps[log_weights(eps)]: z-test on the difference of the two estimators."""
    rng, params, x = setup
    eps = rng.standard_normal((20000, 5, K))
    mean, log_std = nvae.encode(params, x)
    closed_form = (nd.bernoulli_log_likelihood(x, nvae.decode(params, nd.sample_normal_diag(mean, log_std, eps)))
                   - nd.kl_normal_standard(mean, log_std))  # (S, B), one closed-form-KL estimate per sample
    np.testing.assert_allclose(nvae.elbo(params, x, eps), closed_form.mean(axis=0), rtol=1e-12)
    per_sample = closed_form - nvae.log_weights(params, x, eps)
    se = per_sample.std(axis=0) / np.sqrt(len(eps))
    assert np.all(np.abs(per_sample.mean(axis=0)) < 5 * se), (per_sample.mean(0), se)


def test_elbo_gradient_matches_finite_differences(setup):
    rng, params, x = setup
    eps = rng.standard_normal((2, 5, K))
    check_grads(lambda p: nvae.minibatch_elbo(p, x, eps), modes=["rev"], order=1)(params)


def test_sgd_step_ascends_the_minibatch_elbo(setup):
    """A small step along the gradient raises the objective (fixed noise): first-order ascent."""
    rng, params, x = setup
    eps = rng.standard_normal((5, K))
    before = nvae.minibatch_elbo(params, x, eps)
    after = nvae.minibatch_elbo(nvae.sgd_step(params, x, eps, lr=1e-3), x, eps)
    assert after > before
    worse = nvae.minibatch_elbo(nvae.sgd_step(params, x, eps, lr=-1e-3), x, eps)
    assert worse < before


def test_adam_update_matches_torch_adam(setup):
    """Our few-line Adam equals torch.optim.Adam(maximize=True) on the same gradients, three steps."""
    rng, params, _ = setup
    flat = np.concatenate([a.ravel() for layer in params["encoder"] + params["decoder"] for a in layer])
    t = torch.tensor(flat, requires_grad=True)
    opt = torch.optim.Adam([t], lr=0.01, maximize=True)
    state = nvae.adam_init(params)
    for _ in range(3):
        grads = nvae._elbo_grad(params, (rng.random((4, D)) < 0.5).astype(float),
                                rng.standard_normal((4, K)), "tanh")[1]
        g = np.concatenate([a.ravel() for layer in grads["encoder"] + grads["decoder"] for a in layer])
        params, state = nvae.adam_update(params, grads, state, lr=0.01)
        t.grad = torch.tensor(g)
        opt.step()
    ours = np.concatenate([a.ravel() for layer in params["encoder"] + params["decoder"] for a in layer])
    np.testing.assert_allclose(ours, t.detach().numpy(), rtol=1e-9, atol=1e-12)


def test_aevb_training_raises_the_elbo_on_digits():
    from vae_from_scratch.data import load_binarized_digits

    data = load_binarized_digits()[:300].astype(float)
    rng = np.random.default_rng(1)
    params = nvae.init_vae(rng, 64, (32,), 4)
    eps = np.random.default_rng(2).standard_normal((8, 300, 4))
    start = np.mean(nvae.elbo(params, data, eps))
    params, state, history = nvae.train(params, data, rng, epochs=5, batch_size=50, lr=3e-3)
    assert len(history) == 30 and state["t"] == 30
    assert np.mean(nvae.elbo(params, data, eps)) > start + 5.0


# --- PyTorch ----------------------------------------------------------------------------------------


def _torch64(params):
    with torch.random.fork_rng():
        model = tvae.VAE.from_numpy_params(params).double()
    return model.load_numpy_params(params)


def test_numpy_torch_parity_float64(setup):
    rng, params, x = setup
    model = _torch64(params)
    eps = rng.standard_normal((3, 5, K))
    xt, et = torch.tensor(x), torch.tensor(eps)
    m_np, s_np = nvae.encode(params, x)
    m_t, s_t = model.encode(xt)
    np.testing.assert_allclose(m_t.detach().numpy(), m_np, rtol=0, atol=1e-12)
    np.testing.assert_allclose(s_t.detach().numpy(), s_np, rtol=0, atol=1e-12)
    np.testing.assert_allclose(tvae.elbo(model, xt, eps=et).detach().numpy(),
                               nvae.elbo(params, x, eps), rtol=1e-12)
    np.testing.assert_allclose(tvae.log_weights(model, xt, eps=et).detach().numpy(),
                               nvae.log_weights(params, x, eps), rtol=1e-12)
    # gradients of the minibatch ELBO, layer by layer
    grads_np = nvae._elbo_grad(params, x, eps, "tanh")[1]
    tvae.minibatch_elbo(model, xt, eps=et).backward()
    lin = model.linear_layers()["encoder"] + model.linear_layers()["decoder"]
    for m, (gW, gb) in zip(lin, grads_np["encoder"] + grads_np["decoder"]):
        np.testing.assert_allclose(m.weight.grad.numpy().T, gW, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(m.bias.grad.numpy(), gb, rtol=1e-9, atol=1e-12)


def test_numpy_params_round_trip(setup):
    _, params, _ = setup
    back = _torch64(params).numpy_params()
    for (W, b), (W2, b2) in zip(params["encoder"] + params["decoder"], back["encoder"] + back["decoder"]):
        np.testing.assert_array_equal(W, W2)
        np.testing.assert_array_equal(b, b2)


def test_load_numpy_params_rejects_wrong_shapes(setup):
    _, params, _ = setup
    with pytest.raises(ValueError, match="does not fit"):
        tvae.VAE(D, (9, 8), K).load_numpy_params(params)
    with pytest.raises(ValueError, match="layers"):
        tvae.VAE(D, (9,), K).load_numpy_params(params)


def test_torch_objectives_shapes_and_relations():
    torch.manual_seed(0)
    model = tvae.VAE(20, (16,), 4).double()
    x = (torch.rand(6, 20, dtype=torch.float64) < 0.3).double()
    g = torch.Generator().manual_seed(0)
    assert model.elbo(x, generator=g).shape == (6,)
    assert model.log_weights(x, k=7, generator=g).shape == (7, 6)
    eps = torch.randn(1, 6, 4, generator=g, dtype=torch.float64)
    # IWAE with k=1 is the single-sample ELBO with the KL sampled
    torch.testing.assert_close(model.iwae(x, eps=eps), model.log_weights(x, eps=eps)[0])
    # with the same samples, logmeanexp >= mean (Jensen, exactly)
    eps = torch.randn(50, 6, 4, generator=g, dtype=torch.float64)
    assert torch.all(model.iwae(x, eps=eps) >= model.log_weights(x, eps=eps).mean(0))
    surrogate, bound = make_objective("iwae")(model, x, g, 0.0)
    assert bound.shape == (6,) and surrogate.shape == ()
    torch.testing.assert_close(surrogate, bound.mean())
    with pytest.raises(ValueError, match="objective"):
        make_objective("kl")
    with pytest.raises(ValueError, match="eps"):
        model.log_weights(x, eps=eps[0])


def test_build_vae_presets_and_errors():
    burda = tvae.build_vae(784, "burda")
    assert burda.hidden == (200, 200) and burda.latent_dim == 50 and burda.activation == "tanh"
    sizes = [m.weight.shape for m in burda.linear_layers()["encoder"]]
    assert sizes == [(200, 784), (200, 200), (100, 200)]
    assert isinstance(burda.trunk[1], torch.nn.Tanh) and isinstance(burda.trunk[-1], torch.nn.Tanh)
    custom = tvae.build_vae(64, "small", hidden=[32, 8], latent_dim=2, activation="relu")
    assert custom.hidden == (32, 8) and custom.latent_dim == 2
    assert isinstance(custom.decoder.net[1], torch.nn.ReLU)
    with pytest.raises(ValueError, match="posterior must be one of"):
        tvae.build_vae(64, "small", posterior="gaussian-mixture")
    with pytest.raises(ValueError, match="decoder must be one of"):
        tvae.build_vae(64, "small", decoder="pixelcnn")
    with pytest.raises(ValueError, match="arch"):
        tvae.build_vae(64, "resnet")
    with pytest.raises(ValueError, match="activation"):
        tvae.VAE(64, (8,), 2, activation="gelu")


def test_sampling_shapes_and_values():
    model = tvae.VAE(10, (8,), 2)
    x, probs = model.sample(7, generator=torch.Generator().manual_seed(0))
    assert x.shape == probs.shape == (7, 10)
    assert set(x.unique().tolist()) <= {0.0, 1.0} and torch.all((probs > 0) & (probs < 1))


def test_objective_does_not_synchronize_with_the_host(monkeypatch):
    """No .item(), bool() or float() on a tensor inside the objective and its backward pass: each
    would make the host wait for the device at every step (the 0/1 check of the public Bernoulli
    log-likelihood does; the model uses an unchecked one and the training loop checks the data once)."""
    models = [tvae.VAE(20, (16,), 4, posterior=name) for name in sorted(tvae.POSTERIORS)]
    x = (torch.rand(6, 20) < 0.3).float()

    def forbidden(*args, **kwargs):
        raise AssertionError("host synchronization inside the objective")

    for name in ("item", "__bool__", "__float__", "__int__", "tolist"):
        monkeypatch.setattr(torch.Tensor, name, forbidden)
    for model in models:             # every posterior part: diagonal, full covariance, IAF
        for name in ("elbo", "iwae"):
            surrogate, _ = make_objective(name)(model, x, torch.Generator().manual_seed(0), 0.5)
            surrogate.backward()
    monkeypatch.undo()
    with pytest.raises(AssertionError, match="host synchronization"):  # the detector works
        monkeypatch.setattr(torch.Tensor, "__bool__", forbidden)
        from vae_from_scratch.torch.distributions import bernoulli_log_likelihood
        bernoulli_log_likelihood(x, torch.zeros(6, 20))


def test_parts_keep_the_seeded_initialization_of_one_encoder_mlp():
    """The trunk + posterior head are created in the order of the former single encoder MLP
    (784-200-200-100), so a seed gives the same weights as that MLP and chapter 5's numbers stay."""
    torch.manual_seed(3)
    model = tvae.VAE(30, (12, 10), 4)
    torch.manual_seed(3)
    reference = [torch.nn.Linear(30, 12), torch.nn.Linear(12, 10), torch.nn.Linear(10, 8),
                 torch.nn.Linear(4, 10), torch.nn.Linear(10, 12), torch.nn.Linear(12, 30)]
    layers = model.linear_layers()["encoder"] + model.linear_layers()["decoder"]
    for ours, theirs in zip(layers, reference, strict=True):
        torch.testing.assert_close(ours.weight, theirs.weight, rtol=0, atol=0)
        torch.testing.assert_close(ours.bias, theirs.bias, rtol=0, atol=0)


def test_elbo_terms_split_the_elbo_and_sum_kl_per_dimension():
    torch.manual_seed(0)
    model = tvae.VAE(20, (16,), 4).double()
    x = (torch.rand(6, 20, dtype=torch.float64) < 0.3).double()
    eps = torch.randn(3, 6, 4, dtype=torch.float64)
    terms = model.elbo_terms(x, eps=eps)
    torch.testing.assert_close(terms["rec"] - terms["kl"], model.elbo(x, eps=eps))
    torch.testing.assert_close(terms["kl_per_dim"].sum(-1), terms["kl"])
    # the closed-form KL equals the average of log q - log p over many samples (Monte Carlo)
    many = torch.randn(200_000, 6, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    params = model.encode(x)
    z, log_q = model.posterior.sample(params, eps=many)
    sampled = log_q - tvae.log_standard_normal(z)
    se = sampled.std(0) / len(many) ** 0.5
    assert torch.all((sampled.mean(0) - terms["kl"]).abs() < 5 * se)


def test_checkpoint_config_rebuilds_the_same_model():
    model = tvae.build_vae(12, "small", hidden=[8], latent_dim=3)
    again = tvae.VAE(**model.config())
    again.load_state_dict(model.state_dict())
    assert again.config() == model.config()
