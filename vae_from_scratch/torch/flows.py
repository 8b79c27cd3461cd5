r"""Normalizing flows in PyTorch: the same steps as :mod:`vae_from_scratch.numpy.flows` as
``nn.Module``\ s, batched and device-agnostic.

Every step is called as ``step(z, context=None) -> (z_new, log_det)`` with ``z`` ``(..., K)`` and
``log_det`` :math:`= \log|\det\partial\mathbf z_{new}/\partial\mathbf z|` of shape ``(...)``, so that
(K&W eq. 3.16; Rezende & Mohamed 2015, eq. 7)

.. math::
    \log q(\mathbf z_T\mid\mathbf x) = \log q(\mathbf z_0\mid\mathbf x)
        - \sum_{t=1}^{T} \log\left|\det\frac{\partial\mathbf z_t}{\partial\mathbf z_{t-1}}\right|.

* :class:`PlanarFlow` (Rezende & Mohamed 2015, eq. 10-12, appendix A; K&W eq. 3.17),
* :class:`MADE` (Germain et al. 2015) with :func:`made_degrees` / :func:`made_masks`,
* :class:`IAFStep`: gated (K&W eq. 3.30-3.32, Kingma et al. 2016 eq. 14) or affine (K&W eq. 3.21-3.22),
* :class:`Householder` (Tomczak & Welling 2016) and :class:`Reverse`: volume preserving,
* :class:`IAFFlow`: ``T`` IAF steps with the variable order reversed between them.

Each module has ``load_numpy_params`` taking the parameter pytree of the NumPy function it mirrors,
for float64 parity checks.
"""

import torch
import torch.nn.functional as F
from torch import nn

from ..numpy import flows as _nf

__all__ = ["planar_u_hat", "made_degrees", "made_masks", "PlanarFlow", "MaskedLinear", "MADE",
           "IAFStep", "Householder", "Reverse", "IAFFlow", "flow_log_q"]


def planar_u_hat(u, w):
    r""":math:`\hat{\mathbf u} = \mathbf u + (m(\mathbf w^\top\mathbf u) - \mathbf w^\top\mathbf u)\,\mathbf w/\lVert\mathbf w\rVert^2`,
    :math:`m(a) = -1 + \operatorname{softplus}(a)` (Rezende & Mohamed 2015, appendix A), so that
    :math:`\mathbf w^\top\hat{\mathbf u} > -1`. No check for ``w = 0`` (it would need a host sync)."""
    wu = (w * u).sum(-1, keepdim=True)
    return u + (F.softplus(wu) - 1.0 - wu) * w / (w * w).sum(-1, keepdim=True)


def made_degrees(K, hidden, order=None, rng=None):
    """Degrees of a MADE network as integer tensors; see :func:`vae_from_scratch.numpy.flows.made_degrees`
    (same rule, same draws for the same numpy ``rng``)."""
    return [torch.as_tensor(d) for d in _nf.made_degrees(K, hidden, order=order, rng=rng)]


def made_masks(degrees, n_outputs=1):
    """Masks ``(in, out)`` from degrees (Germain et al. 2015, eq. 12-13): ``>=`` for hidden layers,
    strict ``>`` for the output layer; see :func:`vae_from_scratch.numpy.flows.made_masks`."""
    masks = _nf.made_masks([d.cpu().numpy() if torch.is_tensor(d) else d for d in degrees], n_outputs)
    return [torch.as_tensor(m) for m in masks]


def flow_log_q(log_q0, log_dets):
    r""":math:`\log q(\mathbf z_0) - \sum_t \log|\det\partial\mathbf z_t/\partial\mathbf z_{t-1}|` (K&W eq. 3.16)."""
    total = log_q0
    for ld in log_dets:
        total = total - ld
    return total


class PlanarFlow(nn.Module):
    r"""Planar step :math:`\mathbf f(\mathbf z) = \mathbf z + \hat{\mathbf u}\tanh(\mathbf w^\top\mathbf z + b)`,
    log-det :math:`\log|1 + \hat{\mathbf u}^\top\boldsymbol\psi(\mathbf z)|`,
    :math:`\boldsymbol\psi = (1-\tanh^2(\mathbf w^\top\mathbf z+b))\,\mathbf w` (Rezende & Mohamed 2015,
    eq. 10-12). Global parameters ``u, w, b`` (not amortized)."""

    def __init__(self, K, scale=0.1, generator=None):
        super().__init__()
        self.K = int(K)
        self.u = nn.Parameter(scale * torch.randn(self.K, generator=generator))
        w = scale * torch.randn(self.K, generator=generator)
        self.w = nn.Parameter(w + scale * torch.where(w >= 0, 1.0, -1.0))
        self.b = nn.Parameter(scale * torch.randn((), generator=generator))

    def forward(self, z, context=None):
        u_hat = planar_u_hat(self.u, self.w)
        t = torch.tanh(z @ self.w + self.b)
        psi_u = (1.0 - t * t) * (self.w * u_hat).sum(-1)
        return z + u_hat * t.unsqueeze(-1), torch.log(torch.abs(1.0 + psi_u))

    def load_numpy_params(self, params):
        with torch.no_grad():
            for name in ("u", "w", "b"):
                p = getattr(self, name)
                p.copy_(torch.as_tensor(params[name], dtype=p.dtype))
        return self


class MaskedLinear(nn.Linear):
    """``nn.Linear`` whose weight is multiplied by a fixed 0/1 mask (a buffer) in every call.
    ``mask`` is given in the ``(in, out)`` layout of :func:`made_masks`."""

    def __init__(self, mask):
        n_in, n_out = mask.shape
        super().__init__(n_in, n_out)
        self.register_buffer("mask", torch.as_tensor(mask, dtype=self.weight.dtype).T.contiguous())

    def forward(self, x):
        return F.linear(x, self.weight * self.mask, self.bias)


class MADE(nn.Module):
    r"""Masked autoencoder for distribution estimation (Germain et al. 2015): a tanh MLP
    ``z (..., K) -> (..., n_outputs*K)`` whose output ``j*K + d`` depends only on the variables before
    ``d`` in ``order`` and on an optional context ``h`` (``context_dim`` inputs into the first hidden
    layer, unmasked). Degrees as :func:`made_degrees` (``rng`` a numpy Generator for random degrees)."""

    def __init__(self, K, hidden, n_outputs=2, context_dim=0, order=None, rng=None):
        super().__init__()
        if len(hidden) < 1:
            raise ValueError("MADE needs at least one hidden layer")
        self.K, self.n_outputs = int(K), int(n_outputs)
        self.degrees = made_degrees(K, hidden, order=order, rng=rng)
        masks = made_masks(self.degrees, n_outputs)
        self.layers = nn.ModuleList(MaskedLinear(m) for m in masks)
        self.context = nn.Linear(int(context_dim), int(hidden[0]), bias=False) if context_dim else None

    def forward(self, z, context=None):
        a = z
        for i, layer in enumerate(self.layers):
            a = layer(a)
            if i == 0 and context is not None:
                if self.context is None:
                    raise ValueError("a context was given but this MADE has context_dim=0")
                a = a + self.context(context)
            if i < len(self.layers) - 1:
                a = torch.tanh(a)
        return a

    def load_numpy_params(self, params):
        """Copy :func:`vae_from_scratch.numpy.flows.made_init` parameters (``W`` are ``(in, out)``)."""
        with torch.no_grad():
            for layer, W, b in zip(self.layers, params["W"], params["b"]):
                layer.weight.copy_(torch.as_tensor(W, dtype=layer.weight.dtype).T)
                layer.bias.copy_(torch.as_tensor(b, dtype=layer.bias.dtype))
            if self.context is not None:
                self.context.weight.copy_(torch.as_tensor(params["C"], dtype=self.context.weight.dtype).T)
        return self


class IAFStep(nn.Module):
    r"""One IAF step around a :class:`MADE` with two outputs per variable.

    ``gated=True`` (default, K&W eq. 3.30-3.32): :math:`\boldsymbol\sigma = \operatorname{sigmoid}(\mathbf s+\beta)`,
    :math:`\mathbf z' = \boldsymbol\sigma\odot\mathbf z + (1-\boldsymbol\sigma)\odot\mathbf m`,
    log-det :math:`\sum_i\log\sigma_i` via ``logsigmoid`` (finite for any ``s``).
    ``gated=False`` (K&W eq. 3.21-3.22): :math:`\mathbf z' = \boldsymbol\mu + e^{\mathbf s}\odot\mathbf z`,
    log-det :math:`\sum_i s_i`. ``forget_bias`` :math:`\beta` starts the gated step near the identity.
    """

    def __init__(self, K, hidden, context_dim=0, forget_bias=1.0, gated=True, order=None, rng=None):
        super().__init__()
        self.K, self.forget_bias, self.gated = int(K), float(forget_bias), bool(gated)
        self.made = MADE(K, hidden, 2, context_dim, order=order, rng=rng)

    def forward(self, z, context=None):
        z_new, log_det_dims = self.forward_dims(z, context)
        return z_new, log_det_dims.sum(-1)

    def forward_dims(self, z, context=None):
        r"""``(z_new, log_det_dims)``: the log-determinant split over the variables, ``(..., K)``,
        :math:`\log\sigma_i` (gated) or :math:`s_i` (affine); the Jacobian is triangular, so its
        log-determinant is the sum of these diagonal terms."""
        m, s = self.made(z, context).chunk(2, dim=-1)
        if not self.gated:
            return m + torch.exp(s) * z, s
        gate = s + self.forget_bias
        sigma = torch.sigmoid(gate)
        return sigma * z + (1.0 - sigma) * m, F.logsigmoid(gate)

    def load_numpy_params(self, params):
        self.made.load_numpy_params(params)
        return self


class Householder(nn.Module):
    r"""Reflection :math:`\mathbf z' = \mathbf z - 2\mathbf v(\mathbf v^\top\mathbf z)/\lVert\mathbf v\rVert^2`
    (Tomczak & Welling 2016); log-det 0. With ``context_dim > 0``, ``v`` is a linear function of the
    context (one reflection per data point, as in the paper); otherwise a global parameter."""

    def __init__(self, K, context_dim=0, generator=None):
        super().__init__()
        self.K = int(K)
        self.v = nn.Parameter(torch.randn(self.K, generator=generator))
        self.context = nn.Linear(int(context_dim), self.K) if context_dim else None

    def forward(self, z, context=None):
        v = self.v if (self.context is None or context is None) else self.v + self.context(context)
        z_new = z - 2.0 * v * (v * z).sum(-1, keepdim=True) / (v * v).sum(-1, keepdim=True)
        return z_new, torch.zeros(z_new.shape[:-1], dtype=z.dtype, device=z.device)

    def load_numpy_params(self, params):
        with torch.no_grad():
            self.v.copy_(torch.as_tensor(params["v"], dtype=self.v.dtype))
        return self


class Reverse(nn.Module):
    """Reverse the variable order (a permutation: log-det 0; K&W section 3.4)."""

    def forward(self, z, context=None):
        return z.flip(-1), torch.zeros(z.shape[:-1], dtype=z.dtype, device=z.device)


class IAFFlow(nn.Module):
    r"""``T`` gated IAF steps sharing the context ``h``, the variable order reversed between steps
    (K&W eq. 3.26-3.32, section 3.4). ``forward(z0, h) -> (z_T, sum of log-dets)``."""

    def __init__(self, K, T, hidden, context_dim=0, forget_bias=1.0, gated=True):
        super().__init__()
        if int(T) < 1:
            raise ValueError(f"an IAF flow needs T >= 1 steps, got {T}")
        steps = []
        for t in range(int(T)):
            if t > 0:
                steps.append(Reverse())
            steps.append(IAFStep(K, hidden, context_dim, forget_bias, gated))
        self.steps = nn.ModuleList(steps)

    def forward(self, z, context=None):
        z, log_det_dims = self.forward_dims(z, context)
        return z, log_det_dims.sum(-1)

    def forward_dims(self, z, context=None):
        r"""``(z_T, log_det_dims)`` with the log-determinant split over the coordinates of
        :math:`\mathbf z_T`, ``(..., K)``: each step's :math:`\log\sigma_{t,i}` is credited to the
        coordinate that variable :math:`i` ends up in (the running split is reversed with the order).
        Summed over the last axis it is :meth:`forward`'s log-determinant."""
        total = torch.zeros_like(z)
        for step in self.steps:
            if isinstance(step, Reverse):
                z, total = z.flip(-1), total.flip(-1)
                continue
            z, log_det_dims = step.forward_dims(z, context)
            total = total + log_det_dims
        return z, total

    def carry(self, v):
        r"""A per-variable quantity ``v`` ``(..., K)`` of :math:`\mathbf z_0` moved to the coordinates
        of :math:`\mathbf z_T` (the flow's order reversals applied to it)."""
        for step in self.steps:
            if isinstance(step, Reverse):
                v = v.flip(-1)
        return v
