r"""Monte Carlo estimators of the evidence lower bound (ELBO) in PyTorch: the same names and
conventions as :mod:`vae_from_scratch.numpy.objectives` (sample axis first, batch axes next, one
value per data point returned), batched and device-agnostic.

.. math::
    \mathcal L_{\theta,\phi}(\mathbf x)
    = \mathbb E_{q_\phi(\mathbf z\mid\mathbf x)}\big[\log p_\theta(\mathbf x\mid\mathbf z)
      + \log p_\theta(\mathbf z) - \log q_\phi(\mathbf z\mid\mathbf x)\big]
    \qquad\text{(monograph eq. 2.10; estimators eqs. 2.27-2.29)}
"""

import torch

from .distributions import kl_normal_diag, log_normal_diag, sample_normal_diag

KL_MODES = ("analytic", "sampled")


def elbo(log_px_given_z, log_pz, log_qz):
    r""":math:`\frac1S\sum_s \log p_\theta(\mathbf x\mid\mathbf z^{(s)}) + \log p_\theta(\mathbf z^{(s)})
    - \log q_\phi(\mathbf z^{(s)}\mid\mathbf x)`: the Monte Carlo ELBO from per-sample terms of shape
    ``(S, ...)`` (broadcasting), averaged over the leading sample axis (monograph eq. 2.10)."""
    _check_samples(log_px_given_z=log_px_given_z, log_pz=log_pz, log_qz=log_qz)
    return (log_px_given_z + log_pz - log_qz).mean(0)


def elbo_analytic_kl(log_px_given_z, kl):
    r""":math:`\frac1S\sum_s \log p_\theta(\mathbf x\mid\mathbf z^{(s)}) - D_{KL}(q_\phi\,\|\,p_\theta(\mathbf z))`
    with the KL in closed form (Kingma & Welling 2014, eq. 10); ``log_px_given_z`` ``(S, ...)``,
    ``kl`` ``(...)``."""
    _check_samples(log_px_given_z=log_px_given_z)
    if not isinstance(kl, torch.Tensor):
        raise ValueError(f"kl must be a torch.Tensor, got {type(kl).__name__}")
    return log_px_given_z.mean(0) - kl


def elbo_normal_diag(log_likelihood, mean, log_std, eps=None, generator=None, num_samples=1,
                     kl="analytic", prior_mean=None, prior_log_std=None):
    r"""Monte Carlo ELBO of a diagonal-Gaussian encoder with reparameterized samples
    :math:`\mathbf z^{(s)} = \boldsymbol\mu + \boldsymbol\sigma\odot\boldsymbol\epsilon^{(s)}`
    (monograph eqs. 2.36-2.38), against the prior :math:`\mathcal N(\mathbf m_p,
    \operatorname{diag}\boldsymbol\sigma_p^2)` (standard normal by default).

    ``kl="analytic"``: :math:`\frac1S\sum_s\log p_\theta(\mathbf x\mid\mathbf z^{(s)}) - D_{KL}(q\|p)`,
    with :func:`~vae_from_scratch.torch.distributions.kl_normal_diag`; ``kl="sampled"``: the KL
    estimated by the same samples, :math:`\log q(\mathbf z^{(s)}) - \log p(\mathbf z^{(s)})`.

    ``log_likelihood`` maps ``z`` of shape ``(S, ..., K)`` to :math:`\log p_\theta(\mathbf x\mid\mathbf z)`
    of shape ``(S, ...)``; ``mean`` and ``log_std`` are ``(..., K)``. Pass the noise ``eps``
    ``(S, ..., K)``, or a ``torch.Generator`` on the parameters' device (or None for torch's global
    generator) and ``num_samples``. Returns shape ``(...)``, differentiable in every input.
    """
    if kl not in KL_MODES:
        raise ValueError(f"kl must be one of {KL_MODES}, got {kl!r}")
    if eps is None:
        if int(num_samples) < 1:
            raise ValueError(f"num_samples must be a positive integer, got {num_samples}")
        z = sample_normal_diag(mean, log_std, generator=generator, sample_shape=(int(num_samples),))
    else:
        if generator is not None:
            raise ValueError("pass either eps or generator, not both")
        if not isinstance(eps, torch.Tensor) or eps.dim() < 2:
            raise ValueError("eps must be a tensor of shape (S, ..., K) with a leading sample axis")
        z = sample_normal_diag(mean, log_std, eps=eps)
    K = mean.shape[-1]
    if prior_mean is None:
        prior_mean = torch.zeros(K, dtype=mean.dtype, device=mean.device)
    if prior_log_std is None:
        prior_log_std = torch.zeros(K, dtype=mean.dtype, device=mean.device)

    log_px_given_z = log_likelihood(z)
    if tuple(log_px_given_z.shape) != tuple(z.shape[:-1]):
        raise ValueError(f"log_likelihood(z) must have shape {tuple(z.shape[:-1])} (z is {tuple(z.shape)}), "
                         f"got {tuple(log_px_given_z.shape)}")
    if kl == "analytic":
        return elbo_analytic_kl(log_px_given_z, kl_normal_diag(mean, log_std, prior_mean, prior_log_std))
    log_pz = log_normal_diag(z, prior_mean, prior_log_std)
    log_qz = log_normal_diag(z, mean, log_std)
    return elbo(log_px_given_z, log_pz, log_qz)


def _check_samples(**tensors):
    for name, t in tensors.items():
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() == 0:
            raise ValueError(f"{name} needs a leading sample axis, shape (S, ...); got a scalar "
                             "(for a single sample use S = 1)")
    try:
        torch.broadcast_shapes(*(t.shape for t in tensors.values()))
    except RuntimeError:
        raise ValueError("shapes do not broadcast: "
                         + ", ".join(f"{n}{tuple(t.shape)}" for n, t in tensors.items())) from None


# --- training objectives of a VAE ------------------------------------------------------------------
#
# A training objective is a callable ``objective(model, x, generator, progress) -> (surrogate, bound)``:
# ``surrogate`` is the scalar the optimizer maximizes (a minibatch mean, so that an objective may act
# on minibatch averages, as free bits does), ``bound`` the per-datapoint value ``(B,)`` of the bound
# that is logged (the ELBO, or the IWAE bound), and ``progress`` the fraction of training done, in
# [0, 1], for schedules. :func:`make_objective` builds one from a training config, once; the training
# loop calls it without knowing which one it is. New objectives register a factory in OBJECTIVES.


def elbo_objective(config=None):
    r"""The ELBO with one reparameterized sample and the posterior's closed-form KL where it has one
    (Kingma & Welling 2014, eq. 10): surrogate and bound are the same."""
    def objective(model, x, generator=None, progress=0.0):
        value = model.elbo(x, generator=generator)
        return value.mean(), value
    return objective


def iwae_objective(config=None):
    r"""The importance-weighted bound with ``config.k`` samples (Burda et al. 2016, eq. 8; K&W eq. 2.57
    used as an objective)."""
    k = getattr(config, "k", 5) if config is not None else 5

    def objective(model, x, generator=None, progress=0.0):
        value = model.iwae(x, k=k, generator=generator)
        return value.mean(), value
    return objective


#: Training objectives by name: ``factory(config) -> objective``.
OBJECTIVES = {"elbo": elbo_objective, "iwae": iwae_objective}


def make_objective(config):
    """The training objective named ``config.objective`` (a name in :data:`OBJECTIVES`), built once."""
    name = config if isinstance(config, str) else config.objective
    if name not in OBJECTIVES:
        raise ValueError(f"objective must be one of {sorted(OBJECTIVES)}, got {name!r}")
    return OBJECTIVES[name](None if isinstance(config, str) else config)
