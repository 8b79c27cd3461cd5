"""Free bits with an IAF posterior: the sampled KL split over latent dimensions (Kingma et al. 2016,
appendix C). The split sums to the sampled KL exactly, NumPy and PyTorch agree in float64, each
step's per-variable term is the log of the Jacobian's diagonal, the split's mean converges to the
closed-form per-dimension KL when the flow is the identity, and training with it runs."""

import json

import numpy as np
import pytest
from autograd import jacobian

from vae_from_scratch import cli
from vae_from_scratch.numpy import collapse as nc
from vae_from_scratch.numpy import flows as nf
from vae_from_scratch.numpy import vae as nv

torch = pytest.importorskip("torch")
from vae_from_scratch.torch.distributions import log_standard_normal  # noqa: E402
from vae_from_scratch.torch.posteriors import sampled_kl_per_dim  # noqa: E402
from vae_from_scratch.torch.training import TrainConfig  # noqa: E402
from vae_from_scratch.torch.vae import VAE  # noqa: E402

D, HIDDEN, K, B = 9, (8, 6), 4, 5


def _iaf_vae(steps=2, seed=0, forget_bias=1.5):
    torch.manual_seed(seed)
    model = VAE(D, HIDDEN, K, posterior="iaf",
                posterior_options={"steps": steps, "flow_hidden": (7, 6),
                                   "forget_bias": forget_bias}).double()
    with torch.no_grad():  # away from the near-identity start, so that every term matters
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return model


def _x(seed=1, n=B):
    return torch.as_tensor((np.random.default_rng(seed).random((n, D)) < 0.5).astype(float))


@pytest.mark.parametrize("steps", [1, 2, 3])
def test_split_sums_to_the_sampled_kl_exactly(steps):
    model = _iaf_vae(steps)
    x = _x()
    with torch.no_grad():
        _check_split(model, x)


def _check_split(model, x):
    params = model.encode(x)
    eps = torch.randn(6, B, K, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    z, log_q = model.posterior.sample(params, eps=eps)
    z_d, log_q_dims = model.posterior.sample_dims(params, eps=eps)
    assert torch.equal(z, z_d) and log_q_dims.shape == (6, B, K)
    kl_dims = sampled_kl_per_dim(z, log_q_dims)
    total = log_q - log_standard_normal(z)
    np.testing.assert_allclose(kl_dims.sum(-1).numpy(), total.numpy(), rtol=1e-12, atol=1e-12)
    terms = model.elbo_terms(x, eps=eps)  # the VAE's KL term and its split agree too
    np.testing.assert_allclose(terms["kl_per_dim"].sum(-1).numpy(), terms["kl"].numpy(),
                               rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(terms["kl"].numpy(), total.mean(0).numpy(), rtol=1e-12, atol=1e-12)


def test_numpy_split_matches_torch_in_float64():
    model = _iaf_vae(steps=3)
    params = model.posterior_numpy_params()
    x = _x()
    eps = np.random.default_rng(3).standard_normal((4, B, K))
    expected = nv.posterior_kl_per_dim("iaf", params, x.numpy(), eps, forget_bias=1.5)
    with torch.no_grad():
        got = model.elbo_terms(x, eps=torch.as_tensor(eps))["kl_per_dim"]
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-10, atol=1e-12)
    # and the NumPy split sums to the NumPy sampled KL
    h = nv.features(params, x.numpy())
    z, log_q = nv.posterior_sample("iaf", params, h, eps, forget_bias=1.5)
    z2, log_q_dims = nv.posterior_sample_dims("iaf", params, h, eps, forget_bias=1.5)
    np.testing.assert_array_equal(z, z2)
    np.testing.assert_allclose(nv.sampled_kl_per_dim(z, log_q_dims).sum(-1),
                               log_q - nv.log_standard_normal(z), rtol=1e-12, atol=1e-12)


def test_each_step_term_is_the_log_of_the_jacobian_diagonal():
    rng = np.random.default_rng(4)
    made = nf.made_init(rng, K, [7, 6], 2, 3)
    masks = nf.made_masks(nf.made_degrees(K, [7, 6]), 2)
    z, context = rng.standard_normal(K), rng.standard_normal(3)
    _, log_sigma = nf.iaf_step_dims(made, masks, z, context, 0.7)
    J = jacobian(lambda v: nf.iaf_step(made, masks, v, context, 0.7)[0])(z)
    np.testing.assert_allclose(log_sigma, np.log(np.diag(J)), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(log_sigma.sum(), np.linalg.slogdet(J)[1], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("steps", [1, 2])
def test_identity_flow_split_converges_to_the_closed_form(steps):
    """With every step the identity (MADE output weights 0, m = 0, a large forget bias so that
    sigma = 1 to 1e-17), z_T is z_0 with the order reversed steps - 1 times; the mean of the
    sampled per-dimension KL converges to the closed-form KL of those dimensions."""
    model = _iaf_vae(steps)
    with torch.no_grad():
        for step in model.posterior.flow.steps:
            if hasattr(step, "made"):
                step.made.layers[-1].weight.zero_()
                step.made.layers[-1].bias.zero_()
                step.forget_bias = 40.0
    x = _x(n=3)
    params = model.encode(x)
    mean, log_std = params[0], params[1]
    closed = nc.kl_per_dim(mean.detach().numpy(), log_std.detach().numpy())
    if steps == 2:
        closed = closed[..., ::-1]
    S = 40000
    eps = torch.randn(S, 3, K, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        z, log_q_dims = model.posterior.sample_dims(params, eps=eps)
        kl_dims = sampled_kl_per_dim(z, log_q_dims).numpy()
    est, se = kl_dims.mean(0), kl_dims.std(0) / np.sqrt(S)
    assert np.all(np.abs(est - closed) < 4 * se + 1e-12), (est, closed, se)
    # and the estimate is not trivially the closed form (the noise is real)
    assert np.all(se > 1e-4)


def test_train_config_accepts_iaf_free_bits_and_refuses_full_early():
    TrainConfig(posterior="iaf", free_bits=0.1).check()
    with pytest.raises(ValueError, match="sum over dimensions"):
        TrainConfig(posterior="full", free_bits=0.1).check()


def test_cli_trains_iaf_with_free_bits(tmp_path, capsys):
    small = ["--dataset", "digits", "--arch", "small", "--hidden", "32", "--latent-dim", "4",
             "--device", "cpu", "--no-progress", "--epochs", "2", "--eval-k", "0",
             "--free-bits", "0.1", "--free-bits-groups", "2"]
    out = tmp_path / "iaf"
    assert cli.main(["train", *small, "--posterior", "iaf", "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["config"]["free_bits"] == 0.1 and metrics["config"]["posterior"] == "iaf"
    assert all(np.isfinite(e["train_elbo"]) for e in metrics["epochs"])
    capsys.readouterr()
    refused = tmp_path / "full"
    assert cli.main(["train", *small, "--posterior", "full", "--out", str(refused)]) != 0
    captured = capsys.readouterr()
    assert "sum over dimensions" in captured.err and "epoch" not in captured.out
    assert not refused.exists()  # refused before anything was written or trained
