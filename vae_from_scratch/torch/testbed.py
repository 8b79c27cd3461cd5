r"""The linear-Gaussian testbed in PyTorch: the same names and formulas as
:mod:`vae_from_scratch.numpy.testbed`, batched over data points and device-agnostic.

.. math::
    p(\mathbf z) = \mathcal N(\mathbf 0, \mathbf I_K), \qquad
    p_\theta(\mathbf x \mid \mathbf z) = \mathcal N(\mathbf W \mathbf z + \mathbf b, s^2 \mathbf I_D),

    p_\theta(\mathbf x) = \mathcal N(\mathbf b, \mathbf W\mathbf W^\top + s^2 \mathbf I), \qquad
    p_\theta(\mathbf z \mid \mathbf x) = \mathcal N\big(\boldsymbol\Sigma \mathbf W^\top
        (\mathbf x - \mathbf b)/s^2,\ \boldsymbol\Sigma\big), \quad
    \boldsymbol\Sigma = (\mathbf I + \mathbf W^\top \mathbf W / s^2)^{-1}

(probabilistic PCA; Tipping & Bishop 1999). ``W`` is ``(D, K)``, ``b`` ``(D,)``, ``log_s`` a scalar
tensor (the log of the noise standard deviation); data ``x`` is ``(..., D)``. Every function is
differentiable with autograd in all of its tensor arguments.
"""

import math

import torch

from .distributions import log_normal_diag, log_standard_normal

LOG_2PI = math.log(2.0 * math.pi)


def log_joint(x, z, W, b, log_s):
    r""":math:`\log p(\mathbf z) + \log p_\theta(\mathbf x\mid\mathbf z)`, broadcasting ``z`` (..., K)
    against ``x`` (..., D)."""
    _check(x, W, b)
    log_s = _as_tensor(log_s, W)
    mean = z @ W.T + b
    log_std = log_s.expand(x.shape[-1])
    return log_standard_normal(z) + log_normal_diag(x, mean, log_std)


def log_marginal(x, W, b, log_s):
    r"""Exact :math:`\log p_\theta(\mathbf x) = \log\mathcal N(\mathbf x; \mathbf b, \mathbf W\mathbf W^\top
    + s^2\mathbf I)`, one value per data point."""
    _check(x, W, b)
    log_s = _as_tensor(log_s, W)
    D = W.shape[0]
    eye = torch.eye(D, dtype=W.dtype, device=W.device)
    L = torch.linalg.cholesky(W @ W.T + torch.exp(2.0 * log_s) * eye)
    diff = (x - b).reshape(-1, D)
    white = torch.linalg.solve_triangular(L, diff.T, upper=False)  # (D, N)
    logdet = 2.0 * torch.log(torch.diagonal(L)).sum()
    values = -0.5 * (white.pow(2).sum(0) + logdet + D * LOG_2PI)
    return values.reshape(x.shape[:-1])


def posterior(x, W, b, log_s):
    r"""Exact posterior :math:`p_\theta(\mathbf z\mid\mathbf x)`: ``(mean, cov)`` with mean ``(..., K)``
    and the covariance ``(K, K)`` shared by every data point."""
    _check(x, W, b)
    log_s = _as_tensor(log_s, W)
    K = W.shape[1]
    eye = torch.eye(K, dtype=W.dtype, device=W.device)
    cov = torch.linalg.inv(eye + W.T @ W * torch.exp(-2.0 * log_s))
    mean = (x - b) @ W @ cov.T * torch.exp(-2.0 * log_s)
    return mean, cov


def sample(generator, n, W, b, log_s):
    """Draw ``n`` pairs ``(x, z)`` from the model; ``generator`` is a ``torch.Generator`` on ``W``'s
    device (or None for torch's global generator)."""
    D, K = W.shape
    log_s = _as_tensor(log_s, W)
    z = torch.randn((n, K), generator=generator, dtype=W.dtype, device=W.device)
    noise = torch.randn((n, D), generator=generator, dtype=W.dtype, device=W.device)
    x = z @ W.T + b + torch.exp(log_s) * noise
    return x, z


def elbo_gaussian(x, W, b, log_s, mean, scale_tril):
    r"""Exact ELBO of :math:`q = \mathcal N(\mathbf m, \mathbf L\mathbf L^\top)` (``scale_tril`` lower
    triangular, ``(K, K)`` or ``(..., K, K)``); see :func:`vae_from_scratch.numpy.testbed.elbo_gaussian`
    for the formula (K&W eq. 2.10 in closed form)."""
    _check(x, W, b)
    log_s = _as_tensor(log_s, W)
    D, K = W.shape
    L = _check_q(mean, scale_tril, K)
    resid = x - mean @ W.T - b
    WL = torch.matmul(W, L)
    s2 = torch.exp(2.0 * log_s)
    e_loglik = (-0.5 * D * LOG_2PI - D * log_s
                - 0.5 * (resid.pow(2).sum(-1) + WL.pow(2).sum((-2, -1))) / s2)
    e_logprior = -0.5 * K * LOG_2PI - 0.5 * (mean.pow(2).sum(-1) + L.pow(2).sum((-2, -1)))
    entropy = 0.5 * K * (1.0 + LOG_2PI) + torch.log(torch.diagonal(L, dim1=-2, dim2=-1).abs()).sum(-1)
    return e_loglik + e_logprior + entropy


def kl_to_posterior(x, W, b, log_s, mean, scale_tril):
    r"""Exact :math:`D_{KL}(\mathcal N(\mathbf m, \mathbf L\mathbf L^\top)\,\|\,p_\theta(\mathbf z\mid\mathbf x))`,
    the gap between :math:`\log p_\theta(\mathbf x)` and the ELBO (K&W eq. 2.8); see
    :func:`vae_from_scratch.numpy.testbed.kl_to_posterior`."""
    _check(x, W, b)
    log_s = _as_tensor(log_s, W)
    K = W.shape[1]
    L = _check_q(mean, scale_tril, K)
    eye = torch.eye(K, dtype=W.dtype, device=W.device)
    precision = eye + W.T @ W * torch.exp(-2.0 * log_s)
    post_mean, _ = posterior(x, W, b, log_s)
    diff = post_mean - mean
    trace = (torch.matmul(precision, L) * L).sum((-2, -1))
    maha = ((diff @ precision) * diff).sum(-1)
    logdet_precision = torch.linalg.slogdet(precision)[1]
    logdet_cov_q = 2.0 * torch.log(torch.diagonal(L, dim1=-2, dim2=-1).abs()).sum(-1)
    return 0.5 * (trace + maha - K - logdet_precision - logdet_cov_q)


def _check(x, W, b):
    for name, t in (("x", x), ("W", W), ("b", b)):
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if W.dim() != 2:
        raise ValueError(f"W must be a (D, K) matrix, got shape {tuple(W.shape)}")
    D = W.shape[0]
    if x.shape[-1:] != (D,) or b.shape[-1:] != (D,):
        raise ValueError(f"x {tuple(x.shape)} and b {tuple(b.shape)} must end in D={D} (W is {tuple(W.shape)})")


def _as_tensor(log_s, W):
    """``log_s`` as a scalar tensor of ``W``'s dtype and device (a Python float is accepted)."""
    if isinstance(log_s, torch.Tensor):
        if log_s.dim() != 0:
            raise ValueError(f"log_s must be a scalar, got shape {tuple(log_s.shape)}")
        return log_s.to(dtype=W.dtype)
    return torch.as_tensor(float(log_s), dtype=W.dtype, device=W.device)


def _check_q(mean, scale_tril, K):
    if mean.shape[-1:] != (K,):
        raise ValueError(f"mean must end in K={K}, got shape {tuple(mean.shape)}")
    if scale_tril.dim() < 2 or scale_tril.shape[-2:] != (K, K):
        raise ValueError(f"scale_tril must end in ({K}, {K}), got shape {tuple(scale_tril.shape)}")
    if bool((torch.triu(scale_tril.detach(), 1) != 0).any()):
        raise ValueError("scale_tril must be lower triangular (its log-determinant is read off the diagonal)")
    if bool((torch.diagonal(scale_tril.detach(), dim1=-2, dim2=-1) == 0).any()):
        raise ValueError("scale_tril needs a non-zero diagonal (q would be degenerate)")
    return scale_tril
