"""Normalizing flows (vae_from_scratch.{numpy,torch}.flows).

Oracles: np.linalg.slogdet of the autograd Jacobian (float64), strict triangularity of autograd
Jacobians and of mask products, exact connectivity by perturbing one input at a time, inverse round
trips, numpy-vs-torch parity in float64.
"""

import numpy as onp
import pytest
import torch
from autograd import jacobian

from vae_from_scratch.numpy import flows as nf
from vae_from_scratch.torch import flows as tf

SIZES = [(1, (4,)), (2, (3,)), (5, (3,)), (5, (16, 16)), (7, (2, 9)), (12, (5,)), (6, (40, 3))]


def _slogdet(fun, z):
    J = jacobian(fun)(z)
    sign, logabs = onp.linalg.slogdet(J)
    return J, sign, logabs


# --- planar ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_planar_log_det_matches_slogdet_of_autograd_jacobian(seed):
    rng = onp.random.default_rng(seed)
    K = int(rng.integers(1, 7))
    params = nf.planar_init(rng, K, scale=2.0)
    for z in rng.normal(scale=2.0, size=(5, K)):
        _, sign, logabs = _slogdet(lambda v: nf.planar_step(params, v)[0], z)
        assert sign > 0
        onp.testing.assert_allclose(nf.planar_step(params, z)[1], logabs, rtol=1e-10, atol=1e-12)


def test_planar_u_hat_satisfies_the_constraint_and_uses_squared_norm():
    rng = onp.random.default_rng(1)
    for _ in range(50):
        K = int(rng.integers(1, 6))
        u, w = rng.normal(scale=3.0, size=K), rng.normal(scale=3.0, size=K)
        u_hat = nf.planar_u_hat(u, w)
        wu = w @ u
        # w.u_hat = -1 + softplus(w.u) > -1; it rounds to -1 in float64 only when w.u < -37
        assert w @ u_hat > -1.0 or wu < -37
        onp.testing.assert_allclose(w @ u_hat, -1.0 + onp.logaddexp(0.0, wu), rtol=1e-12, atol=1e-12)
        # the correction is along w only: the part of u orthogonal to w is unchanged
        perp = lambda v: v - (v @ w) / (w @ w) * w
        onp.testing.assert_allclose(perp(u_hat), perp(u), atol=1e-10)


def test_planar_is_invertible_under_the_constraint_and_inverse_round_trips():
    rng = onp.random.default_rng(2)
    for _ in range(20):
        K = int(rng.integers(1, 5))
        # parameters that would violate invertibility without the constraint: w.u << -1
        w = rng.normal(size=K)
        u = -4.0 * w / (w @ w) + 0.3 * rng.normal(size=K)
        params = {"u": u, "w": w, "b": rng.normal()}
        z = rng.normal(scale=3.0, size=(30, K))
        y, log_det = nf.planar_step(params, z)
        assert onp.all(onp.isfinite(log_det))
        # det = 1 + u_hat.psi > 0 everywhere: scan a along the line, the derivative stays positive
        wu = w @ nf.planar_u_hat(u, w)
        a = onp.linspace(-10, 10, 2001)
        assert onp.all(onp.diff(a + wu * onp.tanh(a)) > 0)
        onp.testing.assert_allclose(nf.planar_inverse(params, y), z, atol=1e-9)
    # and the unconstrained map with w.u < -1 is not monotone along w (so not invertible)
    a = onp.linspace(-3, 3, 601)
    assert onp.any(onp.diff(a - 4.0 * onp.tanh(a)) < 0)


def test_planar_rejects_zero_w():
    with pytest.raises(ValueError, match="w != 0"):
        nf.planar_step({"u": onp.ones(2), "w": onp.zeros(2), "b": 0.0}, onp.ones(2))


# --- MADE -----------------------------------------------------------------------------------------


def _connectivity(params, masks, K, n_out):
    """Exact dependence: output j depends on input i iff perturbing input i changes output j
    (checked on the product of |masked weights|, which has no cancellations)."""
    path = onp.abs(params["W"][0] * masks[0])
    for W, M in zip(params["W"][1:], masks[1:]):
        path = path @ onp.abs(W * M)
    return path > 0  # (K, n_out * K)


@pytest.mark.parametrize("K,hidden", SIZES)
@pytest.mark.parametrize("random_degrees", [False, True])
def test_made_is_autoregressive_three_ways(K, hidden, random_degrees):
    rng = onp.random.default_rng(K * 100 + len(hidden))
    order = rng.permutation(K)
    degrees = nf.made_degrees(K, hidden, order=order, rng=rng if random_degrees else None)
    masks = nf.made_masks(degrees, n_outputs=2)
    params = nf.made_init(rng, K, hidden, n_outputs=2, scale=1.0)
    # permutation matrix to the ordering: variable order[p] is at position p
    perm = order
    # 1. the product of the masks is strictly triangular in the ordering (input i -> output j only
    #    when j comes after i)
    prod = masks[0]
    for M in masks[1:]:
        prod = prod @ M
    for block in (prod[:, :K], prod[:, K:]):
        ordered = block[onp.ix_(perm, perm)]  # rows: inputs by position, columns: outputs by position
        assert onp.all(onp.tril(ordered) == 0), "an output sees its own or a later input"
    # 2. the autograd Jacobian of the network is strictly triangular in the ordering
    z = rng.normal(size=K)
    J = jacobian(lambda v: nf.made_forward(params, masks, v))(z)  # (2K, K): d out_j / d z_i
    for block in (J[:K], J[K:]):
        ordered = block[onp.ix_(perm, perm)]
        assert onp.all(onp.triu(ordered) == 0)
    # 3. exact connectivity: perturbing input i changes exactly the outputs the masks allow
    allowed = prod > 0
    for i in range(K):
        dz = onp.zeros(K)
        dz[i] = 0.5
        changed = onp.abs(nf.made_forward(params, masks, z + dz) - nf.made_forward(params, masks, z)) > 0
        assert not onp.any(changed & ~allowed[i])
    assert onp.array_equal(_connectivity(params, masks, K, 2), allowed)


def test_made_degrees_cover_every_value_when_wide_enough():
    degrees = nf.made_degrees(6, (10, 3))
    assert sorted(set(degrees[1].tolist())) == [1, 2, 3, 4, 5]
    assert degrees[2].tolist() == [1, 2, 3]
    assert degrees[0].tolist() == [1, 2, 3, 4, 5, 6]
    # with wide enough hidden layers the connectivity is complete: output d sees every input before d
    K = 5
    masks = nf.made_masks(nf.made_degrees(K, (8, 8)), 1)
    prod = masks[0] @ masks[1] @ masks[2]
    assert onp.array_equal(prod > 0, onp.triu(onp.ones((K, K)), 1) > 0)


def test_made_rejects_bad_order():
    with pytest.raises(ValueError, match="permutation"):
        nf.made_degrees(3, (4,), order=[0, 0, 1])


# --- IAF ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("K,hidden", SIZES)
def test_iaf_steps_log_det_and_triangular_jacobian(K, hidden):
    rng = onp.random.default_rng(K + 7 * len(hidden))
    params, masks = nf.iaf_init(rng, K, hidden, context_dim=3, scale=1.0, random_degrees=True)
    h = rng.normal(size=3)
    z = rng.normal(size=K)
    for step in (lambda v: nf.iaf_step(params, masks, v, h, forget_bias=0.5),
                 lambda v: nf.iaf_step_affine(params, masks, v, h)):
        J, sign, logabs = _slogdet(lambda v: step(v)[0], z)
        assert onp.all(onp.triu(J, 1) == 0), "IAF Jacobian must be lower triangular"
        assert sign > 0
        onp.testing.assert_allclose(step(z)[1], logabs, rtol=1e-10, atol=1e-12)


def test_iaf_inverse_round_trips():
    rng = onp.random.default_rng(3)
    for K, hidden in SIZES:
        params, masks = nf.iaf_init(rng, K, hidden, context_dim=2, order=rng.permutation(K), scale=1.0)
        h = rng.normal(size=(4, 2))
        z = rng.normal(size=(4, K))
        y, _ = nf.iaf_step(params, masks, z, h, forget_bias=1.0)
        onp.testing.assert_allclose(nf.iaf_inverse(params, masks, y, h, forget_bias=1.0), z, atol=1e-9)
        y, _ = nf.iaf_step_affine(params, masks, z, h)
        onp.testing.assert_allclose(nf.iaf_inverse(params, masks, y, h, gated=False), z, atol=1e-9)


def test_iaf_chain_with_reversal_log_det_matches_slogdet():
    rng = onp.random.default_rng(4)
    K = 4
    steps = [nf.iaf_init(rng, K, (6,), context_dim=2, scale=1.0) for _ in range(3)]
    h, z = rng.normal(size=2), rng.normal(size=K)
    _, sign, logabs = _slogdet(lambda v: nf.iaf_flow(steps, v, h)[0], z)
    onp.testing.assert_allclose(nf.iaf_flow(steps, z, h)[1], logabs, rtol=1e-10)
    # with reversal, the chain's Jacobian is no longer triangular: it can model any dependence
    J = jacobian(lambda v: nf.iaf_flow(steps, v, h)[0])(z)
    assert onp.any(onp.abs(onp.triu(J, 1)) > 1e-6)


def test_iaf_gated_step_is_finite_at_extreme_network_outputs():
    rng = onp.random.default_rng(5)
    K = 3
    params, masks = nf.iaf_init(rng, K, (4,), scale=1.0)
    params["b"][-1] = onp.concatenate([onp.zeros(K), onp.array([-1e4, 1e4, -800.0])])
    z, log_det = nf.iaf_step(params, masks, rng.normal(size=(5, K)))
    assert onp.all(onp.isfinite(z)) and onp.all(onp.isfinite(log_det))
    assert onp.all(log_det < -800.0)


# --- volume preserving ----------------------------------------------------------------------------


def test_householder_and_reverse_preserve_volume_and_invert():
    rng = onp.random.default_rng(6)
    for K in (1, 3, 6):
        params = {"v": rng.normal(size=K)}
        z = rng.normal(size=K)
        J, sign, logabs = _slogdet(lambda v: nf.householder_step(params, v)[0], z)
        assert abs(logabs) < 1e-12 and nf.householder_step(params, z)[1] == 0.0
        onp.testing.assert_allclose(J @ J.T, onp.eye(K), atol=1e-12)
        onp.testing.assert_allclose(nf.householder_step(params, nf.householder_step(params, z)[0])[0], z,
                                    atol=1e-12)
        J, _, logabs = _slogdet(lambda v: nf.reverse_step(v)[0], z)
        assert abs(logabs) < 1e-12
        onp.testing.assert_array_equal(nf.reverse_step(nf.reverse_step(z)[0])[0], z)


# --- numpy / torch parity (float64) ---------------------------------------------------------------


def _t(a):
    return torch.as_tensor(onp.asarray(a), dtype=torch.float64)


def test_planar_parity():
    rng = onp.random.default_rng(7)
    params = nf.planar_init(rng, 4, scale=1.5)
    z = rng.normal(size=(3, 5, 4))
    module = tf.PlanarFlow(4).double().load_numpy_params(params)
    zt, ldt = module(_t(z))
    zn, ldn = nf.planar_step(params, z)
    onp.testing.assert_allclose(zt.detach().numpy(), zn, rtol=1e-12, atol=1e-12)
    onp.testing.assert_allclose(ldt.detach().numpy(), ldn, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("gated", [True, False])
def test_iaf_parity_and_torch_jacobian(gated):
    rng = onp.random.default_rng(8)
    K, hidden = 5, (3, 7)
    degrees_rng = onp.random.default_rng(11)
    order = rng.permutation(K)
    degrees = nf.made_degrees(K, hidden, order=order, rng=onp.random.default_rng(11))
    masks = nf.made_masks(degrees, 2)
    params = nf.made_init(rng, K, hidden, 2, context_dim=3, scale=1.0)
    step = tf.IAFStep(K, hidden, context_dim=3, forget_bias=0.7, gated=gated, order=order,
                      rng=degrees_rng).double()
    for M_np, layer in zip(masks, step.made.layers):
        assert onp.array_equal(layer.mask.numpy().T, M_np)
    step.load_numpy_params(params)
    z, h = rng.normal(size=(6, K)), rng.normal(size=(6, 3))
    zt, ldt = step(_t(z), _t(h))
    if gated:
        zn, ldn = nf.iaf_step(params, masks, z, h, forget_bias=0.7)
    else:
        zn, ldn = nf.iaf_step_affine(params, masks, z, h)
    onp.testing.assert_allclose(zt.detach().numpy(), zn, rtol=1e-12, atol=1e-12)
    onp.testing.assert_allclose(ldt.detach().numpy(), ldn, rtol=1e-12, atol=1e-12)
    # torch Jacobian: triangular in the ordering, slogdet equals the log-det
    J = torch.autograd.functional.jacobian(lambda v: step(v, _t(h[0]))[0], _t(z[0])).numpy()
    Jo = J[onp.ix_(order, order)]
    assert onp.all(onp.triu(Jo, 1) == 0)
    onp.testing.assert_allclose(onp.linalg.slogdet(J)[1], ldt[0].item(), rtol=1e-10)


def test_iaf_flow_parity_with_reversal():
    rng = onp.random.default_rng(9)
    K, T, hidden = 4, 3, (8,)
    flow = tf.IAFFlow(K, T, hidden, context_dim=2, forget_bias=1.0).double()
    iaf_modules = [m for m in flow.steps if isinstance(m, tf.IAFStep)]
    steps = []
    for module in iaf_modules:
        params, masks = nf.iaf_init(rng, K, hidden, context_dim=2, scale=1.0)
        module.load_numpy_params(params)
        steps.append((params, masks))
    z, h = rng.normal(size=(5, K)), rng.normal(size=(5, 2))
    zt, ldt = flow(_t(z), _t(h))
    zn, ldn = nf.iaf_flow(steps, z, h, forget_bias=1.0)
    onp.testing.assert_allclose(zt.detach().numpy(), zn, rtol=1e-12, atol=1e-12)
    onp.testing.assert_allclose(ldt.detach().numpy(), ldn, rtol=1e-12, atol=1e-12)


def test_householder_parity():
    rng = onp.random.default_rng(10)
    params = {"v": rng.normal(size=3)}
    z = rng.normal(size=(4, 3))
    module = tf.Householder(3).double().load_numpy_params(params)
    onp.testing.assert_allclose(module(_t(z))[0].detach().numpy(), nf.householder_step(params, z)[0],
                                rtol=1e-12, atol=1e-12)


def test_torch_iaf_finite_at_extreme_inputs():
    torch.manual_seed(0)
    flow = tf.IAFFlow(4, 2, (16,), context_dim=3).double()
    z = torch.tensor([[1e4, -1e4, 30.0, -30.0]], dtype=torch.float64)
    h = torch.full((1, 3), 1e4, dtype=torch.float64)
    out, log_det = flow(z, h)
    assert torch.isfinite(out).all() and torch.isfinite(log_det).all()
    log_det.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in flow.parameters() if p.grad is not None)
