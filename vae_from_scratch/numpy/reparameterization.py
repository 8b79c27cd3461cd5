r"""Reparameterized samplers that also return their log-density (autograd.numpy reference).

The reparameterization trick writes a sample of :math:`q_\phi(\mathbf z)` as a differentiable,
invertible function of parameter-free noise (K&W eq. 2.20),

.. math:: \mathbf z = \mathbf g(\boldsymbol\epsilon, \phi), \qquad \boldsymbol\epsilon \sim p(\boldsymbol\epsilon),

and the change-of-variables formula gives its density from the noise density and the
log-determinant of the Jacobian :math:`\partial\mathbf z / \partial\boldsymbol\epsilon`
(K&W eqs. 2.33-2.35):

.. math:: \log q_\phi(\mathbf z) = \log p(\boldsymbol\epsilon)
          - \log \left| \det \frac{\partial \mathbf z}{\partial \boldsymbol\epsilon} \right|.

Two families are implemented, both with standard-normal noise:

* the **factorized Gaussian** :math:`\mathbf z = \boldsymbol\mu + \boldsymbol\sigma \odot \boldsymbol\epsilon`
  (K&W eqs. 2.36-2.44), Jacobian :math:`\operatorname{diag}(\boldsymbol\sigma)`;
* the **full-covariance Gaussian** :math:`\mathbf z = \boldsymbol\mu + \mathbf L \boldsymbol\epsilon`
  with a lower-triangular factor :math:`\mathbf L` (K&W eqs. 2.45-2.55), Jacobian :math:`\mathbf L`,
  built as :math:`\mathbf L = \mathbf L_{mask} \odot \mathbf L' + \operatorname{diag}(\boldsymbol\sigma)`
  so that any real :math:`\mathbf L'` and :math:`\log\boldsymbol\sigma` give a valid factor.

Conventions follow :mod:`vae_from_scratch.numpy.distributions`: the event axis is last, Gaussians
are parameterized by mean and **log standard deviation**, every batch axis broadcasts, the noise
``eps`` is passed in (draw it with ``rng.standard_normal``), functions are pure and differentiable
with autograd. Matrices have shape ``(..., K, K)``. Functions that take a factor ``L`` check that it
is lower triangular unless ``validate=False`` (the torch backend has the same flag; there the check
costs a device synchronization).
"""

import autograd.numpy as np
from autograd.tracer import getval

from .distributions import _check_event, _check_finite_log_std, _check_float, log_standard_normal

# The same messages in both backends (the torch module imports them from here).
NOT_TRIANGULAR = ("L must be lower triangular (entries above the diagonal must be 0); "
                  "build it with full_covariance_factor")
BAD_DIAGONAL = ("L needs a finite, non-zero diagonal: a zero L_jj makes the covariance L L^T "
                "singular (q is degenerate, log q and the KL are infinite); build L with "
                "full_covariance_factor, whose diagonal exp(log_std) is positive")

__all__ = [
    "rsample_normal_diag",
    "log_det_jacobian_diag",
    "strictly_lower_mask",
    "full_covariance_factor",
    "rsample_normal_full",
    "log_normal_full",
    "log_det_jacobian_full",
    "kl_normal_full_standard",
]


def rsample_normal_diag(mean, log_std, eps, validate=True):
    r"""Reparameterized sample of a factorized Gaussian and its log-density.

    .. math::
        \mathbf z = \boldsymbol\mu + \boldsymbol\sigma \odot \boldsymbol\epsilon, \qquad
        \log q(\mathbf z) = \log \mathcal N(\boldsymbol\epsilon; \mathbf 0, \mathbf I)
                            - \sum_j \log\sigma_j

    (K&W eqs. 2.38-2.44: the Jacobian :math:`\partial\mathbf z/\partial\boldsymbol\epsilon` is
    :math:`\operatorname{diag}(\boldsymbol\sigma)`, K&W eq. 2.41, whose log-determinant is
    :math:`\sum_j \log\sigma_j`, K&W eq. 2.42).

    ``mean`` and ``log_std`` are ``(..., K)``; ``eps`` is ``(..., K)`` (leading sample axes
    broadcast). Returns ``(z, log_q)`` with ``z`` of the broadcast shape and ``log_q`` without the
    event axis. ``log_q`` is computed from the noise, so it is cheap and exact; it equals
    :func:`~vae_from_scratch.numpy.distributions.log_normal_diag` evaluated at ``z``. A non-finite
    ``log_std`` is refused with a ``ValueError`` unless ``validate=False``.
    """
    mean, log_std, eps = _check_event("mean", mean, "log_std", log_std, "eps", eps)
    if validate:
        _check_finite_log_std(log_std)
    z = mean + np.exp(log_std) * eps
    log_q = log_standard_normal(eps) - log_det_jacobian_diag(log_std)
    return z, log_q * np.ones(np.shape(z)[:-1])


def log_det_jacobian_diag(log_std):
    r""":math:`\log|\det \partial\mathbf z/\partial\boldsymbol\epsilon| = \sum_j \log\sigma_j` for the
    factorized Gaussian (K&W eq. 2.42); sums the last axis of ``log_std``."""
    log_std = _check_float("log_std", log_std)
    if np.ndim(log_std) == 0:
        raise ValueError("log_std needs an event axis (the last axis); got a scalar")
    return np.sum(log_std, axis=-1)


def strictly_lower_mask(K):
    r"""The masking matrix :math:`\mathbf L_{mask}` of K&W eq. 2.54: ones strictly below the diagonal,
    zeros on and above it, shape ``(K, K)``."""
    if int(K) != K or K < 1:
        raise ValueError(f"K must be a positive integer, got {K!r}")
    return np.tril(np.ones((int(K), int(K))), k=-1)


def full_covariance_factor(L_prime, log_std):
    r"""The lower-triangular factor of a full-covariance Gaussian and its log-determinant.

    .. math::
        \mathbf L = \mathbf L_{mask} \odot \mathbf L' + \operatorname{diag}(\boldsymbol\sigma),
        \qquad
        \log\left|\det \mathbf L\right| = \sum_j \log\sigma_j

    (K&W eqs. 2.53-2.55). The mask keeps only the strictly lower part of the unconstrained
    ``L_prime``, so the diagonal of :math:`\mathbf L` is exactly :math:`\boldsymbol\sigma > 0` and
    the determinant of the triangular matrix is the product of its diagonal.

    ``L_prime`` is ``(..., K, K)``, ``log_std`` is ``(..., K)``; returns ``(L, log_det)`` with
    ``L`` of shape ``(..., K, K)`` and ``log_det`` of shape ``(...)``.
    """
    L_prime = _check_float("L_prime", L_prime)
    log_std = _check_float("log_std", log_std)
    if np.ndim(L_prime) < 2 or np.shape(L_prime)[-1] != np.shape(L_prime)[-2]:
        raise ValueError(f"L_prime must have shape (..., K, K), got {np.shape(L_prime)}")
    K = np.shape(L_prime)[-1]
    if np.ndim(log_std) == 0 or np.shape(log_std)[-1] != K:
        raise ValueError(f"log_std must have shape (..., K) with K={K}, got {np.shape(log_std)}")
    L = strictly_lower_mask(K) * L_prime + np.exp(log_std)[..., :, None] * np.eye(K)
    return L, np.sum(log_std, axis=-1)


def rsample_normal_full(mean, L, eps, validate=True):
    r"""Reparameterized sample of a full-covariance Gaussian and its log-density.

    .. math::
        \mathbf z = \boldsymbol\mu + \mathbf L \boldsymbol\epsilon, \qquad
        \log q(\mathbf z) = \log \mathcal N(\boldsymbol\epsilon; \mathbf 0, \mathbf I)
                            - \sum_j \log |L_{jj}|

    (K&W eqs. 2.46-2.49), so that :math:`\mathbf z \sim \mathcal N(\boldsymbol\mu,
    \mathbf L \mathbf L^\top)` (K&W eqs. 2.50-2.52). ``L`` must be lower triangular (for instance from
    :func:`full_covariance_factor`); only then is :math:`\log|\det\mathbf L|` the sum of the log
    diagonal. ``mean`` is ``(..., K)``, ``L`` is ``(..., K, K)``, ``eps`` is ``(..., K)``; returns
    ``(z, log_q)``. ``validate=False`` skips the check that ``L`` is lower triangular.
    """
    mean, eps = _check_event("mean", mean, "eps", eps)
    L = _check_factor(L, np.shape(mean)[-1], validate)
    _check_factor_batch(L, mean=mean, eps=eps)
    z = mean + np.einsum("...ij,...j->...i", L, eps)
    log_q = log_standard_normal(eps) - log_det_jacobian_full(L, validate=False)
    return z, log_q * np.ones(np.shape(z)[:-1])


def log_normal_full(z, mean, L, validate=True):
    r"""Log-density of :math:`\mathcal N(\boldsymbol\mu, \mathbf L\mathbf L^\top)` at ``z`` for a
    lower-triangular factor ``L``, by inverting the reparameterization:

    .. math::
        \boldsymbol\epsilon = \mathbf L^{-1}(\mathbf z - \boldsymbol\mu), \qquad
        \log q(\mathbf z) = \log \mathcal N(\boldsymbol\epsilon; \mathbf 0, \mathbf I)
                            - \sum_j \log|L_{jj}|

    (K&W eq. 2.33 with the Jacobian of K&W eq. 2.48). Differentiable in ``z``, ``mean`` and ``L``;
    needed where ``z`` was not produced from known noise (e.g. the path-derivative estimator).
    ``validate=False`` skips the check that ``L`` is lower triangular.
    """
    z, mean = _check_event("z", z, "mean", mean)
    L = _check_factor(L, np.shape(mean)[-1], validate)
    _check_factor_batch(L, z=z, mean=mean)
    diff = z - mean
    shape = np.broadcast_shapes(np.shape(diff)[:-1], np.shape(L)[:-2])
    K = np.shape(mean)[-1]
    # broadcast explicitly (by multiplying with ones, which autograd un-broadcasts in the
    # backward pass): autograd's gradient of solve assumes equal batch axes
    L_b = L * np.ones(shape + (1, 1))
    diff_b = diff * np.ones(shape + (1,))
    try:
        eps = np.linalg.solve(L_b, diff_b[..., None])[..., 0]
    except np.linalg.LinAlgError:  # only reachable with validate=False
        raise ValueError(BAD_DIAGONAL) from None
    return log_standard_normal(eps) - log_det_jacobian_full(L, validate=False)


def log_det_jacobian_full(L, validate=True):
    r""":math:`\log|\det\mathbf L| = \sum_j \log|L_{jj}|` for a triangular ``L`` of shape
    ``(..., K, K)`` (K&W eq. 2.48)."""
    L = _check_factor(L, validate=validate)
    diagonal = np.sum(L * np.eye(np.shape(L)[-1]), axis=-1)  # L_jj (differentiable in autograd)
    return np.sum(np.log(np.abs(diagonal)), axis=-1)


def kl_normal_full_standard(mean, L, validate=True):
    r"""Closed-form :math:`D_{KL}(\mathcal N(\boldsymbol\mu, \mathbf L\mathbf L^\top) \,\|\,
    \mathcal N(\mathbf 0, \mathbf I))`:

    .. math:: \tfrac12\left(\operatorname{tr}(\mathbf L\mathbf L^\top) + \boldsymbol\mu^\top\boldsymbol\mu
              - K\right) - \log|\det\mathbf L|.
    """
    mean = _check_float("mean", mean)
    L = _check_factor(L, np.shape(mean)[-1] if np.ndim(mean) else None, validate)
    if np.ndim(mean):
        _check_factor_batch(L, mean=mean)
    K = np.shape(L)[-1]
    trace = np.sum(L**2, axis=(-2, -1))
    return 0.5 * (trace + np.sum(mean**2, axis=-1) - K) - log_det_jacobian_full(L, validate=False)


def _check_factor(L, K=None, validate=True):
    """A real ``(..., K, K)`` matrix; if ``validate``, lower triangular (checked on its value, not traced)."""
    L = _check_float("L", L)
    shape = np.shape(L)
    if len(shape) < 2 or shape[-1] != shape[-2]:
        raise ValueError(f"L must have shape (..., K, K), got {shape}")
    if K is not None and shape[-1] != K:
        raise ValueError(f"L has shape {shape} but the event size is K={K}")
    if validate:
        values = np.asarray(getval(L))
        if np.any(np.triu(values, k=1) != 0):
            raise ValueError(NOT_TRIANGULAR)
        diagonal = np.diagonal(values, axis1=-2, axis2=-1)
        if not np.all(np.isfinite(diagonal) & (diagonal != 0)):
            raise ValueError(BAD_DIAGONAL)
    return L


def _check_factor_batch(L, **named):
    """``L``'s batch axes (all but the last two) must broadcast with the named arrays' batch axes."""
    names = ["L"] + list(named)
    shapes = [np.shape(L)[:-2]] + [np.shape(a)[:-1] for a in named.values()]
    try:
        np.broadcast_shapes(*shapes)
    except ValueError:
        raise ValueError("batch shapes do not broadcast: " + ", ".join(
            f"{n}{s}" for n, s in zip(names, [np.shape(L)] + [np.shape(a) for a in named.values()])
        )) from None
