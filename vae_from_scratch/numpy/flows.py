r"""Normalizing flows for variational posteriors (autograd.numpy reference).

A normalizing flow pushes a sample :math:`\mathbf z_0 \sim q(\mathbf z_0\mid\mathbf x)` through a chain
of invertible maps :math:`\mathbf z_t = \mathbf f_t(\mathbf z_{t-1})` and tracks the density by the
change-of-variables formula (monograph K&W eq. 3.10-3.16; Rezende & Mohamed 2015, eq. 7):

.. math::
    \log q(\mathbf z_T\mid\mathbf x) = \log q(\mathbf z_0\mid\mathbf x)
        - \sum_{t=1}^{T} \log\left|\det\frac{\partial\mathbf z_t}{\partial\mathbf z_{t-1}}\right|.

Every step here is a pure function ``step(params, z, ...) -> (z_new, log_det)`` where ``log_det``
is :math:`\log|\det\partial\mathbf z_t/\partial\mathbf z_{t-1}|` per sample (the event axis, last,
is summed out). Parameters are pytrees (dicts of arrays) that autograd differentiates; MADE masks are
kept apart from the parameters (they are constants). Steps:

* :func:`planar_step`: :math:`\mathbf f(\mathbf z) = \mathbf z + \hat{\mathbf u}\tanh(\mathbf w^\top\mathbf z + b)`
  with the invertibility-constrained :math:`\hat{\mathbf u}` (Rezende & Mohamed 2015, eq. 10-12 and
  appendix A; K&W eq. 3.17);
* :func:`made_forward` with :func:`made_degrees` / :func:`made_masks`: the masked autoencoder of
  Germain et al. (2015), the autoregressive network inside IAF;
* :func:`iaf_step_affine` (K&W eq. 3.21-3.22) and :func:`iaf_step` (the gated, numerically stable form,
  K&W eq. 3.30-3.32; Kingma et al. 2016, eq. 11-14);
* :func:`householder_step` (Tomczak & Welling 2016): a reflection, volume preserving (log-det 0);
* :func:`reverse_step`: reverses the order of the variables (volume preserving), used between IAF steps.

Conventions follow the rest of the package: event axis last, batch axes broadcast, randomness only
through an explicit ``numpy.random.Generator``.
"""

import autograd.numpy as np
import numpy as onp
from autograd.tracer import getval

from .distributions import softplus

__all__ = [
    "planar_u_hat",
    "planar_step",
    "planar_log_det",
    "planar_init",
    "planar_inverse",
    "made_degrees",
    "made_masks",
    "made_init",
    "made_forward",
    "iaf_init",
    "iaf_step",
    "iaf_step_dims",
    "iaf_step_affine",
    "iaf_inverse",
    "iaf_flow",
    "iaf_flow_dims",
    "householder_step",
    "reverse_step",
    "log_sigmoid",
    "flow_log_q",
]


def log_sigmoid(a):
    r""":math:`\log\operatorname{sigmoid}(a) = -\operatorname{softplus}(-a)`, finite for any finite ``a``."""
    return -softplus(-a)


def _sigmoid(a):
    return 0.5 * (np.tanh(0.5 * a) + 1.0)


# --- planar flow (Rezende & Mohamed 2015) -------------------------------------------------------


def planar_u_hat(u, w):
    r"""The constrained :math:`\hat{\mathbf u}` that makes the planar map invertible (Rezende & Mohamed
    2015, appendix A):

    .. math::
        \hat{\mathbf u} = \mathbf u + \big(m(\mathbf w^\top\mathbf u) - \mathbf w^\top\mathbf u\big)
            \frac{\mathbf w}{\lVert\mathbf w\rVert^2},
        \qquad m(a) = -1 + \operatorname{softplus}(a),

    so that :math:`\mathbf w^\top\hat{\mathbf u} = m(\mathbf w^\top\mathbf u) > -1`. The denominator is
    the **squared** norm: with :math:`\lVert\mathbf w\rVert` the projection is wrong unless
    :math:`\lVert\mathbf w\rVert = 1`. ``u``, ``w`` are ``(..., K)``.
    """
    wu = np.sum(w * u, axis=-1, keepdims=True)
    w_sq = np.sum(w * w, axis=-1, keepdims=True)
    if np.any(getval(w_sq) == 0):
        raise ValueError("planar flow needs w != 0 (u_hat divides by ||w||^2)")
    return u + (-1.0 + softplus(wu) - wu) * w / w_sq


def planar_step(params, z):
    r"""One planar step :math:`\mathbf f(\mathbf z) = \mathbf z + \hat{\mathbf u}\,\tanh(\mathbf w^\top\mathbf z + b)`
    and its log-determinant (Rezende & Mohamed 2015, eq. 10-12; K&W eq. 3.17):

    .. math::
        \boldsymbol\psi(\mathbf z) = \tanh'(\mathbf w^\top\mathbf z + b)\,\mathbf w, \qquad
        \log\left|\det\frac{\partial\mathbf f}{\partial\mathbf z}\right|
            = \log\left|1 + \hat{\mathbf u}^\top\boldsymbol\psi(\mathbf z)\right|

    (matrix determinant lemma). ``params`` = ``{"u": (K,), "w": (K,), "b": ()}`` (leading batch axes
    allowed, e.g. produced per data point by an encoder); ``z`` is ``(..., K)``. Returns
    ``(f(z), log_det)``. Since :math:`\tanh' \in (0, 1]` and :math:`\mathbf w^\top\hat{\mathbf u} > -1`,
    the determinant is positive everywhere.
    """
    u, w, b = params["u"], params["w"], params["b"]
    _check_last("z", z, np.shape(w)[-1])
    u_hat = planar_u_hat(u, w)
    t = np.tanh(np.sum(w * z, axis=-1) + b)
    return z + u_hat * t[..., None], planar_log_det(u_hat, w, b, z)


def planar_log_det(u, w, b, z):
    r""":math:`\log|\det\partial\mathbf f/\partial\mathbf z| = \log|1 + (1-\tanh^2(\mathbf w^\top\mathbf z+b))\,\mathbf w^\top\mathbf u|`
    of :math:`\mathbf f(\mathbf z) = \mathbf z + \mathbf u\tanh(\mathbf w^\top\mathbf z + b)` for the
    ``u`` given (pass :func:`planar_u_hat` for the invertible flow; Rezende & Mohamed 2015, eq. 12).
    The absolute value matters for an unconstrained ``u``, where the determinant can be negative."""
    t = np.tanh(np.sum(w * z, axis=-1) + b)
    return np.log(np.abs(1.0 + (1.0 - t**2) * np.sum(w * u, axis=-1)))


def planar_init(rng, K, scale=0.1):
    """Planar parameters ``{"u", "w", "b"}`` drawn as ``scale * N(0, 1)`` (``w`` kept away from 0)."""
    w = scale * rng.standard_normal(K)
    w = w + scale * onp.sign(w + (w == 0))  # ||w|| >= scale: u_hat divides by ||w||^2
    return {"u": scale * rng.standard_normal(K), "w": w, "b": scale * rng.standard_normal()}


def planar_inverse(params, y, tol=1e-12, max_iter=200):
    r"""Inverse of :func:`planar_step` (not differentiable; for checks).

    Writing :math:`\mathbf z = \mathbf y - \hat{\mathbf u}\tanh(a)` with :math:`a = \mathbf w^\top\mathbf z + b`
    gives one scalar equation :math:`a + (\mathbf w^\top\hat{\mathbf u})\tanh(a) = \mathbf w^\top\mathbf y + b`.
    Its left side is strictly increasing when :math:`\mathbf w^\top\hat{\mathbf u} > -1` (the constraint),
    so the root is unique; it lies within :math:`|\mathbf w^\top\hat{\mathbf u}|` of the right side and is
    found by bisection (Rezende & Mohamed 2015, appendix A).
    """
    u = onp.asarray(getval(params["u"]), float)
    w = onp.asarray(getval(params["w"]), float)
    b = onp.asarray(getval(params["b"]), float)
    y = onp.asarray(y, float)
    u_hat = onp.asarray(planar_u_hat(u, w))
    wu = onp.sum(w * u_hat, axis=-1)
    rhs = onp.sum(w * y, axis=-1) + b
    lo, hi = rhs - onp.abs(wu) - 1.0, rhs + onp.abs(wu) + 1.0
    for _ in range(max_iter):
        mid = 0.5 * (lo + hi)
        above = mid + wu * onp.tanh(mid) > rhs
        lo, hi = onp.where(above, lo, mid), onp.where(above, mid, hi)
        if onp.all(hi - lo < tol):
            break
    a = 0.5 * (lo + hi)
    return y - u_hat * onp.tanh(a)[..., None]


# --- MADE (Germain et al. 2015) -------------------------------------------------------------------


def made_degrees(K, hidden, order=None, rng=None):
    r"""Degrees of the units of a MADE network (Germain et al. 2015, section 4).

    * inputs: :math:`m(d)` = position of variable ``d`` in ``order`` (1..K; default ``order = 0..K-1``,
      so degrees 1..K);
    * each hidden unit: a degree in :math:`\{1, \dots, K-1\}` (unit ``k`` of a layer gets
      ``1 + k mod (K-1)``, cycling through every value, or uniform draws from ``rng``, at least the
      smallest degree of the layer below so that no unit is dead);
    * outputs: the degrees of the inputs (output ``d`` predicts something about variable ``d``).

    ``hidden`` is a sequence of widths (any width, also narrower than ``K``). Returns the list
    ``[input, hidden_1, ..., hidden_L]`` of integer arrays. With ``K = 1`` the hidden degrees are 1
    and the output cannot see the input (there is nothing before the first variable).
    """
    K = int(K)
    if K < 1:
        raise ValueError(f"K must be a positive integer, got {K}")
    if any(int(h) < 1 for h in hidden):
        raise ValueError(f"hidden widths must be positive, got {hidden}")
    order = onp.arange(K) if order is None else onp.asarray(order)
    if sorted(order.tolist()) != list(range(K)):
        raise ValueError(f"order must be a permutation of 0..{K - 1}, got {order}")
    degrees = [onp.empty(K, int)]
    degrees[0][order] = onp.arange(1, K + 1)
    top = max(K - 1, 1)
    for width in hidden:
        if rng is None:
            d = 1 + onp.arange(int(width)) % top
        else:
            low = min(int(degrees[-1].min()), top)
            d = rng.integers(low, top + 1, size=int(width))
        degrees.append(d)
    return degrees


def made_masks(degrees, n_outputs=1):
    r"""Masks of a MADE network from the degrees of :func:`made_degrees` (Germain et al. 2015, eq. 12-13):

    .. math::
        M^{(l)}_{kj} = [\,m^{(l)}(k) \ge m^{(l-1)}(j)\,] \quad\text{(hidden layers)}, \qquad
        M^{out}_{dk} = [\,m(d) > m^{(L)}(k)\,] \quad\text{(output layer, strict)}.

    Masks are returned in the layout of the weight matrices of :func:`made_forward`, ``(in, out)``
    (so ``h @ (W * M)``). The output mask is repeated ``n_outputs`` times along its columns (e.g. two
    for the mean and the gate of an IAF step). The strict inequality at the output is what makes
    output ``d`` independent of input ``d``: the Jacobian is strictly triangular.
    """
    masks = []
    for below, above in zip(degrees[:-1], degrees[1:]):
        masks.append((above[None, :] >= below[:, None]).astype(float))
    out = (degrees[0][None, :] > degrees[-1][:, None]).astype(float)
    masks.append(onp.concatenate([out] * int(n_outputs), axis=1))
    return masks


def made_init(rng, K, hidden, n_outputs=2, context_dim=0, scale=None):
    """Parameters of a MADE network: ``{"W": [..], "b": [..], "C": (context_dim, hidden[0])}``.

    Weights are drawn ``N(0, 1/fan_in)`` (``scale`` overrides the standard deviation); ``C`` connects
    a context vector ``h`` to the first hidden layer (no mask: the context is not part of ``z``).
    """
    sizes = [int(K), *[int(h) for h in hidden], int(K) * int(n_outputs)]
    params = {"W": [], "b": []}
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        std = (1.0 / onp.sqrt(n_in)) if scale is None else scale
        params["W"].append(std * rng.standard_normal((n_in, n_out)))
        params["b"].append(onp.zeros(n_out))
    if context_dim:
        std = (1.0 / onp.sqrt(context_dim)) if scale is None else scale
        params["C"] = std * rng.standard_normal((int(context_dim), sizes[1]))
    return params


def made_forward(params, masks, z, context=None):
    r"""MADE network: masked MLP ``z (..., K) -> (..., n_outputs*K)`` with tanh hidden units.

    .. math::
        \mathbf a_1 = \tanh\big(\mathbf z (\mathbf W_1\odot\mathbf M_1) + \mathbf h\mathbf C + \mathbf b_1\big),\ \dots,\
        \text{out} = \mathbf a_L(\mathbf W_{out}\odot\mathbf M_{out}) + \mathbf b_{out}

    (Germain et al. 2015, eq. 10-11). Output ``j*K + d`` depends only on the inputs that come before
    variable ``d`` in the ordering (and on the context ``h``, if given, of shape ``(..., H)``).
    """
    Ws, bs = params["W"], params["b"]
    if len(Ws) != len(masks):
        raise ValueError(f"{len(Ws)} weight matrices but {len(masks)} masks")
    _check_last("z", z, np.shape(Ws[0])[0])
    a = z
    for i, (W, b, M) in enumerate(zip(Ws, bs, masks)):
        a = np.dot(a, W * M) + b
        if i == 0 and context is not None:
            if "C" not in params:
                raise ValueError("a context was given but the MADE parameters have no context weights 'C'")
            a = a + np.dot(context, params["C"])
        if i < len(Ws) - 1:
            a = np.tanh(a)
    return a


# --- IAF (Kingma et al. 2016; K&W section 3.3-3.4) ----------------------------------------------


def iaf_init(rng, K, hidden, context_dim=0, order=None, scale=None, random_degrees=False):
    """``(params, masks)`` for one IAF step: a MADE with two outputs per variable (m and s)."""
    degrees = made_degrees(K, hidden, order=order, rng=rng if random_degrees else None)
    return made_init(rng, K, hidden, 2, context_dim, scale), made_masks(degrees, 2)


def iaf_step(params, masks, z, context=None, forget_bias=1.0):
    r"""One gated IAF step, the numerically stable form (K&W eq. 3.30-3.32; Kingma et al. 2016, eq. 14):

    .. math::
        [\mathbf m, \mathbf s] = \text{MADE}(\mathbf z, \mathbf h), \quad
        \boldsymbol\sigma = \operatorname{sigmoid}(\mathbf s + \beta), \quad
        \mathbf z' = \boldsymbol\sigma\odot\mathbf z + (1-\boldsymbol\sigma)\odot\mathbf m, \quad
        \log\left|\det\frac{\partial\mathbf z'}{\partial\mathbf z}\right| = \sum_i \log\sigma_i,

    with the forget-gate bias :math:`\beta` (``forget_bias``, K&W section 3.4: start close to the
    identity) and :math:`\log\sigma_i` computed as :math:`-\operatorname{softplus}(-(s_i + \beta))`,
    finite for any ``s``. Because :math:`m_i, s_i` depend only on earlier variables, the Jacobian is
    lower triangular (in the MADE ordering) with diagonal :math:`\boldsymbol\sigma`.
    """
    z_new, log_sigma = iaf_step_dims(params, masks, z, context, forget_bias)
    return z_new, np.sum(log_sigma, axis=-1)


def iaf_step_dims(params, masks, z, context=None, forget_bias=1.0):
    r""":func:`iaf_step` with the log-determinant left split over the variables: ``(z_new,
    log_sigma)``, :math:`\log\sigma_i` of shape ``(..., K)`` (the Jacobian's diagonal)."""
    K = np.shape(z)[-1]
    out = made_forward(params, masks, z, context)
    m, s = out[..., :K], out[..., K:]
    gate = s + forget_bias
    sigma = _sigmoid(gate)
    return sigma * z + (1.0 - sigma) * m, log_sigmoid(gate)


def iaf_step_affine(params, masks, z, context=None):
    r"""One IAF step in the form the monograph states first (K&W eq. 3.21-3.22):

    .. math::
        [\boldsymbol\mu, \log\boldsymbol\sigma] = \text{MADE}(\mathbf z, \mathbf h), \quad
        \mathbf z' = \boldsymbol\mu + \boldsymbol\sigma\odot\mathbf z, \quad
        \log\left|\det\frac{\partial\mathbf z'}{\partial\mathbf z}\right| = \sum_i\log\sigma_i.

    Unbounded :math:`\log\boldsymbol\sigma` can make a chain of such steps overflow; :func:`iaf_step`
    bounds :math:`\sigma \in (0, 1)`.
    """
    K = np.shape(z)[-1]
    out = made_forward(params, masks, z, context)
    mu, log_sigma = out[..., :K], out[..., K:]
    return mu + np.exp(log_sigma) * z, np.sum(log_sigma, axis=-1)


def iaf_inverse(params, masks, y, context=None, forget_bias=1.0, gated=True):
    r"""Inverse of :func:`iaf_step` (or of :func:`iaf_step_affine` with ``gated=False``).

    Inverting needs ``K`` sequential passes (Kingma et al. 2016, section 3): variable ``d`` is
    recovered once every variable before it is known, since :math:`m_d, s_d` depend only on those.
    This is why IAF samples fast (one pass) but evaluates the density of an arbitrary point slowly.
    """
    y = onp.asarray(y, float)
    K = y.shape[-1]
    z = onp.array(y)
    # fixed-point sweeps: after sweep p the first p variables in the MADE ordering are exact,
    # because they were computed from m, s that depend only on variables already exact
    for _ in range(K):
        out = onp.asarray(made_forward(params, masks, z, context))
        m, s = out[..., :K], out[..., K:]
        if gated:
            sigma = onp.asarray(_sigmoid(s + forget_bias))
            z = (y - (1.0 - sigma) * m) / sigma
        else:
            z = (y - m) / onp.exp(s)
    return z


# --- volume-preserving steps ---------------------------------------------------------------------


def householder_step(params, z):
    r"""Householder reflection :math:`\mathbf z' = (\mathbf I - 2\mathbf v\mathbf v^\top/\lVert\mathbf v\rVert^2)\mathbf z`
    (Tomczak & Welling 2016, eq. 9). Orthogonal, so :math:`|\det| = 1` and the log-determinant is 0;
    it is its own inverse. ``params = {"v": (..., K)}`` (``v`` may come from the encoder per data point).
    """
    v = params["v"]
    _check_last("z", z, np.shape(v)[-1])
    v_sq = np.sum(v * v, axis=-1, keepdims=True)
    if np.any(getval(v_sq) == 0):
        raise ValueError("Householder step needs v != 0")
    z_new = z - 2.0 * v * np.sum(v * z, axis=-1, keepdims=True) / v_sq
    return z_new, np.zeros(np.shape(z_new)[:-1])


def reverse_step(z):
    r"""Reverse the order of the variables, :math:`z'_i = z_{K+1-i}`: a permutation (volume preserving,
    log-determinant 0; K&W section 3.4: reversing between IAF steps helps). Its own inverse."""
    return z[..., ::-1], np.zeros(np.shape(z)[:-1])


def iaf_flow(steps, z, context=None, forget_bias=1.0):
    r"""``T`` gated IAF steps (:func:`iaf_step`), the variable order reversed between consecutive steps
    (K&W eq. 3.26-3.32 and section 3.4). ``steps`` is a list of ``(params, masks)`` from
    :func:`iaf_init`. Returns ``(z_T, sum_t log_det_t)``."""
    z, log_det_dims = iaf_flow_dims(steps, z, context, forget_bias)
    return z, np.sum(log_det_dims, axis=-1)


def iaf_flow_dims(steps, z, context=None, forget_bias=1.0, carry=None):
    r""":func:`iaf_flow` with the log-determinant split over the coordinates of :math:`\mathbf z_T`:
    ``(z_T, log_det_dims)``, ``(..., K)``; each step's :math:`\log\sigma_{t,i}` is credited to the
    coordinate variable :math:`i` ends up in (the running split is reversed with the order). With
    ``carry`` (a per-variable quantity of :math:`\mathbf z_0`, ``(..., K)``) returns ``(z_T,
    log_det_dims, carry moved to the coordinates of z_T)``."""
    total = np.zeros(np.shape(z))
    for t, (params, masks) in enumerate(steps):
        if t > 0:
            z, total = z[..., ::-1], total[..., ::-1]
            carry = None if carry is None else carry[..., ::-1]
        z, log_sigma = iaf_step_dims(params, masks, z, context, forget_bias)
        total = total + log_sigma
    return (z, total) if carry is None else (z, total, carry)


def flow_log_q(log_q0, log_dets):
    r""":math:`\log q(\mathbf z_T) = \log q(\mathbf z_0) - \sum_t \log|\det\partial\mathbf z_t/\partial\mathbf z_{t-1}|`
    (K&W eq. 3.16; Rezende & Mohamed 2015, eq. 7) for a list of per-step log-determinants."""
    total = log_q0
    for ld in log_dets:
        total = total - ld
    return total


def _check_last(name, z, K):
    if np.ndim(z) == 0 or np.shape(z)[-1] != K:
        raise ValueError(f"{name} must have shape (..., {K}), got {np.shape(z)}")
