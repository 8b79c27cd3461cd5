r"""Posterior collapse in PyTorch: KL per dimension, free bits, KL warm-up, active units, ELBO surgery.

Same names and conventions as :mod:`vae_from_scratch.numpy.collapse` (see there for the math and the
sources: monograph section 2.8.1, K&W eqs. 2.69-2.70; Kingma et al. 2016, appendix C; Burda et al. 2016;
Hoffman & Johnson 2016; Tipping & Bishop 1999), batched and device-agnostic. The free-bits term and the
KL per dimension are differentiable and used by the training objectives
(:mod:`vae_from_scratch.torch.objectives`); the diagnostics run under ``torch.no_grad``.
"""

import math

import torch

from .distributions import kl_normal_standard_per_dim, log_normal_diag, log_standard_normal

ACTIVE_THRESHOLD = 1e-2


def kl_per_dim(mean, log_std):
    r""":math:`\tfrac12(\mu_k^2 + \sigma_k^2 - 1) - \log\sigma_k`, ``(..., K)`` (Kingma & Welling 2014,
    appendix B)."""
    return kl_normal_standard_per_dim(mean, log_std)


def active_unit_variances(means):
    r"""Variance over the data (dim 0, population variance) of each unit's exact posterior mean, ``(K,)``
    (Burda et al. 2016, section 5.2)."""
    if not isinstance(means, torch.Tensor) or means.dim() != 2 or means.shape[0] < 2:
        raise ValueError("means must be a (N, K) tensor with N >= 2 data points")
    return means.var(dim=0, unbiased=False)


def active_units(means, threshold=ACTIVE_THRESHOLD):
    r""":math:`\#\{k: \operatorname{Var}_{\mathbf x}(\mu_k(\mathbf x)) > \text{threshold}\}` from exact means
    ``(N, K)`` (Burda et al. 2016); returns a Python int."""
    if not threshold > 0:
        raise ValueError(f"threshold must be positive, got {threshold}")
    return int((active_unit_variances(means) > threshold).sum())


def warmup_beta(progress, warmup):
    r""":math:`\beta = \min(1, \text{progress}/\text{warmup})` (``warmup = 0``: always 1); a Python float."""
    progress, warmup = float(progress), float(warmup)
    if not 0.0 <= warmup <= 1.0:
        raise ValueError(f"warmup must be a fraction of training in [0, 1], got {warmup}")
    if not 0.0 <= progress <= 1.0:
        raise ValueError(f"progress must be in [0, 1], got {progress}")
    return 1.0 if warmup == 0.0 else min(1.0, progress / warmup)


def group_kl(kl_dims, groups=None):
    r"""Per-dimension KL ``(..., K)`` summed within ``groups`` contiguous equal groups, ``(..., G)``."""
    K = kl_dims.shape[-1]
    G = K if groups is None else int(groups)
    if G < 1 or K % G != 0:
        raise ValueError(f"groups must divide the latent dimension K={K}, got {groups}")
    return kl_dims.reshape(*kl_dims.shape[:-1], G, K // G).sum(-1)


def free_bits_kl(kl_dims, free_bits, groups=None):
    r""":math:`\sum_j \max(\lambda, \mathbb E_{\text{minibatch}}[D_{KL,j}])` for ``kl_dims`` ``(B, K)``
    (Kingma et al. 2016, appendix C; K&W eqs. 2.69-2.70); a scalar tensor."""
    if not isinstance(kl_dims, torch.Tensor) or kl_dims.dim() != 2:
        raise ValueError("kl_dims must be a (B, K) tensor: per-example, per-dimension KL")
    if not free_bits >= 0:
        raise ValueError(f"free_bits (lambda) must be >= 0 nats, got {free_bits}")
    return group_kl(kl_dims, groups).mean(0).clamp(min=float(free_bits)).sum()


def free_bits_kl_per_example(kl_dims, free_bits, groups=None):
    r""":math:`\frac1B\sum_i\sum_j\max(\lambda, D_{KL,j}(\mathbf x_i))`: the per-example variant."""
    if not isinstance(kl_dims, torch.Tensor) or kl_dims.dim() != 2:
        raise ValueError("kl_dims must be a (B, K) tensor: per-example, per-dimension KL")
    if not free_bits >= 0:
        raise ValueError(f"free_bits (lambda) must be >= 0 nats, got {free_bits}")
    return group_kl(kl_dims, groups).clamp(min=float(free_bits)).sum(-1).mean()


@torch.no_grad()
def aggregate_log_density(z, means, log_stds, block=1024):
    r""":math:`\log\frac1N\sum_n q(\mathbf z\mid\mathbf x_n)` at ``z`` ``(..., K)``, exact over all ``N``
    components ``(N, K)``; blocks of ``block`` points of ``z`` bound the memory to
    ``block x N x K`` numbers."""
    if means.dim() != 2 or means.shape != log_stds.shape or z.shape[-1] != means.shape[-1]:
        raise ValueError(f"means, log_stds must be (N, K) and z (..., K); got {tuple(means.shape)}, "
                         f"{tuple(log_stds.shape)}, {tuple(z.shape)}")
    flat = z.reshape(-1, z.shape[-1])
    out = [torch.logsumexp(log_normal_diag(flat[lo:lo + block, None, :], means, log_stds), dim=1)
           for lo in range(0, flat.shape[0], block)]
    return (torch.cat(out) - math.log(means.shape[0])).reshape(z.shape[:-1])


@torch.no_grad()
def elbo_surgery(means, log_stds, eps=None, num_samples=1, generator=None):
    r"""Average KL = :math:`I_q(\mathbf x;\mathbf z) + D_{KL}(q(\mathbf z)\|p(\mathbf z))` (Hoffman &
    Johnson 2016), estimated as in :func:`vae_from_scratch.numpy.collapse.elbo_surgery` (exact mixture
    over all ``N`` points, unbiased; standard errors over the data points). Pass ``eps`` ``(S, N, K)`` or
    draw ``num_samples`` with ``generator``. Returns a dict of Python floats."""
    if eps is None:
        eps = torch.randn(num_samples, *means.shape, generator=generator, dtype=means.dtype,
                          device=means.device)
    if eps.dim() != 3 or tuple(eps.shape[1:]) != tuple(means.shape):
        raise ValueError(f"eps must be (S, N, K) with (N, K) = {tuple(means.shape)}, got {tuple(eps.shape)}")
    z = means + log_stds.exp() * eps
    log_q_cond = log_normal_diag(z, means, log_stds)
    log_q_agg = aggregate_log_density(z, means, log_stds)
    info_terms = (log_q_cond - log_q_agg).mean(0)
    marg_terms = (log_q_agg - log_standard_normal(z)).mean(0)
    N = means.shape[0]
    return {"average_kl": float(kl_per_dim(means, log_stds).sum(-1).mean()),
            "mutual_info": float(info_terms.mean()),
            "mutual_info_se": float(info_terms.std(unbiased=False) / math.sqrt(N)),
            "marginal_kl": float(marg_terms.mean()),
            "marginal_kl_se": float(marg_terms.std(unbiased=False) / math.sqrt(N)),
            "log_n": math.log(N)}


def linear_gaussian_optimum(x, latent_dim, log_s):
    r"""Maximum-likelihood linear-Gaussian model with fixed noise (Tipping & Bishop 1999); see the
    NumPy version. Returns ``W``, ``b``, ``eigenvalues`` (tensors), ``active`` and ``log_likelihood``."""
    if x.dim() != 2 or x.shape[0] < 2:
        raise ValueError(f"x must be (N, D) with N >= 2, got shape {tuple(x.shape)}")
    N, D = x.shape
    K = int(latent_dim)
    if not 1 <= K <= D:
        raise ValueError(f"latent_dim must be between 1 and D={D}, got {latent_dim}")
    b = x.mean(0)
    S = (x - b).T @ (x - b) / N
    lam, U = torch.linalg.eigh(S)
    lam, U = lam.flip(0), U.flip(1)
    s2 = math.exp(2.0 * float(log_s))
    signal = (lam[:K] - s2).clamp(min=0.0)
    W = U[:, :K] * signal.sqrt()
    model_var = torch.cat([lam[:K].clamp(min=s2), torch.full((D - K,), s2, dtype=x.dtype, device=x.device)])
    log_lik = -0.5 * (D * math.log(2 * math.pi) + model_var.log().sum() + (lam / model_var).sum())
    return {"W": W, "b": b, "eigenvalues": lam, "active": int((signal > 0).sum()),
            "log_likelihood": float(log_lik)}
