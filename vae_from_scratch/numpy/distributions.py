r"""Densities and KL divergences of the distributions a VAE is made of (autograd.numpy reference).

Conventions, shared with :mod:`vae_from_scratch.torch.distributions`:

* the **event axis is last**: a diagonal Gaussian over ``D`` latent dimensions has parameters of
  shape ``(..., D)`` and its log-density returns shape ``(...)``; every batch axis is kept and
  arguments broadcast against each other (e.g. samples ``(S, B, D)`` against means ``(B, D)``);
* Gaussians are parameterized by mean and **log standard deviation** (the monograph's
  :math:`\log \boldsymbol\sigma`, K&W eq. 2.36), never by variance or log-variance;
* all functions are pure and differentiable with autograd.

Source: Kingma & Welling (2019), *An Introduction to Variational Autoencoders*, sections 2.5 and
appendix B of Kingma & Welling (2014) for the closed-form KL.
"""

import autograd.numpy as np
from autograd.tracer import getval

LOG_2PI = float(np.log(2.0 * np.pi))


def softplus(x):
    r"""Numerically stable :math:`\log(1 + e^{x})`, finite for any finite ``x``."""
    return np.logaddexp(0.0, x)


def log_standard_normal(x):
    r"""Log-density of :math:`\mathcal N(\mathbf 0, \mathbf I)`, summed over the last axis.

    .. math:: \log p(\mathbf z) = -\tfrac12 \sum_j \left(z_j^2 + \log 2\pi\right)
    """
    (x,) = _check_event("x", x)
    return -0.5 * np.sum(x**2 + LOG_2PI, axis=-1)


def log_normal_diag(x, mean, log_std, validate=True):
    r"""Log-density of a diagonal Gaussian, summed over the last (event) axis.

    .. math::
        \log \mathcal N(\mathbf x; \boldsymbol\mu, \operatorname{diag}\boldsymbol\sigma^2)
        = -\sum_j \left( \log\sigma_j + \tfrac12 \log 2\pi
          + \tfrac12 \Big(\frac{x_j-\mu_j}{\sigma_j}\Big)^2 \right),
        \qquad \log\sigma_j = \texttt{log\_std}_j

    (K&W eq. 2.37; written with :math:`\boldsymbol\epsilon = (\mathbf x-\boldsymbol\mu)/\boldsymbol\sigma`
    it is K&W eq. 2.44).

    ``log_std`` must be finite: at :math:`\log\sigma_j = -\infty` the density is a point mass and the
    formula returns NaN, so such input is refused with a ``ValueError`` (``validate=False`` skips that
    value check; the torch twin has the same flag, where the check costs a host synchronization).
    """
    x, mean, log_std = _check_event("x", x, "mean", mean, "log_std", log_std)
    if validate:
        _check_finite_log_std(log_std)
    z = (x - mean) * np.exp(-log_std)
    return -np.sum(log_std + 0.5 * LOG_2PI + 0.5 * z**2, axis=-1)


def bernoulli_log_likelihood(x, logits):
    r"""Bernoulli log-likelihood of binary ``x`` given logits, summed over the last axis.

    With :math:`\mathbf p = \operatorname{sigmoid}(\boldsymbol\lambda)` (K&W eqs. 1.17-1.18),

    .. math::
        \log p(\mathbf x \mid \boldsymbol\lambda) = \sum_j x_j \log p_j + (1-x_j)\log(1-p_j)
        = \sum_j x_j \lambda_j - \operatorname{softplus}(\lambda_j),

    the second form being finite for any finite logit (no ``log(0)``). ``x`` must hold only 0 and 1.
    """
    x, logits = _check_event("x", x, "logits", logits)
    values = getval(x)
    if not np.all((values == 0) | (values == 1)):
        raise ValueError("bernoulli_log_likelihood: x must contain only 0 and 1 (binary data)")
    return np.sum(x * logits - softplus(logits), axis=-1)


def kl_normal_standard_per_dim(mean, log_std):
    r"""Closed-form :math:`D_{KL}(\mathcal N(\mu_j, \sigma_j^2) \,\|\, \mathcal N(0, 1))`, per dimension.

    .. math:: \tfrac12\left(\mu_j^2 + \sigma_j^2 - 1\right) - \log\sigma_j

    (Kingma & Welling 2014, appendix B; the negative of its per-dimension term).
    """
    mean, log_std = _check_event("mean", mean, "log_std", log_std)
    return 0.5 * (mean**2 + np.exp(2.0 * log_std) - 1.0) - log_std


def kl_normal_standard(mean, log_std):
    r"""Closed-form :math:`D_{KL}(\mathcal N(\boldsymbol\mu, \operatorname{diag}\boldsymbol\sigma^2)
    \,\|\, \mathcal N(\mathbf 0, \mathbf I))`, summed over the last axis."""
    return np.sum(kl_normal_standard_per_dim(mean, log_std), axis=-1)


def kl_normal_diag(mean_q, log_std_q, mean_p, log_std_p):
    r"""Closed-form KL between two diagonal Gaussians, summed over the last axis.

    .. math::
        D_{KL}(q\|p) = \sum_j \log\frac{\sigma_{p,j}}{\sigma_{q,j}}
        + \frac{\sigma_{q,j}^2 + (\mu_{q,j}-\mu_{p,j})^2}{2\sigma_{p,j}^2} - \frac12
    """
    mean_q, log_std_q, mean_p, log_std_p = _check_event(
        "mean_q", mean_q, "log_std_q", log_std_q, "mean_p", mean_p, "log_std_p", log_std_p
    )
    ratio = np.exp(2.0 * (log_std_q - log_std_p))
    scaled_gap = (mean_q - mean_p) * np.exp(-log_std_p)
    return np.sum(log_std_p - log_std_q + 0.5 * (ratio + scaled_gap**2 - 1.0), axis=-1)


def sample_normal_diag(mean, log_std, eps):
    r"""Reparameterized sample :math:`\mathbf z = \boldsymbol\mu + \exp(\log\boldsymbol\sigma) \odot
    \boldsymbol\epsilon` with :math:`\boldsymbol\epsilon \sim \mathcal N(\mathbf 0, \mathbf I)` given
    (K&W eq. 2.40). Pass ``eps = rng.standard_normal(shape)``; leading sample axes broadcast."""
    mean, log_std, eps = _check_event("mean", mean, "log_std", log_std, "eps", eps)
    return mean + np.exp(log_std) * eps


# --- input checks -------------------------------------------------------------------------------

# The same message in both backends (the torch module imports it from here).
NON_FINITE_LOG_STD = ("log_std must be finite: log_std = -inf is a zero standard deviation (a point "
                      "mass, whose log-density is not defined) and +inf or NaN is no distribution")


def _check_finite_log_std(log_std):
    """Refuse a ``log_std`` with an infinite or NaN entry (checked on its value, not traced)."""
    if not np.all(np.isfinite(getval(log_std))):
        raise ValueError(NON_FINITE_LOG_STD)


def _check_float(name, a):
    """Turn ``a`` into a float array (autograd boxes pass through); reject non-numeric input."""
    if not hasattr(a, "shape"):
        a = np.asarray(a)  # no dtype= here: a list of str or complex must reach the check below
        if a.dtype.kind in "iub":
            a = a.astype(float)
    dtype = np.asarray(getval(a)).dtype
    if dtype.kind not in "fiub":
        raise ValueError(f"{name} must be a real-valued array, got dtype {dtype}")
    return a


def _check_event(*named):
    """Check name/array pairs: real-valued, same event (last-axis) size, broadcastable batch shapes."""
    names, arrays = named[0::2], [_check_float(n, a) for n, a in zip(named[0::2], named[1::2])]
    shapes = [np.shape(a) for a in arrays]
    if any(len(s) == 0 for s in shapes):
        raise ValueError("arrays need an event axis (the last axis); got a scalar: "
                         + ", ".join(f"{n}{s}" for n, s in zip(names, shapes)))
    if len({s[-1] for s in shapes}) > 1:
        raise ValueError("event (last-axis) sizes differ: "
                         + ", ".join(f"{n}{s}" for n, s in zip(names, shapes)))
    _check_broadcast("batch shapes", names, shapes)
    return arrays


def _check_broadcast(what, names, shapes):
    """Raise a ``ValueError`` that lists every named shape unless the shapes broadcast together."""
    try:
        np.broadcast_shapes(*shapes)
    except ValueError:
        raise ValueError(f"{what} do not broadcast: "
                         + ", ".join(f"{n}{s}" for n, s in zip(names, shapes))) from None
