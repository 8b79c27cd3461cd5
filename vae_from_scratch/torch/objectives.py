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


# --- training objectives (chapter 6): callables objective(model, x, generator, progress) ---------------
#
# Each returns ``(surrogate, bound)``: ``surrogate`` a scalar to maximize (minibatch level, so that free
# bits can clamp a group's minibatch-mean KL), ``bound`` the per-datapoint ELBO ``(B,)`` that is logged.
# ``progress`` is the fraction of training done, in [0, 1] (for KL warm-up). The training loop calls
# whichever objective :func:`make_objective` built and never branches on its kind.


def elbo_terms(model, x, generator=None):
    r"""The ELBO's two terms for a diagonal-Gaussian encoder: ``rec`` :math:`\log p_\theta(\mathbf x\mid\mathbf z)`
    at one reparameterized sample ``(B,)``, ``kl_per_dim`` the closed-form KL of each latent dimension
    ``(B, K)`` and ``kl`` its sum ``(B,)`` (Kingma & Welling 2014, eq. 10)."""
    from .collapse import kl_per_dim

    x = x.to(model._dtype)
    mean, log_std = model.encode(x)
    z = sample_normal_diag(mean, log_std, generator=generator)
    rec = model.log_px_given_z(x, z)
    kl_dims = kl_per_dim(mean, log_std)
    return {"rec": rec, "kl": kl_dims.sum(-1), "kl_per_dim": kl_dims}


class ELBOObjective:
    r"""The ELBO with two composable modifications of its KL term (monograph section 2.8.1):

    .. math::
        \text{surrogate} = \frac1B\sum_i \log p_\theta(\mathbf x_i\mid\mathbf z_i)
        - \beta(\text{progress})\,\tilde D,\qquad
        \tilde D = \begin{cases}\frac1B\sum_i D_{KL}(q(\mathbf z\mid\mathbf x_i)\|p) & \lambda = \text{None}\\
        \sum_j\max\big(\lambda, \frac1B\sum_i D_{KL,j}(\mathbf x_i)\big) & \text{free bits (K\&W eq. 2.69)}\end{cases}

    with :math:`\beta` the linear warm-up :func:`~vae_from_scratch.torch.collapse.warmup_beta` over the
    first ``kl_warmup`` fraction of training (0: none). ``bound`` is always the true ELBO per data point.
    While :math:`\beta < 1` the surrogate is *above* the ELBO and can exceed :math:`\log p(\mathbf x)`:
    it is not a bound. Free bits move it the other way (:math:`\max(\lambda, D)\ge D`): never above
    the ELBO, but its maximizer is not the ELBO's. Either way the ELBO is what ``bound`` reports.
    """

    def __init__(self, kl_warmup=0.0, free_bits=None, free_bits_groups=None):
        from .collapse import warmup_beta

        warmup_beta(0.0, kl_warmup)  # validates kl_warmup
        if free_bits is not None and not free_bits >= 0:
            raise ValueError(f"free_bits must be >= 0 nats, got {free_bits}")
        if free_bits is None and free_bits_groups is not None:
            raise ValueError("free_bits_groups needs free_bits")
        self.kl_warmup, self.free_bits, self.free_bits_groups = float(kl_warmup), free_bits, free_bits_groups

    def kl_term(self, terms):
        from .collapse import free_bits_kl

        if self.free_bits is None:
            return terms["kl"].mean()
        return free_bits_kl(terms["kl_per_dim"], self.free_bits, self.free_bits_groups)

    def __call__(self, model, x, generator=None, progress=1.0):
        from .collapse import warmup_beta

        terms = elbo_terms(model, x, generator)
        beta = warmup_beta(progress, self.kl_warmup)
        surrogate = terms["rec"].mean() - beta * self.kl_term(terms)
        return surrogate, (terms["rec"] - terms["kl"]).detach()


class IWAEObjective:
    r"""The importance-weighted bound with ``k`` samples (Burda et al. 2016, eq. 8) as the objective;
    ``bound`` is that bound per data point."""

    def __init__(self, k=5):
        if int(k) < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        self.k = int(k)

    def __call__(self, model, x, generator=None, progress=1.0):
        bound = model.iwae(x, k=self.k, generator=generator)
        return bound.mean(), bound.detach()


#: Registry of training objectives: name -> factory(**options).
OBJECTIVES = {"elbo": ELBOObjective, "iwae": IWAEObjective}


def make_objective(config):
    """The objective callable a :class:`~vae_from_scratch.torch.training.TrainConfig` asks for."""
    if config.objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {sorted(OBJECTIVES)}, got {config.objective!r}")
    if config.objective == "iwae":
        if config.kl_warmup or config.free_bits is not None:
            raise ValueError("KL warm-up and free bits apply to the ELBO objective, not to iwae")
        return OBJECTIVES["iwae"](k=config.k)
    return OBJECTIVES["elbo"](kl_warmup=config.kl_warmup, free_bits=config.free_bits,
                              free_bits_groups=config.free_bits_groups)
