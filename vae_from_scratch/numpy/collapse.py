r"""Posterior collapse: measuring how much of the latent code a VAE uses, and two remedies.

The reference (autograd.numpy) for chapter 6; :mod:`vae_from_scratch.torch.collapse` has the same
names, batched. Source: monograph section 2.8.1 (K&W eqs. 2.69-2.70 for free bits), Kingma et al.
(2016, appendix C), Bowman et al. (2016) and Sønderby et al. (2016) for KL warm-up, Burda et al.
(2016, section 5.2) for active units, Hoffman & Johnson (2016) for the ELBO surgery, Tipping & Bishop
(1999) for the optimum of the linear-Gaussian model.

*Measuring use of the code*

* :func:`kl_per_dim`: :math:`D_{KL}(q(z_k\mid\mathbf x)\,\|\,\mathcal N(0,1))` for each latent
  dimension ``k`` of a diagonal Gaussian; a dimension whose KL is zero for every ``x`` carries no
  information about ``x`` (its posterior *is* the prior).
* :func:`active_units`: a unit is active when :math:`\operatorname{Cov}_{\mathbf x}\big(\mathbb E_{q(z_k\mid
  \mathbf x)}[z_k]\big) > 10^{-2}` (Burda et al. 2016); computed from the encoder's exact means.
* :func:`elbo_surgery`: the average KL splits into the mutual information :math:`I_q(\mathbf x;\mathbf z)`
  and the KL of the aggregate posterior to the prior (Hoffman & Johnson 2016).

*Remedies* -- :func:`warmup_beta` (the KL weight of a warm-up schedule) and :func:`free_bits_kl`.
"""

import autograd.numpy as np
from autograd.scipy.special import logsumexp

from .distributions import kl_normal_standard_per_dim, log_normal_diag, log_standard_normal

#: Burda et al. (2016)'s threshold on the variance of the posterior mean of an active unit.
ACTIVE_THRESHOLD = 1e-2


# --- measuring use of the code ----------------------------------------------------------------------


def kl_per_dim(mean, log_std):
    r"""Closed-form KL of each latent dimension of a diagonal Gaussian to the standard normal,
    ``(..., K)`` (Kingma & Welling 2014, appendix B):

    .. math:: D_{KL}\big(\mathcal N(\mu_k,\sigma_k^2)\,\|\,\mathcal N(0,1)\big)
        = \tfrac12\big(\mu_k^2 + \sigma_k^2 - 1\big) - \log\sigma_k \;\ge 0.

    The total KL of the ELBO is their sum over ``k`` because both distributions factorize.
    """
    return kl_normal_standard_per_dim(mean, log_std)


def active_unit_variances(means):
    r"""The variance over the data (axis 0) of each unit's posterior mean, ``(K,)``:
    :math:`A_k = \operatorname{Cov}_{\mathbf x}\big(\mathbb E_{q(\mathbf z\mid\mathbf x)}[z_k]\big)`
    (Burda et al. 2016, section 5.2), with ``means`` the encoder's exact means ``(N, K)``.

    Not the variance of *sampled* z: that adds :math:`\mathbb E_{\mathbf x}[\sigma_k^2(\mathbf x)]`,
    which is about 1 for a collapsed unit (its posterior is the prior), so every unit would look active.
    """
    means = np.asarray(means, dtype=float)
    if means.ndim != 2 or means.shape[0] < 2:
        raise ValueError(f"means must be (N, K) with N >= 2 data points, got shape {means.shape}")
    return np.var(means, axis=0)


def active_units(means, threshold=ACTIVE_THRESHOLD):
    r"""Number of active units: :math:`\#\{k : A_k > \text{threshold}\}` (Burda et al. 2016, threshold
    :math:`10^{-2}`), from the encoder's exact posterior means ``(N, K)``."""
    if not threshold > 0:
        raise ValueError(f"threshold must be positive, got {threshold}")
    return int(np.sum(active_unit_variances(means) > threshold))


# --- remedies ------------------------------------------------------------------------------------


def warmup_beta(progress, warmup):
    r"""KL weight of a linear warm-up (Bowman et al. 2016; Sønderby et al. 2016; monograph 2.8.1):
    :math:`\beta = \min(1, \text{progress}/\text{warmup})`, rising from 0 to 1 over the first
    ``warmup`` fraction of training (``progress`` in [0, 1]); ``warmup = 0`` means no warm-up
    (:math:`\beta = 1` throughout). The objective during warm-up is
    :math:`\mathbb E_q[\log p(\mathbf x\mid\mathbf z)] - \beta\,D_{KL}`: for :math:`\beta < 1` it is not a
    lower bound on :math:`\log p(\mathbf x)`.
    """
    progress, warmup = float(progress), float(warmup)
    if not 0.0 <= warmup <= 1.0:
        raise ValueError(f"warmup must be a fraction of training in [0, 1], got {warmup}")
    if not 0.0 <= progress <= 1.0:
        raise ValueError(f"progress must be in [0, 1], got {progress}")
    if warmup == 0.0:
        return 1.0
    return min(1.0, progress / warmup)


def group_kl(kl_dims, groups=None):
    r"""Sum the per-dimension KL ``(..., K)`` within ``groups`` contiguous groups of equal size,
    ``(..., G)``; ``groups=None`` means one group per dimension (G = K)."""
    K = np.shape(kl_dims)[-1]
    G = K if groups is None else int(groups)
    if G < 1 or K % G != 0:
        raise ValueError(f"groups must divide the latent dimension K={K}, got {groups}")
    return np.sum(np.reshape(kl_dims, np.shape(kl_dims)[:-1] + (G, K // G)), axis=-1)


def free_bits_kl(kl_dims, free_bits, groups=None):
    r"""The free-bits KL term of a minibatch (Kingma et al. 2016, appendix C; K&W eqs. 2.69-2.70):

    .. math::
        \tilde D = \sum_{j=1}^{G} \max\Big(\lambda,\ \mathbb E_{\mathbf x\sim\mathcal M}\big[
            D_{KL}(q(\mathbf z_j\mid\mathbf x)\,\|\,p(\mathbf z_j))\big]\Big)

    with ``kl_dims`` the per-dimension KL of each example ``(B, K)``, the ``K`` dimensions split into
    ``groups`` contiguous groups :math:`\mathbf z_j` (None: one per dimension), :math:`\lambda` =
    ``free_bits`` nats per group, the expectation the **minibatch mean**. Returns a scalar; the training
    surrogate is ``mean(reconstruction) - free_bits_kl(...)``. A group whose average KL is below
    :math:`\lambda` contributes the constant :math:`\lambda` (zero gradient): it may use that much
    information for free. Since :math:`\max(\lambda, D) \ge D`, the surrogate is never *above* the
    minibatch ELBO: as a number it is a looser lower bound, but its maximizer is not the ELBO's (the
    gradient ignores groups below :math:`\lambda`), and a model trained with it is judged by its ELBO
    or importance-sampled log-likelihood, never by the surrogate.
    """
    kl_dims = np.asarray(kl_dims) if not hasattr(kl_dims, "shape") else kl_dims
    if np.ndim(kl_dims) != 2:
        raise ValueError(f"kl_dims must be (B, K): per-example, per-dimension KL; got {np.shape(kl_dims)}")
    if not free_bits >= 0:
        raise ValueError(f"free_bits (lambda) must be >= 0 nats, got {free_bits}")
    per_group = np.mean(group_kl(kl_dims, groups), axis=0)   # (G,): minibatch mean per group
    return np.sum(np.maximum(free_bits, per_group))


def free_bits_kl_per_example(kl_dims, free_bits, groups=None):
    r"""The *per-example* variant, for comparison: :math:`\frac1B\sum_i\sum_j\max(\lambda,
    D_{KL}(q(\mathbf z_j\mid\mathbf x_i)\|p))`. It clamps each example's KL separately, so every
    example is pushed to spend :math:`\lambda` nats on every group (it is not Kingma et al.'s objective,
    which clamps the minibatch average and lets examples differ)."""
    if np.ndim(kl_dims) != 2:
        raise ValueError(f"kl_dims must be (B, K): per-example, per-dimension KL; got {np.shape(kl_dims)}")
    if not free_bits >= 0:
        raise ValueError(f"free_bits (lambda) must be >= 0 nats, got {free_bits}")
    return np.mean(np.sum(np.maximum(free_bits, group_kl(kl_dims, groups)), axis=-1))


# --- ELBO surgery -----------------------------------------------------------------------------------


def aggregate_log_density(z, means, log_stds, block=256):
    r""":math:`\log q(\mathbf z)` of the aggregate posterior, the mixture over the ``N`` data points

    .. math:: q(\mathbf z) = \frac1N\sum_{n=1}^N q(\mathbf z\mid\mathbf x_n),

    evaluated exactly (a log-sum-exp over all ``N`` components) at ``z`` ``(..., K)``; ``means`` and
    ``log_stds`` are ``(N, K)``. Works in blocks of ``block`` points of ``z``."""
    means, log_stds = np.asarray(means, dtype=float), np.asarray(log_stds, dtype=float)
    z = np.asarray(z, dtype=float)
    if means.ndim != 2 or means.shape != log_stds.shape or z.shape[-1:] != means.shape[-1:]:
        raise ValueError(f"means, log_stds must be (N, K) and z (..., K); got {means.shape}, "
                         f"{log_stds.shape}, {z.shape}")
    flat = z.reshape(-1, z.shape[-1])
    out = []
    for lo in range(0, flat.shape[0], block):
        zb = flat[lo:lo + block, None, :]                    # (b, 1, K) against (N, K)
        out.append(logsumexp(log_normal_diag(zb, means, log_stds), axis=1) - np.log(means.shape[0]))
    return np.concatenate(out).reshape(z.shape[:-1])


def elbo_surgery(means, log_stds, eps):
    r"""Hoffman & Johnson (2016)'s split of the average KL of ``N`` data points,

    .. math::
        \underbrace{\frac1N\sum_n D_{KL}(q(\mathbf z\mid\mathbf x_n)\|p(\mathbf z))}_{\text{average KL}}
        = \underbrace{\mathbb E_{q(\mathbf x,\mathbf z)}\big[\log q(\mathbf z\mid\mathbf x) - \log q(\mathbf z)\big]}_{I_q(\mathbf x;\mathbf z)}
        + \underbrace{\mathbb E_{q(\mathbf z)}\big[\log q(\mathbf z) - \log p(\mathbf z)\big]}_{D_{KL}(q(\mathbf z)\|p(\mathbf z))}

    with :math:`q(\mathbf x,\mathbf z) = \frac1N\sum_n\delta_{\mathbf x_n}(\mathbf x)\,q(\mathbf z\mid\mathbf x_n)` and
    :math:`q(\mathbf z)` its marginal (:func:`aggregate_log_density`).

    Estimator: :math:`\mathbf z_{s,n} = \boldsymbol\mu_n + \boldsymbol\sigma_n\odot\boldsymbol\epsilon_{s,n}`
    (``eps`` ``(S, N, K)``); both terms are sample means of
    :math:`\log q(\mathbf z_{s,n}\mid\mathbf x_n) - \log q(\mathbf z_{s,n})` and
    :math:`\log q(\mathbf z_{s,n}) - \log p(\mathbf z_{s,n})` with the **exact** mixture density over all
    ``N`` points, so both are unbiased (only the Monte Carlo noise of ``z``; their standard errors are
    returned). Each term of the first is at most :math:`\log N` (the mixture contains the component
    :math:`q(\mathbf z\mid\mathbf x_n)/N`), so :math:`I \le \log N` holds for the estimate by construction.
    A mixture over a subsample of ``M < N`` points instead would be biased (its estimate of :math:`I` is at
    most :math:`\log M`).

    Returns a dict: ``average_kl`` (closed form), ``mutual_info``, ``marginal_kl`` and their standard
    errors ``mutual_info_se``, ``marginal_kl_se``, and ``log_n``.
    """
    means, log_stds, eps = (np.asarray(a, dtype=float) for a in (means, log_stds, eps))
    if eps.ndim != 3 or eps.shape[1:] != means.shape:
        raise ValueError(f"eps must be (S, N, K) = (S, {means.shape}), got {eps.shape}")
    z = means + np.exp(log_stds) * eps                       # (S, N, K)
    log_q_cond = log_normal_diag(z, means, log_stds)          # (S, N)
    log_q_agg = aggregate_log_density(z, means, log_stds)     # (S, N)
    info_terms = (log_q_cond - log_q_agg).mean(0)             # per data point, averaged over S
    marg_terms = (log_q_agg - log_standard_normal(z)).mean(0)
    N = means.shape[0]
    return {"average_kl": float(np.mean(np.sum(kl_per_dim(means, log_stds), axis=-1))),
            "mutual_info": float(np.mean(info_terms)),
            "mutual_info_se": float(np.std(info_terms) / np.sqrt(N)),
            "marginal_kl": float(np.mean(marg_terms)),
            "marginal_kl_se": float(np.std(marg_terms) / np.sqrt(N)),
            "log_n": float(np.log(N))}


# --- collapse where everything is exact: the linear-Gaussian model ---------------------------------


def linear_gaussian_optimum(x, latent_dim, log_s):
    r"""The maximum-likelihood linear-Gaussian model with fixed noise :math:`s` and ``latent_dim``
    latents for data ``x`` ``(N, D)``, and how many latent dimensions it uses.

    For :math:`p(\mathbf x) = \mathcal N(\mathbf b, \mathbf W\mathbf W^\top + s^2\mathbf I)` the optimum is
    (Tipping & Bishop 1999, eq. 7, with the noise held fixed)

    .. math:: \mathbf b = \bar{\mathbf x},\qquad
        \mathbf W = \mathbf U_K\,\operatorname{diag}\big(\max(0, \lambda_k - s^2)\big)^{1/2},

    with :math:`\lambda_1\ge\dots\ge\lambda_D` the eigenvalues of the sample covariance and
    :math:`\mathbf U_K` its top-``K`` eigenvectors (up to a rotation of the latent space). A direction
    whose variance :math:`\lambda_k` does not exceed the noise :math:`s^2` gets a zero column: its latent
    is ignored by the decoder and its posterior is the prior (KL zero). Since the exact posterior is
    Gaussian with a diagonal covariance at this ``W``, the optimal *ELBO* with a diagonal-Gaussian
    encoder equals the maximal log-likelihood.

    Returns a dict: ``W`` ``(D, K)``, ``b`` ``(D,)``, ``eigenvalues`` (all ``D``, descending),
    ``active`` (the number of columns that are not zero) and ``log_likelihood`` (the maximal average
    log-likelihood per data point, in closed form).
    """
    x = np.asarray(x, dtype=float)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"x must be (N, D) with N >= 2, got shape {x.shape}")
    N, D = x.shape
    K = int(latent_dim)
    if not 1 <= K <= D:
        raise ValueError(f"latent_dim must be between 1 and D={D}, got {latent_dim}")
    b = x.mean(0)
    S = (x - b).T @ (x - b) / N
    lam, U = np.linalg.eigh(S)
    lam, U = lam[::-1], U[:, ::-1]
    s2 = float(np.exp(2.0 * log_s))
    signal = np.maximum(0.0, lam[:K] - s2)
    W = U[:, :K] * np.sqrt(signal)
    model_var = np.concatenate([np.maximum(lam[:K], s2), np.full(D - K, s2)])  # C's eigenvalues
    log_lik = -0.5 * (D * np.log(2 * np.pi) + np.sum(np.log(model_var)) + np.sum(lam / model_var))
    return {"W": W, "b": b, "eigenvalues": lam, "active": int(np.sum(signal > 0)),
            "log_likelihood": float(log_lik)}
