r"""Exercise set 7: normalizing flows (``exercises/07_normalizing_flows.ipynb``).

7.1 the planar log-determinant, 7.2 the invertibility-constrained :math:`\hat{\mathbf u}` of the planar
flow, 7.3 MADE degrees and masks, 7.4 one gated IAF step with its log-determinant. References in
:mod:`vae_from_scratch.numpy.flows`.

Tolerances. Deterministic comparisons use independent float64 oracles: slogdet of an autograd Jacobian,
masks built entry by entry, the gate written with ``logaddexp``. Each quantity is a short sum of terms of
magnitude below 1e2, exact to a few ulps, so a correct answer is within ~1e-12; we allow 1e-9 relative
and absolute. Every typical mistake (a missing absolute value, the norm instead of the squared norm,
``<=`` in the output mask, a skipped degree, a flipped log-determinant, the log of the gate without the
sigmoid) is off by far more, or produces NaN. No test is statistical: the false-failure rate is 0.
"""

import autograd
import autograd.numpy as anp
import numpy as onp

from vae_from_scratch.numpy import flows

from ..core import assert_close, exercise

ATOL = 1e-9  # see the module docstring
RTOL = 1e-9


def _pair(result, names, what):
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        raise AssertionError(f"{what} must return a pair {names}, got {type(result).__name__}")
    return result


def _slogdet(fun, z):
    J = onp.asarray(autograd.jacobian(fun)(z))
    return onp.linalg.slogdet(J)[1]


# --- 7.1 planar log-determinant ---------------------------------------------------------------------

EX1 = exercise("7.1", "Log-determinant of a planar step", function="planar_log_det",
               reference=flows.planar_log_det)


def _planar_inputs(rng, B=None):
    K = int(rng.integers(2, 6))
    u, w = rng.normal(size=K), rng.normal(scale=1.5, size=K)
    b = float(rng.normal())
    z = rng.normal(size=(B, K) if B else K)
    return u, w, b, z


@EX1.test("equals slogdet of the autograd Jacobian of f(z) = z + u tanh(w.z + b)", points=2,
          hint="Matrix determinant lemma: det(I + u psi^T) = 1 + psi.u with psi = (1 - tanh^2(w.z + b)) w.")
def _(f, rng):
    for _ in range(4):
        u, w, b, z = _planar_inputs(rng)
        u = 0.3 * u  # a small u: the determinant is positive here
        oracle = _slogdet(lambda v: v + u * anp.tanh(anp.dot(w, v) + b), z)
        assert_close(f(u, w, b, z), oracle, rtol=RTOL, atol=ATOL, what="your log-determinant")


@EX1.test("is the log of the ABSOLUTE determinant (u not constrained, det < 0)", points=2,
          hint="Without the constraint on u, 1 + psi.u can be negative; the density needs log|det|.")
def _(f, rng):
    u, w, b, z = _planar_inputs(rng)
    b = 0.0
    z = z - (anp.dot(w, z) / anp.dot(w, w)) * w  # w.z + b = 0: tanh' = 1 there
    u = -3.0 * w / anp.dot(w, w)                  # 1 + w.u = -2 < 0
    oracle = _slogdet(lambda v: v + u * anp.tanh(anp.dot(w, v) + b), z)
    assert_close(f(u, w, b, z), oracle, rtol=RTOL, atol=ATOL, what="your log-determinant")


@EX1.test("keeps batch axes: z (B, K) -> (B,)", points=1,
          hint="Reduce only the last axis (np.sum(w * z, axis=-1)), so each row of z gets its own value.")
def _(f, rng):
    u, w, b, z = _planar_inputs(rng, B=int(rng.integers(7, 10)))
    oracle = onp.array([_slogdet(lambda v: v + u * anp.tanh(anp.dot(w, v) + b), zi) for zi in z])
    assert_close(f(u, w, b, z), oracle, rtol=RTOL, atol=ATOL, what="your log-determinants")


# --- 7.2 constrained u-hat --------------------------------------------------------------------------

EX2 = exercise("7.2", "The invertibility constraint of the planar flow", function="planar_u_hat",
               reference=flows.planar_u_hat)


@EX2.test("w.u_hat = -1 + softplus(w.u) (so w.u_hat > -1)", points=2,
          hint="Add a multiple of w to u: u_hat = u + (m(w.u) - w.u) w / (w.w). Check: w.u_hat = m(w.u).")
def _(f, rng):
    for _ in range(5):
        K = int(rng.integers(2, 6))
        u, w = rng.normal(scale=2.0, size=K), rng.normal(scale=2.0, size=K)  # ||w|| far from 1
        u_hat = onp.asarray(f(u, w))
        assert_close(anp.dot(w, u_hat), -1.0 + onp.logaddexp(0.0, anp.dot(w, u)), rtol=RTOL, atol=ATOL,
                     what="your w.u_hat")


@EX2.test("changes u only along w (the part orthogonal to w is kept)", points=1,
          hint="The correction is a multiple of w; divide by the squared norm so that its projection is right.")
def _(f, rng):
    K = int(rng.integers(3, 6))
    u, w = rng.normal(size=K), rng.normal(scale=2.0, size=K)
    u_hat = onp.asarray(f(u, w))
    perp = lambda v: v - (v @ w) / (w @ w) * w  # noqa: E731
    assert_close(perp(u_hat), perp(u), rtol=RTOL, atol=ATOL, what="the part of your u_hat orthogonal to w")
    assert_close(u_hat, flows.planar_u_hat(u, w), rtol=RTOL, atol=ATOL, what="your u_hat")


@EX2.test("leaves u unchanged when w.u is already large (softplus(a) ~ a)", points=1,
          hint="m(a) = -1 + log(1 + e^a) is close to a when a >> 1; use np.logaddexp(0, a) for softplus.")
def _(f, rng):
    K = int(rng.integers(2, 5))
    w = rng.normal(size=K)
    u = 40.0 * w / (w @ w) + 0.1 * rng.normal(size=K)
    u_hat = onp.asarray(f(u, w))
    assert_close(u_hat, u - w / (w @ w), rtol=1e-9, atol=1e-9, what="your u_hat")


# --- 7.3 MADE masks ---------------------------------------------------------------------------------

EX3 = exercise("7.3", "MADE degrees and masks", function="made_masks_for",
               reference=flows.made_masks)
EX3.forbidden = (flows.made_degrees,)


def _oracle_masks(K, hidden):
    degrees = [onp.arange(1, K + 1)] + [1 + onp.arange(h) % max(K - 1, 1) for h in hidden]
    masks = []
    for below, above in zip(degrees[:-1], degrees[1:]):
        M = onp.zeros((len(below), len(above)))
        for i in range(len(below)):
            for j in range(len(above)):
                M[i, j] = float(above[j] >= below[i])
        masks.append(M)
    out = onp.zeros((len(degrees[-1]), K))
    for i in range(len(degrees[-1])):
        for d in range(K):
            out[i, d] = float(degrees[0][d] > degrees[-1][i])
    masks.append(out)
    return masks


def _masks(f, K, hidden):
    masks = f(K, hidden)
    if not isinstance(masks, (list, tuple)) or len(masks) != len(hidden) + 1:
        raise AssertionError(f"made_masks_for must return a list of {len(hidden) + 1} masks "
                             f"(one per weight matrix)")
    return [onp.asarray(M, float) for M in masks]


@EX3.test("the product of the masks is strictly upper triangular (output d never sees inputs >= d)",
          points=2, hint="The OUTPUT mask needs a strict inequality: degree(output d) > degree(hidden unit).")
def _(f, rng):
    for _ in range(3):
        K = int(rng.integers(3, 8))
        hidden = [int(rng.integers(2, 12)) for _ in range(int(rng.integers(1, 3)))]
        masks = _masks(f, K, hidden)
        prod = masks[0]
        for M in masks[1:]:
            prod = prod @ M
        if prod.shape != (K, K):
            raise AssertionError(f"the product of your masks has shape {prod.shape}, expected {(K, K)}")
        if onp.any(onp.tril(prod) != 0):
            raise AssertionError("some output depends on its own input or a later one")


@EX3.test("every allowed connection is present when the hidden layers are wide", points=2,
          hint="Hidden degrees cycle through EVERY value 1..K-1 (1 + k mod (K-1)); skipping one cuts paths.")
def _(f, rng):
    K = int(rng.integers(3, 8))
    hidden = [2 * K + int(rng.integers(0, 4))] * 2
    masks = _masks(f, K, hidden)
    prod = masks[0]
    for M in masks[1:]:
        prod = prod @ M
    expected = onp.triu(onp.ones((K, K)), 1) > 0
    if not onp.array_equal(prod > 0, expected):
        raise AssertionError("your masks cut some connection from input i to output j > i")


@EX3.test("masks match the stated degree rule, including hidden layers narrower than K", points=2,
          hint="Inputs have degrees 1..K, hidden unit k has 1 + k mod (K-1); hidden masks use >=, "
               "the output mask >; shapes (fan_in, fan_out).")
def _(f, rng):
    K = int(rng.integers(5, 9))
    hidden = [int(rng.integers(2, K)), int(rng.integers(K, 2 * K))]
    masks = _masks(f, K, hidden)
    for i, (M, O) in enumerate(zip(masks, _oracle_masks(K, hidden))):
        if M.shape != O.shape:
            raise AssertionError(f"mask {i} has shape {M.shape}, expected {O.shape}")
        if not onp.array_equal(M, O):
            raise AssertionError(f"mask {i} differs from the stated degree rule")


# --- 7.4 gated IAF step -----------------------------------------------------------------------------

EX4 = exercise("7.4", "One gated IAF step and its log-determinant", function="iaf_gated_step",
               reference=flows.iaf_step)


def _gate_oracle(z, m, s, forget_bias):
    g = s + forget_bias
    sigma = onp.exp(-onp.logaddexp(0.0, -g))
    return sigma * z + (1.0 - sigma) * m, onp.sum(-onp.logaddexp(0.0, -g), axis=-1)


@EX4.test("z_new = sigma z + (1 - sigma) m with sigma = sigmoid(s + forget_bias)", points=2,
          hint="The gate is a sigmoid of s plus the forget bias; it mixes z and m elementwise.")
def _(f, rng):
    B, K = int(rng.integers(5, 8)), int(rng.integers(2, 5))
    z, m, s = rng.normal(size=(B, K)), rng.normal(size=(B, K)), rng.normal(size=(B, K))
    fb = float(rng.uniform(0.5, 2.0))
    z_new, _ = _pair(f(z, m, s, fb), "(z_new, log_det)", "iaf_gated_step")
    assert_close(z_new, _gate_oracle(z, m, s, fb)[0], rtol=RTOL, atol=ATOL, what="your z_new")


@EX4.test("log_det equals slogdet of the autograd Jacobian (m, s from a MADE network)", points=2,
          hint="dz_new/dz is triangular with diagonal sigma: log|det| = sum(log sigma), a NEGATIVE number.")
def _(f, rng):
    K = int(rng.integers(3, 6))
    params, masks = flows.iaf_init(rng, K, (K + 2,), scale=1.0)
    fb = float(rng.uniform(0.5, 2.0))

    def step(v):
        out = flows.made_forward(params, masks, v)
        return f(v, out[..., :K], out[..., K:], fb)

    for _ in range(2):
        z = rng.normal(size=K)
        oracle = _slogdet(lambda v: step(v)[0], z)
        assert_close(_pair(step(z), "(z_new, log_det)", "iaf_gated_step")[1], oracle, rtol=RTOL, atol=ATOL,
                     what="your log_det")


@EX4.test("log_det is finite and exact at extreme gate values (s = +-1e4)", points=2,
          hint="log(sigmoid(a)) = -log(1 + e^-a) = -np.logaddexp(0, -a): never take the log of a "
               "sigmoid that rounded to 0.")
def _(f, rng):
    K = 4
    z, m = rng.normal(size=(3, K)), rng.normal(size=(3, K))
    s = onp.array([[1e4, -1e4, 30.0, -800.0], [0.0, 5.0, -5.0, 1e3], [-50.0, 50.0, 1.0, -1.0]])
    z_new, log_det = _pair(f(z, m, s, 1.0), "(z_new, log_det)", "iaf_gated_step")
    oz, old = _gate_oracle(z, m, s, 1.0)
    assert_close(z_new, oz, rtol=RTOL, atol=ATOL, what="your z_new")
    assert_close(log_det, old, rtol=RTOL, atol=ATOL, what="your log_det")
