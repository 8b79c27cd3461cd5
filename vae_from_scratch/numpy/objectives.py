r"""Monte Carlo estimators of the evidence lower bound (ELBO) (autograd.numpy reference).

For an inference model :math:`q_\phi(\mathbf z\mid\mathbf x)` and a generative model
:math:`p_\theta(\mathbf x, \mathbf z) = p_\theta(\mathbf z)\, p_\theta(\mathbf x\mid\mathbf z)`,
the ELBO (K&W eq. 2.10) is

.. math::
    \mathcal L_{\theta,\phi}(\mathbf x)
    = \mathbb E_{q_\phi(\mathbf z\mid\mathbf x)}\big[\log p_\theta(\mathbf x\mid\mathbf z)
      + \log p_\theta(\mathbf z) - \log q_\phi(\mathbf z\mid\mathbf x)\big]
    = \mathbb E_{q_\phi}\big[\log p_\theta(\mathbf x\mid\mathbf z)\big]
      - D_{KL}\big(q_\phi(\mathbf z\mid\mathbf x)\,\|\,p_\theta(\mathbf z)\big),

and its Monte Carlo estimator with :math:`S` samples :math:`\mathbf z^{(l)} \sim q_\phi` averages
the bracket over the samples (K&W eqs. 2.27-2.29 are the case :math:`S = 1`). The second form replaces
the sampled :math:`\log p_\theta(\mathbf z) - \log q_\phi` by its closed-form expectation, the KL
(Kingma & Welling 2014, eq. 10), when one is available.

Conventions, shared with :mod:`vae_from_scratch.torch.objectives`: the **sample axis is the first
axis** of every per-sample term (shape ``(S, ...)``), the batch axes follow, and every function
returns one value per data point (shape ``(...)``). Latent vectors keep their event axis last, as in
:mod:`vae_from_scratch.numpy.distributions`. For a single-sample estimate use ``S = 1``.
"""

import autograd.numpy as np

from .distributions import _check_broadcast, _check_float, kl_normal_diag, log_normal_diag, sample_normal_diag

KL_MODES = ("analytic", "sampled")


def elbo(log_px_given_z, log_pz, log_qz):
    r"""Monte Carlo ELBO from per-sample log-densities, averaged over the leading sample axis.

    .. math::
        \hat{\mathcal L}(\mathbf x) = \frac1S \sum_{l=1}^S \Big(\log p_\theta(\mathbf x\mid\mathbf z^{(l)})
        + \log p_\theta(\mathbf z^{(l)}) - \log q_\phi(\mathbf z^{(l)}\mid\mathbf x)\Big),
        \qquad \mathbf z^{(l)} \sim q_\phi(\mathbf z\mid\mathbf x)

    (K&W eq. 2.10, estimated as in K&W eqs. 2.27-2.29). An unbiased estimate of the ELBO when the
    ``z`` were drawn from ``q``. The three arrays have shape ``(S, ...)`` (they broadcast); the result
    has shape ``(...)``.
    """
    log_px_given_z, log_pz, log_qz = _check_samples(
        "log_px_given_z", log_px_given_z, "log_pz", log_pz, "log_qz", log_qz)
    return np.mean(log_px_given_z + log_pz - log_qz, axis=0)


def elbo_analytic_kl(log_px_given_z, kl):
    r"""ELBO with the KL term in closed form: :math:`\frac1S\sum_l \log p_\theta(\mathbf x\mid\mathbf z^{(l)})
    - D_{KL}(q_\phi(\mathbf z\mid\mathbf x)\,\|\,p_\theta(\mathbf z))`.

    (Kingma & Welling 2014, eq. 10; the second line of K&W eq. 2.10's expansion.)
    ``log_px_given_z`` has shape ``(S, ...)``, ``kl`` shape ``(...)``; the result shape ``(...)``.
    """
    (log_px_given_z,) = _check_samples("log_px_given_z", log_px_given_z)
    kl = _check_float("kl", kl)
    return np.mean(log_px_given_z, axis=0) - kl


def elbo_normal_diag(log_likelihood, mean, log_std, eps=None, rng=None, num_samples=1,
                     kl="analytic", prior_mean=None, prior_log_std=None):
    r"""Monte Carlo ELBO of a diagonal-Gaussian encoder, with reparameterized samples.

    The encoder is :math:`q_\phi(\mathbf z\mid\mathbf x) = \mathcal N(\boldsymbol\mu,
    \operatorname{diag}\boldsymbol\sigma^2)` (K&W eqs. 2.36-2.37) and each sample is
    :math:`\mathbf z^{(l)} = \boldsymbol\mu + \boldsymbol\sigma\odot\boldsymbol\epsilon^{(l)}` (K&W eq. 2.40).
    The prior is :math:`p(\mathbf z) = \mathcal N(\mathbf m_p, \operatorname{diag}\boldsymbol\sigma_p^2)`,
    the standard normal unless ``prior_mean`` / ``prior_log_std`` are given. With ``kl="analytic"``,

    .. math::
        \hat{\mathcal L} = \frac1S\sum_l \log p_\theta(\mathbf x\mid\mathbf z^{(l)})
        - D_{KL}(q_\phi\,\|\,p),

    the KL from :func:`~vae_from_scratch.numpy.distributions.kl_normal_diag`; with ``kl="sampled"``
    the KL is estimated by the same samples, :math:`\log q_\phi(\mathbf z^{(l)}\mid\mathbf x)
    - \log p(\mathbf z^{(l)})` (K&W eq. 2.10 estimated as in K&W eqs. 2.27-2.29). Both are unbiased.

    Parameters
    ----------
    log_likelihood : callable
        ``z`` of shape ``(S, ..., K)`` to :math:`\log p_\theta(\mathbf x\mid\mathbf z)` of shape ``(S, ...)``.
    mean, log_std : arrays ``(..., K)``
        The encoder's outputs (log of the standard deviation, not of the variance).
    eps : array ``(S, ..., K)``, optional
        Standard-normal noise; or give ``rng`` (a ``numpy.random.Generator``) and ``num_samples``.
    kl : ``"analytic"`` or ``"sampled"``

    Returns the estimate, shape ``(...)`` (one value per data point).
    """
    if kl not in KL_MODES:
        raise ValueError(f"kl must be one of {KL_MODES}, got {kl!r}")
    mean, log_std = _check_float("mean", mean), _check_float("log_std", log_std)
    if eps is None:
        if rng is None:
            raise ValueError("pass the noise eps, or a numpy Generator rng to draw it")
        if int(num_samples) < 1:
            raise ValueError(f"num_samples must be a positive integer, got {num_samples}")
        shape = np.broadcast_shapes(np.shape(mean), np.shape(log_std))
        eps = rng.standard_normal((int(num_samples),) + tuple(shape))
    elif rng is not None:
        raise ValueError("pass either eps or rng, not both")
    eps = _check_float("eps", eps)
    if np.ndim(eps) < 2:
        raise ValueError(f"eps needs a leading sample axis and an event axis, shape (S, ..., K); got {np.shape(eps)}")
    prior_mean = np.zeros(np.shape(mean)[-1]) if prior_mean is None else prior_mean
    prior_log_std = np.zeros(np.shape(mean)[-1]) if prior_log_std is None else prior_log_std

    z = sample_normal_diag(mean, log_std, eps)
    log_px_given_z = log_likelihood(z)
    batch = np.shape(z)[:-1]
    if np.shape(log_px_given_z) != batch:
        raise ValueError(f"log_likelihood(z) must have shape {batch} (z is {np.shape(z)}), "
                         f"got {np.shape(log_px_given_z)}")
    if kl == "analytic":
        return elbo_analytic_kl(log_px_given_z, kl_normal_diag(mean, log_std, prior_mean, prior_log_std))
    log_pz = log_normal_diag(z, prior_mean, prior_log_std)
    log_qz = log_normal_diag(z, mean, log_std)
    return elbo(log_px_given_z, log_pz, log_qz)


# --- input checks -------------------------------------------------------------------------------


def _check_samples(*named):
    """Per-sample terms: real arrays with a leading sample axis whose shapes broadcast."""
    names = named[0::2]
    arrays = [_check_float(n, a) for n, a in zip(names, named[1::2])]
    shapes = [np.shape(a) for a in arrays]
    for n, s in zip(names, shapes):
        if len(s) == 0:
            raise ValueError(f"{n} needs a leading sample axis, shape (S, ...); got a scalar "
                             "(for a single sample use S = 1)")
    _check_broadcast("shapes", names, shapes)
    return arrays
