r"""The linear-Gaussian testbed: a latent-variable model whose every quantity is exact.

.. math::
    p(\mathbf z) = \mathcal N(\mathbf 0, \mathbf I_K), \qquad
    p_\theta(\mathbf x \mid \mathbf z) = \mathcal N(\mathbf W \mathbf z + \mathbf b, s^2 \mathbf I_D)

(probabilistic PCA; Tipping & Bishop 1999). Because everything is Gaussian,

.. math::
    p_\theta(\mathbf x) = \mathcal N(\mathbf b, \mathbf W\mathbf W^\top + s^2 \mathbf I), \qquad
    p_\theta(\mathbf z \mid \mathbf x) = \mathcal N\big(\boldsymbol\Sigma \mathbf W^\top
        (\mathbf x - \mathbf b)/s^2,\ \boldsymbol\Sigma\big), \quad
    \boldsymbol\Sigma = (\mathbf I + \mathbf W^\top \mathbf W / s^2)^{-1},

so ELBOs, gaps and gradient estimators can be checked against the truth. Functions are pure and
differentiable with autograd in ``W``, ``b`` and ``log_s`` (the log of the noise standard deviation).
Data ``x`` has shape ``(..., D)``; ``W`` is ``(D, K)``.
"""

import autograd.numpy as np

from .distributions import LOG_2PI, log_normal_diag, log_standard_normal


def log_joint(x, z, W, b, log_s):
    r""":math:`\log p(\mathbf z) + \log p_\theta(\mathbf x\mid\mathbf z)`, broadcasting ``z`` (..., K)
    against ``x`` (..., D)."""
    _check(x, W, b)
    mean = np.einsum("dk,...k->...d", W, z) + b
    return log_standard_normal(z) + log_normal_diag(x, mean, log_s * np.ones(np.shape(x)[-1]))


def log_marginal(x, W, b, log_s):
    r"""Exact :math:`\log p_\theta(\mathbf x) = \log\mathcal N(\mathbf x; \mathbf b, \mathbf W\mathbf W^\top
    + s^2\mathbf I)`, one value per data point."""
    _check(x, W, b)
    D = W.shape[0]
    cov = np.dot(W, W.T) + np.exp(2.0 * log_s) * np.eye(D)
    L = np.linalg.cholesky(cov)
    diff = (x - b).reshape(-1, D)
    white = np.linalg.solve(L, diff.T)  # (D, N): L^{-1}(x - b)
    logdet = 2.0 * np.sum(np.log(np.diag(L)))
    values = -0.5 * (np.sum(white**2, axis=0) + logdet + D * LOG_2PI)
    return values.reshape(np.shape(x)[:-1])


def posterior(x, W, b, log_s):
    r"""Exact posterior :math:`p_\theta(\mathbf z\mid\mathbf x)`: returns ``(mean, cov)`` with mean
    ``(..., K)`` and the shared covariance ``(K, K)``."""
    _check(x, W, b)
    K = W.shape[1]
    precision = np.eye(K) + np.dot(W.T, W) * np.exp(-2.0 * log_s)
    cov = np.linalg.inv(precision)
    mean = np.einsum("kj,dj,...d->...k", cov, W, x - b) * np.exp(-2.0 * log_s)
    return mean, cov


def sample(rng, n, W, b, log_s):
    """Draw ``n`` pairs ``(x, z)`` from the model with a ``numpy.random.Generator``."""
    D, K = W.shape
    z = rng.standard_normal((n, K))
    x = z @ W.T + b + np.exp(log_s) * rng.standard_normal((n, D))
    return x, z


def _check(x, W, b):
    if np.ndim(W) != 2:
        raise ValueError(f"W must be a (D, K) matrix, got shape {np.shape(W)}")
    D = np.shape(W)[0]
    if np.shape(x)[-1] != D or np.shape(b)[-1] != D:
        raise ValueError(f"x {np.shape(x)} and b {np.shape(b)} must end in D={D} (W is {np.shape(W)})")
