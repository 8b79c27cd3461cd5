r"""A variational autoencoder in a page of autograd.numpy: the reference for chapter 5.

The model (monograph sections 1.7.3 and 2.5; Kingma & Welling 2014, appendix C):

.. math::
    p(\mathbf z) = \mathcal N(\mathbf 0, \mathbf I), \qquad
    p_\theta(\mathbf x \mid \mathbf z) = \prod_j \operatorname{Bernoulli}\big(x_j;
        \operatorname{sigmoid}(\mathrm{DecoderNN}_\theta(\mathbf z))_j\big), \qquad
    q_\phi(\mathbf z \mid \mathbf x) = \mathcal N\big(\boldsymbol\mu, \operatorname{diag}\boldsymbol\sigma^2\big),
    \ (\boldsymbol\mu, \log\boldsymbol\sigma) = \mathrm{EncoderNN}_\phi(\mathbf x)

(K&W eqs. 2.36-2.37 for the encoder; one encoder for every data point: *amortized* inference).

Parameters are a pytree ``{"encoder": [(W, b), ...], "decoder": [(W, b), ...]}`` of float64 arrays,
each layer computing ``h @ W + b``; hidden layers use ``tanh`` (or ``relu``), the last layer is linear.
The encoder's last layer has ``2 * latent_dim`` outputs: the mean, then the log standard deviation.
:mod:`vae_from_scratch.torch.vae` holds the same network as an ``nn.Module`` and converts to and from
this layout (:func:`vae_from_scratch.torch.vae.VAE.load_numpy_params`).

Randomness is explicit: every function that needs noise takes ``eps`` (standard normal, shape
``(B, K)`` or ``(S, B, K)`` for ``S`` samples per data point).
"""

import autograd.numpy as np
from autograd import value_and_grad
from autograd.misc import flatten

from .distributions import (LOG_2PI, bernoulli_log_likelihood, kl_normal_standard, log_normal_diag,
                            log_standard_normal, sample_normal_diag)
from .evaluation import logmeanexp

ACTIVATIONS = {"tanh": np.tanh, "relu": lambda h: np.maximum(h, 0.0)}


# --- networks ---------------------------------------------------------------------------------------


def init_mlp(rng, sizes, scale=None):
    """Weights of an MLP with layer sizes ``sizes`` (e.g. ``[784, 200, 50]``) as a list of ``(W, b)``.

    ``W`` is ``(n_in, n_out)``, drawn from :math:`\\mathcal N(0, 1/n_{in})` (or ``scale**2`` if given);
    biases start at zero.
    """
    layers = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        std = (1.0 / np.sqrt(n_in)) if scale is None else scale
        layers.append((std * rng.standard_normal((n_in, n_out)), np.zeros(n_out)))
    return layers


def mlp(layers, h, activation="tanh"):
    """Apply an MLP: ``activation`` after every layer but the last, which is linear."""
    act = ACTIVATIONS[activation]
    for i, (W, b) in enumerate(layers):
        h = np.dot(h, W) + b
        if i < len(layers) - 1:
            h = act(h)
    return h


def init_vae(rng, data_dim, hidden, latent_dim):
    """Parameters of a VAE with MLP encoder ``data_dim -> hidden... -> 2*latent_dim`` and decoder
    ``latent_dim -> reversed(hidden)... -> data_dim``.

    ``hidden`` is a sequence of hidden-layer widths, e.g. ``(200, 200)`` for Burda et al. (2016).
    """
    hidden = list(hidden)
    return {
        "encoder": init_mlp(rng, [data_dim] + hidden + [2 * latent_dim]),
        "decoder": init_mlp(rng, [latent_dim] + hidden[::-1] + [data_dim]),
    }


def latent_dim_of(params):
    """The latent dimension ``K`` of a parameter pytree."""
    return params["decoder"][0][0].shape[0]


def encode(params, x, activation="tanh"):
    r"""Encoder :math:`(\boldsymbol\mu, \log\boldsymbol\sigma) = \mathrm{EncoderNN}_\phi(\mathbf x)`
    (K&W eq. 2.36); ``x`` (..., D) -> two arrays (..., K)."""
    out = mlp(params["encoder"], x, activation)
    K = out.shape[-1] // 2
    return out[..., :K], out[..., K:]


def decode(params, z, activation="tanh"):
    r"""Decoder logits :math:`\boldsymbol\lambda = \mathrm{DecoderNN}_\theta(\mathbf z)`, so that
    :math:`p_\theta(x_j = 1 \mid \mathbf z) = \operatorname{sigmoid}(\lambda_j)` (K&W eqs. 1.16-1.17)."""
    return mlp(params["decoder"], z, activation)


# --- objectives -------------------------------------------------------------------------------------


def elbo(params, x, eps, activation="tanh"):
    r"""Per-datapoint ELBO estimate with the Gaussian KL in closed form, shape ``(B,)``.

    .. math::
        \tilde{\mathcal L}_{\theta,\phi}(\mathbf x)
        = \frac1S \sum_{l=1}^S \log p_\theta(\mathbf x \mid \mathbf z^{(l)})
          - D_{KL}\big(q_\phi(\mathbf z\mid\mathbf x)\,\|\,p(\mathbf z)\big),
        \qquad \mathbf z^{(l)} = \boldsymbol\mu + \boldsymbol\sigma \odot \boldsymbol\epsilon^{(l)}

    (Kingma & Welling 2014, eq. 10; K&W eqs. 2.25-2.29 with the KL term computed exactly).
    ``x`` is binary ``(B, D)``; ``eps`` is ``(B, K)`` (one sample) or ``(S, B, K)``.
    """
    mean, log_std = encode(params, x, activation)
    z = sample_normal_diag(mean, log_std, eps)
    log_px_given_z = bernoulli_log_likelihood(x, decode(params, z, activation))
    if np.ndim(eps) == 3:
        log_px_given_z = np.mean(log_px_given_z, axis=0)
    return log_px_given_z - kl_normal_standard(mean, log_std)


def log_weights(params, x, eps, activation="tanh"):
    r"""Log importance weights :math:`\log p_\theta(\mathbf x, \mathbf z^{(l)}) - \log q_\phi(\mathbf z^{(l)}
    \mid \mathbf x)` with :math:`\mathbf z^{(l)} = \boldsymbol\mu + \boldsymbol\sigma\odot\boldsymbol\epsilon^{(l)}`.

    ``eps`` is ``(S, B, K)``; returns ``(S, B)``. Their mean over ``S`` is the ELBO estimator of
    K&W eq. 2.29 (KL sampled); their log-mean-exp is the importance-sampled
    :math:`\log p_\theta(\mathbf x)` of K&W eq. 2.57, the IWAE bound of Burda et al. (2016).
    """
    mean, log_std = encode(params, x, activation)
    z = sample_normal_diag(mean, log_std, eps)
    log_q = log_normal_diag(z, mean, log_std)
    log_joint = log_standard_normal(z) + bernoulli_log_likelihood(x, decode(params, z, activation))
    return log_joint - log_q


def iwae(params, x, eps, activation="tanh"):
    r"""Importance-sampled :math:`\log p_\theta(\mathbf x)` with the ``S`` samples of ``eps`` ``(S, B, K)``,
    shape ``(B,)``: :math:`\operatorname{logmeanexp}_l\, w_l` over :func:`log_weights` (K&W eq. 2.57),
    whose expectation is the IWAE bound :math:`\mathcal L_S` (Burda et al. 2016, eq. 8)."""
    return logmeanexp(log_weights(params, x, eps, activation), axis=0)


def minibatch_elbo(params, x, eps, activation="tanh"):
    r"""The minibatch objective :math:`\frac1M \sum_{i \in \mathcal M} \tilde{\mathcal L}(\mathbf x^{(i)})`,
    an unbiased estimate of the average per-datapoint ELBO (K&W eq. 2.13)."""
    return np.mean(elbo(params, x, eps, activation))


# --- AEVB (monograph Algorithm 1) -------------------------------------------------------------------


def sgd_step(params, x, eps, lr, activation="tanh"):
    r"""One AEVB iteration with plain stochastic gradient *ascent*:
    :math:`(\theta, \phi) \leftarrow (\theta, \phi) + \eta\, \nabla_{\theta,\phi} \tilde{\mathcal L}(\mathcal M, \boldsymbol\epsilon)`,
    with :math:`\tilde{\mathcal L}` the minibatch ELBO :func:`minibatch_elbo`. Returns the new parameters."""
    grads = _elbo_grad(params, x, eps, activation)[1]
    flat_params, unflatten = flatten(params)
    flat_grads, _ = flatten(grads)
    return unflatten(flat_params + lr * flat_grads)


def adam_init(params):
    """Adam's state for ``params``: step count and the two moment estimates (flat vectors)."""
    flat, _ = flatten(params)
    return {"t": 0, "m": np.zeros_like(flat), "v": np.zeros_like(flat)}


def adam_update(params, grads, state, lr=1e-3, b1=0.9, b2=0.999, eps=1e-8):
    r"""One Adam step (Kingma & Ba 2015) that *ascends* ``grads``; returns ``(params, state)``.

    .. math::
        m \leftarrow \beta_1 m + (1-\beta_1) g, \quad v \leftarrow \beta_2 v + (1-\beta_2) g^2, \quad
        \theta \leftarrow \theta + \eta\, \frac{m/(1-\beta_1^t)}{\sqrt{v/(1-\beta_2^t)} + \epsilon}
    """
    flat_params, unflatten = flatten(params)
    g, _ = flatten(grads)
    t = state["t"] + 1
    m = b1 * state["m"] + (1 - b1) * g
    v = b2 * state["v"] + (1 - b2) * g**2
    step = lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
    return unflatten(flat_params + step), {"t": t, "m": m, "v": v}


def aevb_step(params, state, x, eps, lr=1e-3, activation="tanh"):
    r"""One iteration of the AEVB algorithm (monograph Algorithm 1) with Adam.

    Given a minibatch :math:`\mathcal M` (``x``) and its noise :math:`\boldsymbol\epsilon \sim p(\boldsymbol\epsilon)`
    (``eps``), compute the minibatch ELBO :math:`\tilde{\mathcal L}(\theta,\phi;\mathcal M,\boldsymbol\epsilon)`
    and its gradient by reverse-mode autodiff, and update :math:`\theta,\phi` with Adam.
    Returns ``(params, state, minibatch_elbo_value)``.
    """
    value, grads = _elbo_grad(params, x, eps, activation)
    params, state = adam_update(params, grads, state, lr)
    return params, state, float(value)


def _elbo_grad(params, x, eps, activation):
    return value_and_grad(minibatch_elbo)(params, x, eps, activation)


def train(params, data, rng, epochs, batch_size=100, lr=1e-3, activation="tanh", state=None):
    """Run AEVB for ``epochs`` passes over ``data`` (shuffled minibatches, one noise draw per point).

    Returns ``(params, state, history)`` with ``history`` the minibatch ELBO of every step.
    """
    data = np.asarray(data, dtype=float)
    state = adam_init(params) if state is None else state
    K = latent_dim_of(params)
    history = []
    for _ in range(epochs):
        order = rng.permutation(len(data))
        for start in range(0, len(data), batch_size):
            x = data[order[start:start + batch_size]]
            eps = rng.standard_normal((len(x), K))
            params, state, value = aevb_step(params, state, x, eps, lr, activation)
            history.append(value)
    return params, state, history


# --- a choice of posterior (chapter 7): diagonal, full covariance, IAF ---------------------------
#
# Same parts as :mod:`vae_from_scratch.torch.posteriors`, same head layout, so that weights copy
# over (:meth:`vae_from_scratch.torch.vae.VAE.posterior_numpy_params`). The pytree is the one above,
# ``{"encoder": trunk layers + head, "decoder": [...]}``, plus ``"flow"`` (one MADE per IAF step)
# for ``"iaf"``; the trunk's last layer is followed by the activation too (it gives the features h).

POSTERIOR_KINDS = ("diagonal", "full", "iaf")


def _head_width(kind, K, context_dim):
    return {"diagonal": 2 * K, "full": 2 * K + K * (K - 1) // 2, "iaf": 2 * K + context_dim}[kind]


def init_posterior_vae(rng, data_dim, hidden, latent_dim, kind="diagonal", steps=2,
                       flow_hidden=(320, 320), context_dim=None):
    r"""Parameters of a VAE with the posterior ``kind``: the trunk ``data_dim -> hidden``, a linear
    head on its features (``"diagonal"``: mean, log std; ``"full"``: mean, log std and the
    :math:`K(K-1)/2` strictly-lower entries of :math:`\mathbf L'` row by row; ``"iaf"``: mean, log
    std and a context of ``context_dim`` (default K)), the decoder, and for ``"iaf"`` ``steps`` MADE
    networks with hidden widths ``flow_hidden``
    (:func:`~vae_from_scratch.numpy.flows.made_init`)."""
    from .flows import made_init
    if kind not in POSTERIOR_KINDS:
        raise ValueError(f"kind must be one of {POSTERIOR_KINDS}, got {kind!r}")
    if not hidden:
        raise ValueError("the posterior VAE needs at least one hidden layer (the trunk)")
    hidden, K = list(hidden), int(latent_dim)
    C = K if context_dim is None else int(context_dim)
    params = {"encoder": init_mlp(rng, [data_dim] + hidden + [_head_width(kind, K, C)]),
              "decoder": init_mlp(rng, [K] + hidden[::-1] + [data_dim])}
    if kind == "iaf":
        params["flow"] = [made_init(rng, K, list(flow_hidden), 2, C) for _ in range(int(steps))]
    return params


def features(params, x, activation="tanh"):
    """The trunk's features ``h`` (the activation after every encoder layer but the head)."""
    act = ACTIVATIONS[activation]
    h = x
    for W, b in params["encoder"][:-1]:
        h = act(np.dot(h, W) + b)
    return h


def _lower_from_entries(lower, K):
    """``L'`` ``(..., K, K)`` with the entries ``(..., K(K-1)/2)`` placed strictly below the
    diagonal, row by row (``np.tril_indices(K, -1)``, the order of ``torch.tril_indices``): a
    product with a constant 0/1 scatter matrix (no in-place assignment, so autograd
    differentiates it)."""
    import numpy as onp
    rows, cols = onp.tril_indices(K, -1)
    scatter = onp.zeros((len(rows), K * K))
    scatter[onp.arange(len(rows)), rows * K + cols] = 1.0
    flat = np.dot(lower, scatter)
    return np.reshape(flat, np.shape(lower)[:-1] + (K, K))


def posterior_params(kind, params, h):
    r"""The distribution's parameters from the features ``h`` ``(B, H)``: ``"diagonal"``
    :math:`(\boldsymbol\mu, \log\boldsymbol\sigma)`; ``"full"`` :math:`(\boldsymbol\mu, \mathbf L)`
    with :math:`\mathbf L = \mathbf L_{mask}\odot\mathbf L' + \operatorname{diag}\boldsymbol\sigma`
    (K&W eqs. 2.53-2.55); ``"iaf"`` :math:`(\boldsymbol\mu, \log\boldsymbol\sigma, \mathbf c)`
    (K&W eq. 3.23: the initial encoder's outputs and the context)."""
    from .reparameterization import full_covariance_factor
    W, b = params["encoder"][-1]
    out = np.dot(h, W) + b
    K = latent_dim_of(params)
    mean, log_std, rest = out[..., :K], out[..., K:2 * K], out[..., 2 * K:]
    if kind == "diagonal":
        return mean, log_std
    if kind == "full":
        return mean, full_covariance_factor(_lower_from_entries(rest, K), log_std)[0]
    if kind == "iaf":
        return mean, log_std, rest
    raise ValueError(f"kind must be one of {POSTERIOR_KINDS}, got {kind!r}")


def posterior_sample(kind, params, h, eps, forget_bias=1.0):
    r"""A reparameterized draw :math:`\mathbf z` ``(..., B, K)`` from base noise ``eps`` and its
    :math:`\log q_\phi(\mathbf z\mid\mathbf x)` ``(..., B)``.

    * ``"diagonal"``: :math:`\mathbf z = \boldsymbol\mu + \boldsymbol\sigma\odot\boldsymbol\epsilon`
      (K&W eq. 2.40), :math:`\log q` by
      :func:`~vae_from_scratch.numpy.distributions.log_normal_diag`;
    * ``"full"``: :math:`\mathbf z = \boldsymbol\mu + \mathbf L\boldsymbol\epsilon`,
      :math:`\log q = \log\mathcal N(\boldsymbol\epsilon;\mathbf 0,\mathbf I) - \sum_j\log L_{jj}`
      (K&W eqs. 2.46-2.49);
    * ``"iaf"``: :math:`\mathbf z_0 = \boldsymbol\mu + \boldsymbol\sigma\odot\boldsymbol\epsilon`,
      then ``T`` gated IAF steps with the context, the order reversed between steps
      (:func:`~vae_from_scratch.numpy.flows.iaf_flow`; K&W eqs. 3.23-3.32, algorithm 3;
      Kingma et al. 2016, algorithm 1), and
      :math:`\log q(\mathbf z_T) = \log q(\mathbf z_0) - \sum_t\sum_i \log\sigma_{t,i}`
      (K&W eq. 3.29).
    """
    from .reparameterization import rsample_normal_full
    dist = posterior_params(kind, params, h)
    if kind == "diagonal":
        mean, log_std = dist
        z = sample_normal_diag(mean, log_std, eps)
        return z, log_normal_diag(z, mean, log_std)
    if kind == "full":
        return rsample_normal_full(dist[0], dist[1], eps, validate=False)
    z, log_q_dims = posterior_sample_dims(kind, params, h, eps, forget_bias)
    return z, np.sum(log_q_dims, axis=-1)


def _flow_steps(params, K):
    from .flows import made_degrees, made_masks
    return [(made, made_masks(made_degrees(K, [np.shape(W)[1] for W in made["W"][:-1]]), 2))
            for made in params["flow"]]


def posterior_sample_dims(kind, params, h, eps, forget_bias=1.0):
    r""":func:`posterior_sample` with :math:`\log q_\phi(\mathbf z\mid\mathbf x)` split over the
    latent coordinates, ``(..., B, K)``, for the posteriors whose log-density is such a sum
    (``"diagonal"``, ``"iaf"``; Kingma et al. 2016, appendix C). For ``"iaf"``

    .. math::
        \log q(\mathbf z_T\mid\mathbf x) = \sum_i\Big[\log\mathcal N(\epsilon_i; 0, 1)
        - \log\sigma_{0,i} - \sum_t\log\sigma_{t,i}\Big],

    each term credited to the coordinate of :math:`\mathbf z_T` its variable ends up in after the
    order reversals (:func:`~vae_from_scratch.numpy.flows.iaf_flow_dims`)."""
    from .flows import iaf_flow_dims
    if kind == "full":
        raise ValueError("the full-covariance log-density does not split over dimensions")
    dist = posterior_params(kind, params, h)
    mean, log_std = dist[0], dist[1]
    z0 = mean + np.exp(log_std) * eps
    log_q0_dims = -0.5 * (eps ** 2 + LOG_2PI) - log_std
    if kind == "diagonal":
        return z0, log_q0_dims
    z, log_det_dims, log_q0_dims = iaf_flow_dims(_flow_steps(params, np.shape(mean)[-1]), z0,
                                                 dist[2], forget_bias, carry=log_q0_dims)
    return z, log_q0_dims - log_det_dims


def sampled_kl_per_dim(z, log_q_dims):
    r"""One-sample KL estimate per latent dimension, :math:`\log q_i - \log\mathcal N(z_i; 0, 1)`
    ``(..., K)``, for a log-density split ``log_q_dims`` (:func:`posterior_sample_dims`); it sums to
    :math:`\log q(\mathbf z) - \log p(\mathbf z)`. Free bits clamp its minibatch mean per dimension
    or group (:func:`~vae_from_scratch.numpy.collapse.free_bits_kl`)."""
    return log_q_dims + 0.5 * (z ** 2 + LOG_2PI)


def posterior_kl_per_dim(kind, params, x, eps, activation="tanh", forget_bias=1.0):
    r"""The KL term of :func:`posterior_elbo` per latent dimension ``(B, K)``, the input of free
    bits: closed form for ``"diagonal"``
    (:func:`~vae_from_scratch.numpy.collapse.kl_per_dim`), for ``"iaf"`` the sampled
    :func:`sampled_kl_per_dim` averaged over the samples of ``eps``; ``"full"`` has none (its KL
    is not a sum over dimensions). Mirrors ``elbo_terms(...)["kl_per_dim"]`` of the PyTorch VAE."""
    from .collapse import kl_per_dim
    h = features(params, x, activation)
    if kind == "diagonal":
        return kl_per_dim(*posterior_params(kind, params, h))
    z, log_q_dims = posterior_sample_dims(kind, params, h, eps, forget_bias)
    kl_dims = sampled_kl_per_dim(z, log_q_dims)
    return np.mean(kl_dims, axis=0) if np.ndim(eps) == 3 else kl_dims


def posterior_log_weights(kind, params, x, eps, activation="tanh", forget_bias=1.0):
    r"""Log importance weights :math:`\log p(\mathbf z_l) + \log p_\theta(\mathbf x\mid\mathbf z_l)
    - \log q_\phi(\mathbf z_l\mid\mathbf x)` ``(S, B)`` for ``eps`` ``(S, B, K)`` with the posterior
    ``kind``; their log-mean-exp is the importance-sampled :math:`\log p_\theta(\mathbf x)`
    (K&W eq. 2.57; Burda et al. 2016, eq. 8). For ``"diagonal"`` it equals :func:`log_weights`."""
    z, log_q = posterior_sample(kind, params, features(params, x, activation), eps, forget_bias)
    rec = bernoulli_log_likelihood(x, decode(params, z, activation))
    return log_standard_normal(z) + rec - log_q


def posterior_elbo(kind, params, x, eps, activation="tanh", forget_bias=1.0):
    r"""Per-datapoint ELBO estimate ``(B,)`` (K&W eq. 2.10; Kingma & Welling 2014, eq. 10): the
    reconstruction term averaged over the samples of ``eps`` (``(B, K)`` or ``(S, B, K)``) minus the
    KL, in closed form for ``"diagonal"`` and ``"full"``
    (:func:`~vae_from_scratch.numpy.reparameterization.kl_normal_full_standard`), sampled for
    ``"iaf"``:
    :math:`\frac1S\sum_l\log q(\mathbf z_l) - \log p(\mathbf z_l)` (no closed form; K&W eq. 2.29).
    The same terms as :meth:`vae_from_scratch.torch.vae.VAE.elbo_terms`."""
    from .reparameterization import kl_normal_full_standard
    h = features(params, x, activation)
    z, log_q = posterior_sample(kind, params, h, eps, forget_bias)
    rec = bernoulli_log_likelihood(x, decode(params, z, activation))
    if kind == "diagonal":
        kl = kl_normal_standard(*posterior_params(kind, params, h))
    elif kind == "full":
        kl = kl_normal_full_standard(*posterior_params(kind, params, h), validate=False)
    else:
        kl = log_q - log_standard_normal(z)
        kl = np.mean(kl, axis=0) if np.ndim(eps) == 3 else kl
    if np.ndim(eps) == 3:
        rec = np.mean(rec, axis=0)
    return rec - kl
