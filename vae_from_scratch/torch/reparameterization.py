r"""Reparameterized samplers with their log-densities in PyTorch: the same names and conventions as
:mod:`vae_from_scratch.numpy.reparameterization` (event axis last, mean and log-std parameters,
matrices ``(..., K, K)``, batch axes broadcast), batched and device-agnostic.

Randomness: pass the noise ``eps`` itself, or a ``torch.Generator`` (on the parameters' device)
and a ``sample_shape``; no global random state is used when ``eps`` or ``generator`` is given.

Validation: the functions that take a factor ``L`` check its shape (free: shapes live on the host)
and, with ``validate=True`` (the default), that it is lower triangular. That value check reads the
tensor back to the host, one device synchronization per call. In a training loop where ``L`` comes
from :func:`full_covariance_factor` (triangular by construction), pass ``validate=False``.

Source: Kingma & Welling (2019), sections 2.4-2.5.1 (K&W eqs. 2.20 and 2.33-2.55).
"""

import torch

from ..numpy.reparameterization import BAD_DIAGONAL, NOT_TRIANGULAR  # one message for both backends
from .distributions import _check_event, _check_finite_log_std, log_standard_normal

__all__ = [
    "rsample_normal_diag",
    "log_det_jacobian_diag",
    "strictly_lower_mask",
    "full_covariance_factor",
    "rsample_normal_full",
    "log_normal_full",
    "log_det_jacobian_full",
    "kl_normal_full_standard",
]


def rsample_normal_diag(mean, log_std, eps=None, generator=None, sample_shape=(), validate=True):
    r""":math:`\mathbf z = \boldsymbol\mu + \boldsymbol\sigma\odot\boldsymbol\epsilon` and
    :math:`\log q(\mathbf z) = \log\mathcal N(\boldsymbol\epsilon;\mathbf 0,\mathbf I) - \sum_j\log\sigma_j`
    (K&W eqs. 2.38-2.44). Returns ``(z, log_q)``.

    ``eps`` defaults to standard-normal noise of shape ``sample_shape + broadcast(mean, log_std)``
    drawn with ``generator``. ``validate=True`` refuses a non-finite ``log_std`` (a host
    synchronization; training loops pass ``validate=False``).
    """
    _check_event(mean=mean, log_std=log_std)
    if validate:
        _check_finite_log_std(log_std)
    if eps is None:
        shape = tuple(sample_shape) + torch.broadcast_shapes(mean.shape, log_std.shape)
        eps = torch.randn(shape, generator=generator, dtype=mean.dtype, device=mean.device)
    else:
        _check_event(mean=mean, log_std=log_std, eps=eps)
    z = mean + torch.exp(log_std) * eps
    log_q = log_standard_normal(eps) - log_det_jacobian_diag(log_std)
    return z, log_q.expand(z.shape[:-1])


def log_det_jacobian_diag(log_std):
    r""":math:`\sum_j \log\sigma_j`, the log-determinant of :math:`\operatorname{diag}(\boldsymbol\sigma)`
    (K&W eq. 2.42)."""
    _check_event(log_std=log_std)
    return log_std.sum(-1)


def strictly_lower_mask(K, dtype=None, device=None):
    r""":math:`\mathbf L_{mask}` of K&W eq. 2.54: ones strictly below the diagonal, shape ``(K, K)``."""
    if int(K) != K or K < 1:
        raise ValueError(f"K must be a positive integer, got {K!r}")
    return torch.ones(int(K), int(K), dtype=dtype, device=device).tril(-1)


def full_covariance_factor(L_prime, log_std):
    r""":math:`\mathbf L = \mathbf L_{mask}\odot\mathbf L' + \operatorname{diag}(\boldsymbol\sigma)` and
    :math:`\log|\det\mathbf L| = \sum_j\log\sigma_j` (K&W eqs. 2.53-2.55).

    ``L_prime`` is ``(..., K, K)``, ``log_std`` is ``(..., K)``; returns ``(L, log_det)``.
    """
    if not isinstance(L_prime, torch.Tensor) or L_prime.dim() < 2 or L_prime.shape[-1] != L_prime.shape[-2]:
        raise ValueError(f"L_prime must be a tensor of shape (..., K, K), got "
                         f"{tuple(L_prime.shape) if isinstance(L_prime, torch.Tensor) else type(L_prime).__name__}")
    _check_event(log_std=log_std)
    K = L_prime.shape[-1]
    if log_std.shape[-1] != K:
        raise ValueError(f"log_std must have shape (..., K) with K={K}, got {tuple(log_std.shape)}")
    mask = strictly_lower_mask(K, dtype=L_prime.dtype, device=L_prime.device)
    L = mask * L_prime + torch.diag_embed(torch.exp(log_std))
    return L, log_std.sum(-1)


def rsample_normal_full(mean, L, eps=None, generator=None, sample_shape=(), validate=True):
    r""":math:`\mathbf z = \boldsymbol\mu + \mathbf L\boldsymbol\epsilon` and
    :math:`\log q(\mathbf z) = \log\mathcal N(\boldsymbol\epsilon;\mathbf 0,\mathbf I) - \sum_j\log|L_{jj}|`
    for a lower-triangular ``L`` (K&W eqs. 2.46-2.49). Returns ``(z, log_q)``.

    ``validate=False`` skips the (host-synchronizing) check that ``L`` is lower triangular."""
    _check_event(mean=mean)
    _check_factor(L, mean.shape[-1], validate=validate)
    if eps is not None:
        _check_event(mean=mean, eps=eps)
    _check_factor_batch(L, mean=mean, **({} if eps is None else {"eps": eps}))
    if eps is None:
        shape = tuple(sample_shape) + torch.broadcast_shapes(mean.shape, L.shape[:-1])
        eps = torch.randn(shape, generator=generator, dtype=mean.dtype, device=mean.device)
    z = mean + (L @ eps.unsqueeze(-1)).squeeze(-1)
    log_q = log_standard_normal(eps) - log_det_jacobian_full(L, validate=False)
    return z, log_q.expand(z.shape[:-1])


def log_normal_full(z, mean, L, validate=True):
    r""":math:`\log\mathcal N(\mathbf z; \boldsymbol\mu, \mathbf L\mathbf L^\top)` through
    :math:`\boldsymbol\epsilon = \mathbf L^{-1}(\mathbf z-\boldsymbol\mu)` (a triangular solve) and
    K&W eq. 2.33 with the Jacobian of K&W eq. 2.48. ``validate=False`` skips the triangularity check."""
    _check_event(z=z, mean=mean)
    _check_factor(L, mean.shape[-1], validate=validate)
    _check_factor_batch(L, z=z, mean=mean)
    diff = z - mean
    shape = torch.broadcast_shapes(diff.shape[:-1], L.shape[:-2])
    K = mean.shape[-1]
    eps = torch.linalg.solve_triangular(L.expand(shape + (K, K)),
                                        diff.expand(shape + (K,)).unsqueeze(-1), upper=False)
    return log_standard_normal(eps.squeeze(-1)) - log_det_jacobian_full(L, validate=False)


def log_det_jacobian_full(L, validate=True):
    r""":math:`\sum_j\log|L_{jj}|` for a triangular ``L`` of shape ``(..., K, K)`` (K&W eq. 2.48).
    ``validate=False`` skips the triangularity check."""
    _check_factor(L, validate=validate)
    return torch.diagonal(L, dim1=-2, dim2=-1).abs().log().sum(-1)


def kl_normal_full_standard(mean, L, validate=True):
    r""":math:`D_{KL}(\mathcal N(\boldsymbol\mu,\mathbf L\mathbf L^\top)\,\|\,\mathcal N(\mathbf 0,\mathbf I))
    = \tfrac12(\operatorname{tr}\mathbf L\mathbf L^\top + \boldsymbol\mu^\top\boldsymbol\mu - K)
    - \log|\det\mathbf L|`. ``validate=False`` skips the triangularity check."""
    _check_event(mean=mean)
    _check_factor(L, mean.shape[-1], validate=validate)
    _check_factor_batch(L, mean=mean)
    K = L.shape[-1]
    return 0.5 * (L.pow(2).sum((-2, -1)) + mean.pow(2).sum(-1) - K) - log_det_jacobian_full(L, validate=False)


def _check_factor(L, K=None, validate=True):
    """Shape checks (free) and, if ``validate``, the value check that ``L`` is lower triangular."""
    if not isinstance(L, torch.Tensor):
        raise ValueError(f"L must be a torch.Tensor, got {type(L).__name__}")
    if L.dim() < 2 or L.shape[-1] != L.shape[-2]:
        raise ValueError(f"L must have shape (..., K, K), got {tuple(L.shape)}")
    if K is not None and L.shape[-1] != K:
        raise ValueError(f"L has shape {tuple(L.shape)} but the event size is K={K}")
    if validate:
        _check_lower_triangular(L)


def _check_lower_triangular(L):
    # bool() of a tensor reads it back to the host: one device synchronization
    values = L.detach()
    diagonal = torch.diagonal(values, dim1=-2, dim2=-1)
    bad_upper, bad_diagonal = torch.stack([(values.triu(1) != 0).any(),
                                           ~(torch.isfinite(diagonal) & (diagonal != 0)).all()]).tolist()
    if bad_upper:
        raise ValueError(NOT_TRIANGULAR)
    if bad_diagonal:
        raise ValueError(BAD_DIAGONAL)


def _check_factor_batch(L, **named):
    """``L``'s batch axes (all but the last two) must broadcast with the named tensors' batch axes,
    and all of them share one dtype and device (torch would raise a ``RuntimeError`` later)."""
    for name, t in named.items():
        if t.is_floating_point() and (t.dtype != L.dtype or t.device != L.device):
            raise ValueError(f"L and {name} must have the same dtype and device, got L: {L.dtype} on "
                             f"{L.device}, {name}: {t.dtype} on {t.device}")
    try:
        torch.broadcast_shapes(L.shape[:-2], *(t.shape[:-1] for t in named.values()))
    except RuntimeError:
        raise ValueError("batch shapes do not broadcast: " + ", ".join(
            f"{n}{tuple(t.shape)}" for n, t in [("L", L)] + list(named.items()))) from None
