r"""Measuring a trained latent-variable model: importance-sampled :math:`\log p(\mathbf x)` and the IWAE bound.

The marginal likelihood is an expectation under the encoder (K&W eq. 2.56),

.. math::
    \log p_\theta(\mathbf x) = \log \mathbb E_{q_\phi(\mathbf z\mid\mathbf x)}
        \left[\frac{p_\theta(\mathbf x, \mathbf z)}{q_\phi(\mathbf z \mid \mathbf x)}\right],

estimated with :math:`L` samples :math:`\mathbf z^{(l)} \sim q_\phi(\mathbf z\mid\mathbf x)` (K&W eq. 2.57):

.. math::
    \log p_\theta(\mathbf x) \approx \log \frac1L \sum_{l=1}^L
        \frac{p_\theta(\mathbf x, \mathbf z^{(l)})}{q_\phi(\mathbf z^{(l)} \mid \mathbf x)}
    = \operatorname{logmeanexp}_l\, w_l, \qquad w_l = \log p_\theta(\mathbf x,\mathbf z^{(l)}) - \log q_\phi(\mathbf z^{(l)}\mid\mathbf x).

By Jensen's inequality its expectation is a lower bound, :math:`\mathcal L_L`, the IWAE bound
(Burda et al. 2016), which increases with :math:`L` and tends to :math:`\log p_\theta(\mathbf x)`; with
:math:`L = 1` it is the ELBO. Log-weights of binarized MNIST are around -100 nats, so ``exp`` of them
underflows: everything here works with logs (:func:`logmeanexp`).

:func:`importance_log_likelihood` is generic: it takes a function returning log-weights, so it serves
the VAE (:func:`vae_from_scratch.numpy.vae.log_weights`) and the linear-Gaussian testbed alike.
"""

import autograd.numpy as np
from autograd.scipy.special import logsumexp


def logmeanexp(a, axis=0):
    r"""Stable :math:`\log \frac1n \sum_i e^{a_i}` along ``axis``:
    :math:`m + \log \frac1n \sum_i e^{a_i - m}` with :math:`m = \max_i a_i`, so no term overflows and the
    largest is exactly :math:`e^0 = 1`. Finite whenever one entry is finite; differentiable (autograd)."""
    a = np.asarray(a) if not hasattr(a, "shape") else a
    n = np.shape(a)[axis]
    if n == 0:
        raise ValueError("logmeanexp of an empty axis")
    return logsumexp(a, axis=axis) - np.log(n)


def iwae_bound(log_w):
    r"""The IWAE estimate :math:`\operatorname{logmeanexp}_k\, w_k` of log-weights ``(k, ...)`` along
    axis 0 (Burda et al. 2016, eq. 8; K&W eq. 2.57)."""
    return logmeanexp(log_w, axis=0)


def elbo_from_log_weights(log_w):
    r"""The ELBO estimate :math:`\frac1k\sum_k w_k` from log-weights ``(k, ...)`` (K&W eq. 2.29)."""
    return np.mean(log_w, axis=0)


def iwae_curve(log_w, ks):
    r"""Estimates of the IWAE bound :math:`\mathcal L_k` for each ``k`` in ``ks`` from one set of
    log-weights ``(K, ...)``: the ``K`` samples are split into ``K // k`` disjoint groups of ``k`` and the
    group estimates averaged (each group is an unbiased draw of the ``k``-sample estimator).
    Returns an array ``(len(ks), ...)``."""
    log_w = np.asarray(log_w)
    total = log_w.shape[0]
    out = []
    for k in ks:
        if not 1 <= k <= total:
            raise ValueError(f"k={k} must be between 1 and the number of samples {total}")
        groups = total // k
        grouped = log_w[:groups * k].reshape((groups, k) + log_w.shape[1:])
        out.append(np.mean(logmeanexp(grouped, axis=1), axis=0))
    return np.stack(out)


def importance_log_likelihood(log_weight_fn, x, k, latent_dim, rng=None, eps=None,
                              batch_size=100, sample_batch_size=500):
    r"""Importance-sampled :math:`\log p(\mathbf x)` (K&W eq. 2.57) for every row of ``x``.

    ``log_weight_fn(x_batch, eps_batch)`` maps data ``(b, D)`` and standard-normal noise
    ``(s, b, latent_dim)`` to log-weights ``(s, b)``. Work is done in blocks of ``batch_size`` data points
    times ``sample_batch_size`` samples, so memory stays bounded for any ``k`` and ``N``; blocks of
    samples are combined with a running log-sum-exp, which equals the unblocked result up to rounding.

    Noise: pass ``eps`` of shape ``(k, N, latent_dim)`` (used block by block; lets a test compare block
    sizes) or a ``numpy.random.Generator`` ``rng`` (fresh blocks are drawn). Returns ``(N,)``.
    """
    x = np.asarray(x, dtype=float)
    if x.ndim != 2:
        raise ValueError(f"x must be (N, D), got shape {x.shape}")
    if k < 1 or batch_size < 1 or sample_batch_size < 1:
        raise ValueError("k, batch_size and sample_batch_size must be positive")
    N = x.shape[0]
    if eps is not None:
        if np.shape(eps) != (k, N, latent_dim):
            raise ValueError(f"eps must have shape (k, N, latent_dim) = {(k, N, latent_dim)}, "
                             f"got {np.shape(eps)}")
    elif rng is None:
        raise ValueError("pass a numpy Generator rng or the noise eps")
    results = []
    for lo in range(0, N, batch_size):
        xb = x[lo:lo + batch_size]
        running = np.full(len(xb), -np.inf)
        for s in range(0, k, sample_batch_size):
            n = min(sample_batch_size, k - s)
            e = (eps[s:s + n, lo:lo + batch_size] if eps is not None
                 else rng.standard_normal((n, len(xb), latent_dim)))
            running = np.logaddexp(running, logsumexp(log_weight_fn(xb, e), axis=0))
        results.append(running - np.log(k))
    return np.concatenate(results)
