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
from autograd.tracer import getval

from .distributions import LOG_2PI, log_normal_diag, log_standard_normal
from .reparameterization import full_covariance_factor, log_normal_full, rsample_normal_full, strictly_lower_mask


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


# --- Gaussian approximate posteriors: the ELBO and its gap in closed form -----------------------


def elbo_gaussian(x, W, b, log_s, mean, scale_tril):
    r"""Exact ELBO of a Gaussian :math:`q(\mathbf z) = \mathcal N(\mathbf m, \mathbf L\mathbf L^\top)`
    (``mean`` = :math:`\mathbf m` of shape ``(..., K)``, ``scale_tril`` = lower-triangular :math:`\mathbf L`
    of shape ``(K, K)`` or ``(..., K, K)``; a diagonal ``L`` gives a factorized q).

    Every term of K&W eq. 2.10 is a Gaussian expectation of a quadratic:

    .. math::
        \mathcal L(q) =
        \underbrace{-\tfrac{D}{2}\log 2\pi s^2 - \frac{\lVert\mathbf x-\mathbf W\mathbf m-\mathbf b\rVert^2
            + \lVert\mathbf W\mathbf L\rVert_F^2}{2s^2}}_{\mathbb E_q\log p(\mathbf x\mid\mathbf z)}
        \;\underbrace{-\tfrac{K}{2}\log 2\pi - \tfrac12\big(\lVert\mathbf m\rVert^2
            + \lVert\mathbf L\rVert_F^2\big)}_{\mathbb E_q\log p(\mathbf z)}
        \;\underbrace{+\tfrac{K}{2}(1+\log 2\pi) + \textstyle\sum_k \log\lvert L_{kk}\rvert}_{\mathcal H(q)}

    Differentiable with autograd in all of ``W, b, log_s, mean, scale_tril``; one value per data point.
    """
    _check(x, W, b)
    D, K = np.shape(W)
    L = _check_q(mean, scale_tril, K)
    resid = x - np.einsum("dk,...k->...d", W, mean) - b
    WL = np.einsum("dk,...kj->...dj", W, L)
    s2 = np.exp(2.0 * log_s)
    e_loglik = (-0.5 * D * LOG_2PI - D * log_s
                - 0.5 * (np.sum(resid**2, axis=-1) + np.sum(WL**2, axis=(-2, -1))) / s2)
    e_logprior = -0.5 * K * LOG_2PI - 0.5 * (np.sum(mean**2, axis=-1) + np.sum(L**2, axis=(-2, -1)))
    entropy = 0.5 * K * (1.0 + LOG_2PI) + np.sum(np.log(np.abs(_diag(L, K))), axis=-1)
    return e_loglik + e_logprior + entropy


def kl_to_posterior(x, W, b, log_s, mean, scale_tril):
    r"""Exact :math:`D_{KL}\big(\mathcal N(\mathbf m, \mathbf L\mathbf L^\top)\,\|\,p_\theta(\mathbf z\mid\mathbf x)\big)`,
    the gap :math:`\log p_\theta(\mathbf x) - \mathcal L(q)` of K&W eq. 2.8.

    With the posterior :math:`\mathcal N(\boldsymbol\mu, \boldsymbol\Lambda^{-1})`,
    :math:`\boldsymbol\Lambda = \mathbf I + \mathbf W^\top\mathbf W/s^2` (see :func:`posterior`),

    .. math::
        D_{KL} = \tfrac12\Big(\operatorname{tr}(\boldsymbol\Lambda\mathbf L\mathbf L^\top)
        + (\boldsymbol\mu-\mathbf m)^\top\boldsymbol\Lambda(\boldsymbol\mu-\mathbf m) - K
        - \log\det\boldsymbol\Lambda - 2\textstyle\sum_k\log\lvert L_{kk}\rvert\Big).
    """
    _check(x, W, b)
    K = np.shape(W)[1]
    L = _check_q(mean, scale_tril, K)
    precision = np.eye(K) + np.dot(W.T, W) * np.exp(-2.0 * log_s)
    post_mean, _ = posterior(x, W, b, log_s)
    diff = post_mean - mean
    trace = np.sum(np.einsum("ij,...jk->...ik", precision, L) * L, axis=(-2, -1))
    maha = np.einsum("...i,ij,...j->...", diff, precision, diff)
    logdet_precision = np.linalg.slogdet(precision)[1]
    logdet_cov_q = 2.0 * np.sum(np.log(np.abs(_diag(L, K))), axis=-1)
    return 0.5 * (trace + maha - K - logdet_precision - logdet_cov_q)


class FullCovarianceQ:
    r"""A full-covariance Gaussian :math:`q_\phi(\mathbf z) = \mathcal N(\mathbf m, \mathbf L\mathbf L^\top)`
    for one data point ``x`` (shape ``(D,)``) of the testbed, with flat parameters
    ``phi = [m (K), log sigma (K), L' (K*K)]`` and
    :math:`\mathbf L = \mathbf L_{mask}\odot\mathbf L' + \operatorname{diag}\boldsymbol\sigma`
    (:func:`~vae_from_scratch.numpy.reparameterization.full_covariance_factor`).

    ``log_joint(z)``, ``sample(phi, eps)`` and ``log_q(phi, z)`` are the callables the estimators of
    :mod:`vae_from_scratch.numpy.estimators` take (leading axes of ``phi`` and ``eps`` broadcast);
    ``exact_elbo(phi)`` is the closed form :func:`elbo_gaussian`, whose autograd gradient is the
    truth to check them against. ``phi_star`` parameterizes the exact posterior (``exact_elbo`` equals
    :func:`log_marginal` there); ``free`` masks the coordinates of ``phi`` that influence q (the entries
    of ``L'`` on and above the diagonal do not).
    """

    def __init__(self, x, W, b, log_s):
        _check(x, W, b)
        if np.ndim(x) != 1:
            raise ValueError(f"x must be one data point of shape (D,), got shape {np.shape(x)}")
        self.x, self.W, self.b, self.log_s = x, W, b, log_s
        self.D, self.K = np.shape(W)
        K = self.K
        post_mean, post_cov = posterior(x, W, b, log_s)
        L = np.linalg.cholesky(post_cov)
        self.phi_star = np.concatenate([post_mean, np.log(np.diag(L)), np.tril(L, -1).ravel()])
        self.free = np.concatenate([np.ones(2 * K, bool), strictly_lower_mask(K).ravel() > 0])

    def unpack(self, phi):
        """``(mean, L)`` of shapes ``(..., K)`` and ``(..., K, K)`` from ``phi`` of shape ``(..., 2K + K*K)``."""
        K = self.K
        L_prime = np.reshape(phi[..., 2 * K:], np.shape(phi)[:-1] + (K, K))
        return phi[..., :K], full_covariance_factor(L_prime, phi[..., K:2 * K])[0]

    def sample(self, phi, eps):
        return rsample_normal_full(*self.unpack(phi), eps)[0]

    def log_q(self, phi, z):
        return log_normal_full(z, *self.unpack(phi))

    def log_joint(self, z):
        return log_joint(self.x, z, self.W, self.b, self.log_s)

    def exact_elbo(self, phi):
        return elbo_gaussian(self.x, self.W, self.b, self.log_s, *self.unpack(phi))


def _diag(L, K):
    """Diagonal of the last two axes, autograd-friendly (no np.diagonal gradient on batched input)."""
    return np.sum(L * np.eye(K), axis=-1)


def _check_q(mean, scale_tril, K):
    if np.shape(mean)[-1:] != (K,):
        raise ValueError(f"mean must end in K={K}, got shape {np.shape(mean)}")
    if np.ndim(scale_tril) < 2 or np.shape(scale_tril)[-2:] != (K, K):
        raise ValueError(f"scale_tril must end in ({K}, {K}), got shape {np.shape(scale_tril)}")
    values = getval(scale_tril)
    if np.any(np.triu(values, 1) != 0):
        raise ValueError("scale_tril must be lower triangular (its log-determinant is read off the diagonal)")
    if np.any(_diag(values, K) == 0):
        raise ValueError("scale_tril needs a non-zero diagonal (q would be degenerate)")
    return scale_tril
