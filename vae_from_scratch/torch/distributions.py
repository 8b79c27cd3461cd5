r"""Densities and KL divergences in PyTorch: the same names and conventions as
:mod:`vae_from_scratch.numpy.distributions` (event axis last, mean and log-std parameters,
arguments broadcast over batch axes), batched and device-agnostic.

Source: Kingma & Welling (2019), section 2.5; Kingma & Welling (2014), appendix B.
"""

import math

import torch
import torch.nn.functional as F

from ..numpy.distributions import NON_FINITE_LOG_STD  # one message for both backends

LOG_2PI = math.log(2.0 * math.pi)


def softplus(x):
    r"""Numerically stable :math:`\log(1 + e^{x})`.

    ``F.softplus`` returns ``x`` itself above its ``threshold`` (default 20), an absolute error of
    :math:`\log(1+e^{-x})`, up to 2e-9 near 20: fine in float32, but visible in float64. The threshold
    is raised to 40 in float64, where :math:`e^{-40}` is below the rounding error of ``x``.
    """
    return F.softplus(x, threshold=40.0 if x.dtype == torch.float64 else 20.0)


def log_standard_normal(x):
    r""":math:`\log \mathcal N(\mathbf x; \mathbf 0, \mathbf I)`, summed over the last axis."""
    _check_event(x=x)
    return -0.5 * (x.pow(2) + LOG_2PI).sum(-1)


def log_normal_diag(x, mean, log_std, validate=True):
    r""":math:`\log \mathcal N(\mathbf x; \boldsymbol\mu, \operatorname{diag} e^{2\log\boldsymbol\sigma})`,
    summed over the last axis (K&W eqs. 2.37 and 2.44).

    ``validate=True`` refuses a non-finite ``log_std`` (at ``-inf`` the formula returns NaN) with a
    ``ValueError``; that check reads a value back from the device (a host synchronization), so
    training loops pass ``validate=False``."""
    _check_event(x=x, mean=mean, log_std=log_std)
    if validate:
        _check_finite_log_std(log_std)
    z = (x - mean) * torch.exp(-log_std)
    return -(log_std + 0.5 * LOG_2PI + 0.5 * z.pow(2)).sum(-1)


def bernoulli_log_likelihood(x, logits, validate=True):
    r""":math:`\sum_j x_j \lambda_j - \operatorname{softplus}(\lambda_j)`: the Bernoulli log-likelihood
    of binary ``x`` from logits, finite for any finite logit (K&W eqs. 1.17-1.18).

    ``validate=True`` checks that ``x`` holds only 0 and 1; that check reads a value back from the
    device (a host synchronization), so a training loop that has checked its data once passes
    ``validate=False``. Shapes and dtypes are always checked.
    """
    _check_event(x=x, logits=logits)
    if not logits.is_floating_point():
        raise ValueError(f"logits must be a floating-point tensor, got dtype {logits.dtype}")
    if validate and not bool(((x == 0) | (x == 1)).all()):
        raise ValueError("bernoulli_log_likelihood: x must contain only 0 and 1 (binary data)")
    x = x.to(logits.dtype)
    return (x * logits - softplus(logits)).sum(-1)


def kl_normal_standard_per_dim(mean, log_std):
    r""":math:`\tfrac12(\mu_j^2 + \sigma_j^2 - 1) - \log\sigma_j`, the KL to N(0, 1) per dimension."""
    _check_event(mean=mean, log_std=log_std)
    return 0.5 * (mean.pow(2) + torch.exp(2.0 * log_std) - 1.0) - log_std


def kl_normal_standard(mean, log_std):
    r"""KL from a diagonal Gaussian to :math:`\mathcal N(\mathbf 0, \mathbf I)`, summed over the last axis."""
    return kl_normal_standard_per_dim(mean, log_std).sum(-1)


def kl_normal_diag(mean_q, log_std_q, mean_p, log_std_p):
    r"""Closed-form :math:`D_{KL}(q\|p)` between diagonal Gaussians, summed over the last axis."""
    _check_event(mean_q=mean_q, log_std_q=log_std_q, mean_p=mean_p, log_std_p=log_std_p)
    ratio = torch.exp(2.0 * (log_std_q - log_std_p))
    scaled_gap = (mean_q - mean_p) * torch.exp(-log_std_p)
    return (log_std_p - log_std_q + 0.5 * (ratio + scaled_gap.pow(2) - 1.0)).sum(-1)


def sample_normal_diag(mean, log_std, eps=None, generator=None, sample_shape=()):
    r"""Reparameterized sample :math:`\boldsymbol\mu + e^{\log\boldsymbol\sigma} \odot \boldsymbol\epsilon`
    (K&W eq. 2.40).

    Pass the noise ``eps`` itself, or let it be drawn with ``generator`` (a ``torch.Generator`` on the
    parameters' device) with shape ``sample_shape + broadcast(mean, log_std).shape``.
    """
    _check_event(mean=mean, log_std=log_std)
    if eps is None:
        shape = tuple(sample_shape) + torch.broadcast_shapes(mean.shape, log_std.shape)
        eps = torch.randn(shape, generator=generator, dtype=mean.dtype, device=mean.device)
    else:
        _check_event(mean=mean, log_std=log_std, eps=eps)
    return mean + torch.exp(log_std) * eps


def _check_finite_log_std(log_std):
    # bool() of a tensor reads it back to the host: one device synchronization
    if not bool(torch.isfinite(log_std.detach()).all()):
        raise ValueError(NON_FINITE_LOG_STD)


def _check_event(**tensors):
    """Tensors, real floating point (or integer data), same last-axis size, broadcastable."""
    for name, t in tensors.items():
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.is_complex():
            raise ValueError(f"{name} must be real-valued, got dtype {t.dtype}")
        if t.dim() == 0:
            raise ValueError(f"{name} needs an event axis (the last axis); got a scalar")
    shapes = {n: tuple(t.shape) for n, t in tensors.items()}
    if len({s[-1] for s in shapes.values()}) > 1:
        raise ValueError("event (last-axis) sizes differ: " + ", ".join(f"{n}{s}" for n, s in shapes.items()))
    try:
        torch.broadcast_shapes(*shapes.values())
    except RuntimeError:
        raise ValueError("batch shapes do not broadcast: "
                         + ", ".join(f"{n}{s}" for n, s in shapes.items())) from None
