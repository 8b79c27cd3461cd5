r"""Monte Carlo estimators of the evidence lower bound (ELBO) in PyTorch: the same names and
conventions as :mod:`vae_from_scratch.numpy.objectives` (sample axis first, batch axes next, one
value per data point returned), batched and device-agnostic.

.. math::
    \mathcal L_{\theta,\phi}(\mathbf x)
    = \mathbb E_{q_\phi(\mathbf z\mid\mathbf x)}\big[\log p_\theta(\mathbf x\mid\mathbf z)
      + \log p_\theta(\mathbf z) - \log q_\phi(\mathbf z\mid\mathbf x)\big]
    \qquad\text{(K&W eq. 2.10; estimators K&W eqs. 2.27-2.29)}
"""

import torch

from .collapse import free_bits_kl, warmup_beta
from .distributions import kl_normal_diag, log_normal_diag, sample_normal_diag

KL_MODES = ("analytic", "sampled")


def elbo(log_px_given_z, log_pz, log_qz):
    r""":math:`\frac1S\sum_l \log p_\theta(\mathbf x\mid\mathbf z^{(l)}) + \log p_\theta(\mathbf z^{(l)})
    - \log q_\phi(\mathbf z^{(l)}\mid\mathbf x)`: the Monte Carlo ELBO from per-sample terms of shape
    ``(S, ...)`` (broadcasting), averaged over the leading sample axis (K&W eq. 2.10)."""
    _check_samples(log_px_given_z=log_px_given_z, log_pz=log_pz, log_qz=log_qz)
    return (log_px_given_z + log_pz - log_qz).mean(0)


def elbo_analytic_kl(log_px_given_z, kl):
    r""":math:`\frac1S\sum_l \log p_\theta(\mathbf x\mid\mathbf z^{(l)}) - D_{KL}(q_\phi\,\|\,p_\theta(\mathbf z))`
    with the KL in closed form (Kingma & Welling 2014, eq. 10); ``log_px_given_z`` ``(S, ...)``,
    ``kl`` ``(...)``."""
    _check_samples(log_px_given_z=log_px_given_z)
    if not isinstance(kl, torch.Tensor):
        raise ValueError(f"kl must be a torch.Tensor, got {type(kl).__name__}")
    return log_px_given_z.mean(0) - kl


def elbo_normal_diag(log_likelihood, mean, log_std, eps=None, generator=None, num_samples=1,
                     kl="analytic", prior_mean=None, prior_log_std=None):
    r"""Monte Carlo ELBO of a diagonal-Gaussian encoder with reparameterized samples
    :math:`\mathbf z^{(l)} = \boldsymbol\mu + \boldsymbol\sigma\odot\boldsymbol\epsilon^{(l)}`
    (K&W eqs. 2.36-2.40), against the prior :math:`\mathcal N(\mathbf m_p,
    \operatorname{diag}\boldsymbol\sigma_p^2)` (standard normal by default).

    ``kl="analytic"``: :math:`\frac1S\sum_l\log p_\theta(\mathbf x\mid\mathbf z^{(l)}) - D_{KL}(q\|p)`,
    with :func:`~vae_from_scratch.torch.distributions.kl_normal_diag`; ``kl="sampled"``: the KL
    estimated by the same samples, :math:`\log q(\mathbf z^{(l)}) - \log p(\mathbf z^{(l)})`.

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


class ELBOObjective:
    r"""The ELBO with two composable modifications of its KL term (K&W section 2.8.1), chapter 6:

    .. math::
        \text{surrogate} = \frac1B\sum_i \log p_\theta(\mathbf x_i\mid\mathbf z_i)
        - \beta(\text{progress})\,\tilde D,\qquad
        \tilde D = \begin{cases}\frac1B\sum_i D_{KL}(q(\mathbf z\mid\mathbf x_i)\|p) & \lambda = \text{None}\\
        \sum_j\max\big(\lambda, \frac1B\sum_i D_{KL,j}(\mathbf x_i)\big) & \text{free bits}\end{cases}

    with :math:`\beta` the linear warm-up :func:`~vae_from_scratch.torch.collapse.warmup_beta` over the
    first ``kl_warmup`` fraction of training (0: none) and free bits over ``free_bits_groups`` groups of
    consecutive latent dimensions (:func:`~vae_from_scratch.torch.collapse.free_bits_kl`; Kingma et al.
    2016, appendix C; K&W eq. 2.69). With neither it is the plain ELBO of one reparameterized sample and the
    posterior's closed-form KL where it has one (Kingma & Welling 2014, eq. 10).

    ``bound`` is always the true ELBO per data point. While :math:`\beta < 1` the surrogate is *above*
    the ELBO and can exceed :math:`\log p(\mathbf x)`: it is not a bound. Free bits move it the other
    way (:math:`\max(\lambda, D)\ge D`): never above the ELBO, but its maximizer is not the ELBO's.
    """

    def __init__(self, kl_warmup=0.0, free_bits=None, free_bits_groups=None):
        warmup_beta(0.0, kl_warmup)  # checks kl_warmup
        if free_bits is not None and not free_bits >= 0:
            raise ValueError(f"free_bits must be >= 0 nats, got {free_bits}")
        if free_bits is None and free_bits_groups is not None:
            raise ValueError("free_bits_groups needs free_bits")
        self.kl_warmup, self.free_bits = float(kl_warmup), free_bits
        self.free_bits_groups = free_bits_groups

    def __call__(self, model, x, generator=None, progress=0.0):
        if self.free_bits is None and self.kl_warmup == 0.0:
            value = model.elbo(x, generator=generator)      # the plain ELBO
            return value.mean(), value
        terms = model.elbo_terms(x, generator=generator)
        bound = terms["rec"] - terms["kl"]
        if self.free_bits is None:
            kl_term = terms["kl"].mean()
        else:
            if terms["kl_per_dim"] is None:
                raise ValueError("free bits need a posterior whose KL is a sum over dimensions "
                                 "(diagonal or iaf; the full-covariance KL does not split)")
            kl_term = free_bits_kl(terms["kl_per_dim"], self.free_bits, self.free_bits_groups)
        surrogate = terms["rec"].mean() - warmup_beta(progress, self.kl_warmup) * kl_term
        return surrogate, bound.detach()


def elbo_objective(config=None):
    r"""The ELBO objective of ``config`` (:class:`ELBOObjective` with the config's ``kl_warmup``,
    ``free_bits`` and ``free_bits_groups``; the plain ELBO without them)."""
    return ELBOObjective(kl_warmup=getattr(config, "kl_warmup", 0.0) or 0.0,
                         free_bits=getattr(config, "free_bits", None),
                         free_bits_groups=getattr(config, "free_bits_groups", None))


def iwae_objective(config=None):
    r"""The importance-weighted bound with ``config.k`` samples (Burda et al. 2016, eq. 8; K&W eq. 2.57
    used as an objective)."""
    k = getattr(config, "k", 5) if config is not None else 5
    if getattr(config, "kl_warmup", 0.0) or getattr(config, "free_bits", None) is not None:
        raise ValueError("KL warm-up and free bits apply to the ELBO objective, not to iwae")

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
