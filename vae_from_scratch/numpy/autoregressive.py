r"""An autoregressive Bernoulli decoder in autograd.numpy: the reference for
:mod:`vae_from_scratch.torch.autoregressive` (see there for the model and its sources).

.. math::
    \log p_\theta(\mathbf x\mid\mathbf z) = \sum_{j=1}^{D} x_j\lambda_j - \operatorname{softplus}(\lambda_j),
    \qquad \lambda_j = c_j(\mathbf z) + \sum_{i<j} V_{ji}\,x_i

Parameters are a pytree ``{"context": [(W, b), ...], "V": (D, D)}``: the MLP of the latent code in the
layout of :func:`vae_from_scratch.numpy.vae.mlp` (``h @ W + b``), and the matrix of which only the
strictly lower triangle is used.
"""

import autograd.numpy as np

from .vae import init_mlp, mlp


def init_autoregressive_decoder(rng, latent_dim, hidden, data_dim, scale=0.0):
    """Parameters: the context MLP ``latent_dim -> hidden... -> data_dim`` and ``V`` (zeros unless
    ``scale`` > 0, then normal with that standard deviation)."""
    return {"context": init_mlp(rng, [latent_dim, *hidden, data_dim]),
            "V": scale * rng.standard_normal((data_dim, data_dim))}


def conditional_logits(params, x, z, activation="tanh"):
    r""":math:`\lambda_j = c_j(\mathbf z) + \sum_{i<j}V_{ji}x_i`, ``(..., D)``; ``x`` ``(..., D)`` and
    ``z`` ``(..., K)`` broadcast."""
    V = params["V"]
    if np.ndim(V) != 2 or V.shape[0] != V.shape[1] or np.shape(x)[-1] != V.shape[0]:
        raise ValueError(f"V must be (D, D) with D = x.shape[-1]; got V {np.shape(V)}, x {np.shape(x)}")
    mask = np.tril(np.ones(V.shape), -1)
    return mlp(params["context"], z, activation) + np.dot(x, (V * mask).T)


def log_prob(params, x, z, activation="tanh"):
    r""":math:`\log p_\theta(\mathbf x\mid\mathbf z)` by teacher forcing, ``(...)``; binary ``x``."""
    logits = conditional_logits(params, x, z, activation)
    return np.sum(x * logits - np.logaddexp(0.0, logits), axis=-1)
