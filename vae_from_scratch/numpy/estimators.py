r"""Monte Carlo estimators of gradients of expectations (autograd.numpy reference).

The problem of chapters 3-4: estimate :math:`\nabla_\phi\, \mathbb E_{q_\phi(\mathbf z)}[f(\mathbf z)]`
when the distribution itself depends on :math:`\phi` (K&W eqs. 2.18-2.19). Three estimators:

* **reparameterization** (pathwise) gradient, :math:`\mathbf z = \mathbf g(\boldsymbol\epsilon, \phi)`
  (K&W eqs. 2.20-2.24): :math:`\nabla_\phi f(\mathbf g(\boldsymbol\epsilon, \phi))`;
* **score-function** (likelihood-ratio, REINFORCE) gradient (K&W eqs. 2.72-2.73):
  :math:`(f(\mathbf z) - b)\, \nabla_\phi \log q_\phi(\mathbf z)`, with an optional baseline
  :math:`b` that does not depend on :math:`\mathbf z` (a control variate: the score has mean zero);
* **path-derivative** ("sticking the landing") gradient of the ELBO (Roeder et al. 2017):
  the reparameterization gradient with the score term of :math:`\log q_\phi` dropped by a
  stop-gradient, exactly zero for every sample when :math:`q_\phi` is the exact posterior.

Every ``*_gradient`` function returns **per-sample** estimates with shape ``(S,) + phi.shape``
(``S`` = number of noise draws): their mean is the ``S``-sample estimator and their spread
measures its variance. Parameters ``phi`` are one flat array; the user's functions unpack it.

Batched-parameter contract: the callables ``sample(phi, eps)``, ``log_q(phi, z)`` receive a
*stack* of identical copies of ``phi`` with shape ``(S,) + phi.shape`` (one copy per sample;
:func:`per_sample_gradients` differentiates with respect to the stack to obtain all per-sample
gradients in one backward pass) and must broadcast over that leading axis, e.g.
``mean, log_std = phi[..., :K], phi[..., K:]``.
"""

import autograd.numpy as np
from autograd import grad
from autograd.tracer import getval

__all__ = [
    "stop_gradient",
    "per_sample_gradients",
    "reparam_gradient",
    "elbo_surrogate",
    "elbo_gradient",
    "path_derivative_surrogate",
    "path_derivative_gradient",
    "score_function_surrogate",
    "score_function_gradient",
    "score_function_elbo_gradient",
    "leave_one_out_baseline",
    "sample_bernoulli",
]


def stop_gradient(x):
    r"""The value of ``x`` with no gradient flowing through it (:math:`\bot(x)` in the text):
    autograd's ``getval``, the counterpart of ``torch.Tensor.detach``."""
    return getval(x)


def per_sample_gradients(fun, phi, noise):
    r"""Per-sample gradients :math:`\nabla_\phi\, \texttt{fun}(\phi, \texttt{noise}_l)` for every ``l``.

    ``fun(phis, noise)`` must return shape ``(S,)``, where ``phis`` stacks ``S`` copies of ``phi``
    and entry ``l`` depends only on ``phis[l]`` and ``noise[l]``. Returns ``(S,) + phi.shape``.
    """
    phi = np.asarray(getval(phi), dtype=float)
    noise = np.asarray(noise)
    if np.ndim(noise) == 0:
        raise ValueError("noise needs a leading sample axis (S, ...)")
    S = np.shape(noise)[0]
    phis = np.tile(phi, (S,) + (1,) * np.ndim(phi))

    def total(p):
        values = fun(p, noise)
        if np.shape(values) != (S,):
            raise ValueError(f"the function must return one value per sample, shape ({S},); "
                             f"got {np.shape(values)}")
        return np.sum(values)

    return grad(total)(phis)


def reparam_gradient(f, sample, phi, eps):
    r"""Reparameterization gradient of :math:`\mathbb E_{q_\phi}[f(\mathbf z)]`, one estimate per noise
    draw (K&W eqs. 2.22-2.24):

    .. math:: \hat{\mathbf g}_l = \nabla_\phi f\big(\mathbf g(\boldsymbol\epsilon_l, \phi)\big),
              \qquad \boldsymbol\epsilon_l \sim p(\boldsymbol\epsilon).

    ``f(z)`` returns ``(S,)``; ``sample(phis, eps)`` returns ``z``; ``eps`` has shape ``(S, ...)``.
    """
    return per_sample_gradients(lambda p, e: f(sample(p, e)), phi, eps)


def elbo_surrogate(log_joint, sample, log_q, phi, eps):
    r"""Single-sample ELBO estimates whose gradient is the standard ("total derivative")
    reparameterization gradient (K&W eqs. 2.27-2.29):

    .. math:: \tilde{\mathcal L}_l = \log p(\mathbf x, \mathbf z_l) - \log q_\phi(\mathbf z_l),
              \qquad \mathbf z_l = \mathbf g(\boldsymbol\epsilon_l, \phi).

    ``log_joint(z)`` is :math:`\log p(\mathbf x, \mathbf z)` for the fixed data point; ``log_q(phi, z)``
    the variational log-density. Returns ``(S,)``.
    """
    z = sample(phi, eps)
    return log_joint(z) - log_q(phi, z)


def elbo_gradient(log_joint, sample, log_q, phi, eps):
    r"""Per-sample standard reparameterization gradients of the ELBO,

    .. math:: \hat{\mathbf g}_l = \nabla_\phi \big[\log p(\mathbf x,\mathbf z) - \log q_\phi(\mathbf z)\big]
              _{\mathbf z=\mathbf g(\boldsymbol\epsilon_l,\phi)}

    (total derivative: path term plus score term). Returns ``(S,) + phi.shape``."""
    return per_sample_gradients(lambda p, e: elbo_surrogate(log_joint, sample, log_q, p, e), phi, eps)


def path_derivative_surrogate(log_joint, sample, log_q, phi, eps):
    r"""Single-sample ELBO estimates whose gradient is the path-derivative ("sticking the landing")
    estimator of Roeder et al. (2017):

    .. math:: \tilde{\mathcal L}^{\mathrm{PD}}_l = \log p(\mathbf x, \mathbf z_l)
              - \log q_{\bot(\phi)}(\mathbf z_l), \qquad \mathbf z_l = \mathbf g(\boldsymbol\epsilon_l, \phi),

    where :math:`\bot` stops the gradient: :math:`\phi` still reaches :math:`\log q` through the
    sample :math:`\mathbf z_l` (the path), but not through the density's own parameters. Its
    gradient drops the score term :math:`-\nabla_\phi \log q_\phi(\mathbf z)|_{\mathbf z\ \text{fixed}}`,
    whose expectation is zero, so it stays unbiased; its value equals :func:`elbo_surrogate`'s.
    """
    z = sample(phi, eps)
    return log_joint(z) - log_q(stop_gradient(phi), z)


def path_derivative_gradient(log_joint, sample, log_q, phi, eps):
    r"""Per-sample path-derivative gradients of the ELBO,

    .. math:: \hat{\mathbf g}^{\mathrm{PD}}_l = \Big(\nabla_{\mathbf z}\big[\log p(\mathbf x,\mathbf z)
              - \log q_\phi(\mathbf z)\big]\Big)^{\!\top} \frac{\partial \mathbf z}{\partial \phi}
              \Big|_{\mathbf z = \mathbf g(\boldsymbol\epsilon_l, \phi)},

    which vanish identically when :math:`q_\phi(\mathbf z) = p(\mathbf z \mid \mathbf x)` because then
    :math:`\log p(\mathbf x,\mathbf z) - \log q_\phi(\mathbf z) = \log p(\mathbf x)` is constant in
    :math:`\mathbf z` (Roeder et al. 2017). Returns ``(S,) + phi.shape``."""
    return per_sample_gradients(
        lambda p, e: path_derivative_surrogate(log_joint, sample, log_q, p, e), phi, eps)


def score_function_surrogate(f_values, log_q_values, baseline=None):
    r"""Surrogate whose gradient is the score-function estimator:
    :math:`\bot\big(f(\mathbf z_l) - b_l\big)\, \log q_\phi(\mathbf z_l)` (samples ``z`` carry no
    gradient). ``baseline``: ``None`` (no baseline), an array broadcastable to ``(S,)``, or
    ``"leave-one-out"`` (:func:`leave_one_out_baseline`)."""
    weights = _centered(stop_gradient(f_values), baseline)
    return weights * log_q_values


def score_function_gradient(f, log_q, phi, z, baseline=None):
    r"""Per-sample score-function (likelihood-ratio, REINFORCE) gradients of
    :math:`\mathbb E_{q_\phi}[f(\mathbf z)]` (K&W eqs. 2.72-2.73; Williams 1992, Glynn 1990):

    .. math:: \hat{\mathbf g}_l = \big(f(\mathbf z_l) - b_l\big)\, \nabla_\phi \log q_\phi(\mathbf z_l),
              \qquad \mathbf z_l \sim q_\phi .

    Unbiased for any baseline :math:`b_l` that does not depend on :math:`\mathbf z_l`, because
    :math:`\mathbb E_{q_\phi}[\nabla_\phi\log q_\phi(\mathbf z)] = \mathbf 0`. ``f(z)`` returns ``(S,)``
    (it is only *evaluated*: its value is a scalar weight, never differentiated); ``log_q(phis, z)``
    returns ``(S,)``; ``z`` has shape ``(S, ...)`` and is treated as a constant. ``baseline`` as in
    :func:`score_function_surrogate`. Returns ``(S,) + phi.shape``.
    """
    z = stop_gradient(z)
    weights = _centered(np.asarray(getval(f(z)), dtype=float), baseline)
    return per_sample_gradients(lambda p, zz: weights * log_q(p, zz), phi, z)


def score_function_elbo_gradient(log_joint, log_q, phi, z, baseline=None):
    r"""Score-function gradients of the ELBO: :func:`score_function_gradient` with
    :math:`f(\mathbf z) = \log p(\mathbf x,\mathbf z) - \log q_\phi(\mathbf z)` evaluated at the current
    :math:`\phi` (the extra term :math:`-\mathbb E_q[\nabla_\phi\log q_\phi] = \mathbf 0` is dropped)."""
    phi = np.asarray(getval(phi), dtype=float)
    S = np.shape(z)[0]
    phis = np.tile(phi, (S,) + (1,) * np.ndim(phi))
    return score_function_gradient(lambda zz: log_joint(zz) - log_q(phis, zz), log_q, phi, z, baseline)


def leave_one_out_baseline(values):
    r"""For each sample, the mean of the *other* samples' values along axis 0:

    .. math:: b_l = \frac{1}{S-1} \sum_{l' \neq l} f(\mathbf z_{l'}),

    independent of :math:`\mathbf z_l`, so the score-function estimator stays unbiased
    (Kool et al. 2019; the idea behind VIMCO, Mnih & Rezende 2016). Needs ``S >= 2``."""
    values = np.asarray(getval(values), dtype=float)
    if np.ndim(values) == 0 or np.shape(values)[0] < 2:
        raise ValueError("leave_one_out_baseline needs at least 2 samples along axis 0")
    S = np.shape(values)[0]
    return (np.sum(values, axis=0) - values) / (S - 1)


def sample_bernoulli(logits, u):
    r"""Bernoulli samples :math:`z = [u < \operatorname{sigmoid}(\lambda)]` from uniform noise ``u``
    (same shape as, or broadcasting with, ``logits``). A step function of :math:`\lambda`: its
    derivative is zero almost everywhere, which is why reparameterization does not apply. The
    log-probability is :func:`~vae_from_scratch.numpy.distributions.bernoulli_log_likelihood`."""
    p = 1.0 / (1.0 + np.exp(-np.asarray(getval(logits), dtype=float)))
    return (np.asarray(u) < p).astype(float)


def _centered(values, baseline):
    if baseline is None:
        return values
    if isinstance(baseline, str):
        if baseline != "leave-one-out":
            raise ValueError(f"unknown baseline {baseline!r}; use None, an array or 'leave-one-out'")
        return values - leave_one_out_baseline(values)
    return values - np.asarray(getval(baseline), dtype=float)
