r"""The variational autoencoder as a PyTorch ``nn.Module``: the model the CLI trains.

The same model as :mod:`vae_from_scratch.numpy.vae` (a Gaussian encoder and a factorized Bernoulli
decoder, both MLPs; monograph sections 1.7.3, 2.1 and 2.5), batched and device-agnostic, with two
training objectives:

* ``"elbo"``: :math:`\log p_\theta(\mathbf x\mid\mathbf z) - D_{KL}(q_\phi(\mathbf z\mid\mathbf x)\|p(\mathbf z))`
  with one reparameterized sample and the KL in closed form (Kingma & Welling 2014, eq. 10);
* ``"iwae"``: :math:`\operatorname{logmeanexp}_{k}\,[\log p_\theta(\mathbf x,\mathbf z_k) - \log q_\phi(\mathbf z_k\mid\mathbf x)]`,
  the importance-weighted bound of Burda et al. (2016, eq. 8), monograph eq. 2.57 used as an objective.

The architecture of Burda et al.'s one-stochastic-layer model is ``VAE(784, (200, 200), 50, "tanh")``.
Module-level functions :func:`encode`, :func:`decode`, :func:`elbo`, :func:`log_weights` take the model
first, mirroring the NumPy functions that take ``params`` first.

No host synchronization happens inside these methods: the Bernoulli log-likelihood is
:func:`vae_from_scratch.torch.distributions.bernoulli_log_likelihood` with ``validate=False`` (its 0/1
check needs a device-to-host copy per call); the training loop checks the data once instead.
"""

import math

import torch
from torch import nn

from .distributions import (bernoulli_log_likelihood, kl_normal_standard, log_normal_diag,
                            log_standard_normal, sample_normal_diag)

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU}
OBJECTIVES = ("elbo", "iwae")

#: Named architectures for the CLI: hidden widths, latent size and activation.
ARCHITECTURES = {
    # Burda, Grosse & Salakhutdinov (2016), appendix D: one stochastic layer, 784-200-200-50, tanh.
    "burda": {"hidden": (200, 200), "latent_dim": 50, "activation": "tanh"},
    # A small model for quick experiments (the chapter, the tests, the 8x8 digits).
    "small": {"hidden": (256,), "latent_dim": 16, "activation": "tanh"},
}


class BernoulliDecoder(nn.Sequential):
    r"""The factorized Bernoulli decoder: an MLP ``latent_dim -> hidden... -> data_dim`` of logits,
    :math:`p_\theta(\mathbf x\mid\mathbf z) = \prod_j \operatorname{Bernoulli}(x_j; \operatorname{sigmoid}(\lambda_j(\mathbf z)))`
    (an ``nn.Sequential``, so its parameters keep the names of the plain MLP)."""

    def __init__(self, latent_dim, data_dim, hidden=(200, 200), activation="tanh"):
        super().__init__(*make_mlp([latent_dim, *hidden, data_dim], activation))

    def log_prob(self, x, z):
        r""":math:`\log p_\theta(\mathbf x\mid\mathbf z)`, ``(*S, B)`` for ``z`` ``(*S, B, K)``."""
        return bernoulli_log_prob(x, self(z))

    @torch.no_grad()
    def sample(self, z, generator=None):
        """``(x, probs)``: the pixel probabilities at ``z`` and binary images drawn from them."""
        probs = torch.sigmoid(self(z))
        u = torch.rand(probs.shape, generator=generator, dtype=probs.dtype, device=probs.device)
        return (u < probs).to(probs.dtype), probs

    def init_output_bias(self, p, clip=1e-3):
        """Output bias = logit of the pixel means ``p`` ``(D,)``."""
        p = p.clamp(clip, 1 - clip)
        with torch.no_grad():
            self[-1].bias.copy_(torch.log(p) - torch.log1p(-p))
        return self


def _autoregressive_decoder(latent_dim, data_dim, hidden, activation):
    from .autoregressive import AutoregressiveBernoulliDecoder

    return AutoregressiveBernoulliDecoder(latent_dim, data_dim, hidden, activation)


#: Decoder parts: name -> factory(latent_dim, data_dim, hidden, activation).
DECODERS = {"bernoulli": BernoulliDecoder, "autoregressive": _autoregressive_decoder}


def make_mlp(sizes, activation="tanh"):
    """``nn.Sequential`` of Linear layers with ``activation`` between them (the last layer is linear)."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
    layers = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


class VAE(nn.Module):
    r"""VAE with MLP encoder ``data_dim -> hidden -> 2*latent_dim`` (mean and log-std) and MLP decoder
    ``latent_dim -> reversed(hidden) -> data_dim`` (Bernoulli logits).

    Parameters
    ----------
    data_dim : int
        Number of binary pixels (784 for MNIST, 64 for the 8x8 digits).
    hidden : sequence of int
        Hidden-layer widths of the encoder; the decoder mirrors them.
    latent_dim : int
        Dimension ``K`` of :math:`\mathbf z`.
    activation : {"tanh", "relu"}
    """

    def __init__(self, data_dim=784, hidden=(200, 200), latent_dim=50, activation="tanh",
                 decoder="bernoulli"):
        super().__init__()
        if data_dim < 1 or latent_dim < 1 or any(h < 1 for h in hidden):
            raise ValueError(f"sizes must be positive: data_dim={data_dim}, hidden={hidden}, "
                             f"latent_dim={latent_dim}")
        self.data_dim, self.hidden = int(data_dim), tuple(int(h) for h in hidden)
        self.latent_dim, self.activation = int(latent_dim), activation
        if decoder not in DECODERS:
            raise ValueError(f"decoder must be one of {sorted(DECODERS)}, got {decoder!r}")
        self.decoder_name = decoder
        self.encoder = make_mlp([self.data_dim, *self.hidden, 2 * self.latent_dim], activation)
        self.decoder = DECODERS[decoder](self.latent_dim, self.data_dim, self.hidden[::-1], activation)

    def config(self):
        """The constructor arguments (for checkpoints)."""
        config = {"data_dim": self.data_dim, "hidden": list(self.hidden),
                  "latent_dim": self.latent_dim, "activation": self.activation}
        if self.decoder_name != "bernoulli":
            config["decoder"] = self.decoder_name
        return config

    # -- the two networks ------------------------------------------------------------------------

    def encode(self, x):
        r""":math:`(\boldsymbol\mu, \log\boldsymbol\sigma)` of :math:`q_\phi(\mathbf z\mid\mathbf x)`, each ``(..., K)``."""
        mean, log_std = self.encoder(x.to(self._dtype)).chunk(2, dim=-1)
        return mean, log_std

    def decode(self, z):
        r"""Bernoulli logits :math:`\boldsymbol\lambda` of :math:`p_\theta(\mathbf x\mid\mathbf z)`, ``(..., D)``."""
        return self.decoder(z)

    def log_px_given_z(self, x, z):
        r""":math:`\log p_\theta(\mathbf x\mid\mathbf z)` from the decoder part, ``(*S, B)``."""
        return self.decoder.log_prob(x, z)

    # -- objectives --------------------------------------------------------------------------------

    def elbo(self, x, eps=None, generator=None):
        r"""Per-datapoint ELBO estimate, ``(B,)``: the decoder term averaged over the samples in ``eps``
        (``(B, K)`` or ``(S, B, K)``; one sample drawn with ``generator`` if ``eps`` is None) minus the
        closed-form KL (Kingma & Welling 2014, eq. 10; monograph eqs. 2.25-2.29)."""
        x = x.to(self._dtype)
        mean, log_std = self.encode(x)
        z = sample_normal_diag(mean, log_std, eps=eps, generator=generator)
        log_px_z = self.log_px_given_z(x, z)
        if log_px_z.dim() == 2:
            log_px_z = log_px_z.mean(0)
        return log_px_z - kl_normal_standard(mean, log_std)

    def log_weights(self, x, eps=None, k=1, generator=None):
        r"""Log importance weights :math:`\log p_\theta(\mathbf x,\mathbf z_s) - \log q_\phi(\mathbf z_s\mid\mathbf x)`,
        ``(S, B)``, for ``eps`` ``(S, B, K)`` (or ``k`` samples drawn with ``generator``)."""
        x = x.to(self._dtype)
        mean, log_std = self.encode(x)
        if eps is None:
            z = sample_normal_diag(mean, log_std, generator=generator, sample_shape=(k,))
        else:
            if eps.dim() != 3:
                raise ValueError(f"eps must be (S, B, K) for log_weights, got shape {tuple(eps.shape)}")
            z = sample_normal_diag(mean, log_std, eps=eps)
        log_q = log_normal_diag(z, mean, log_std)
        return log_standard_normal(z) + self.log_px_given_z(x, z) - log_q

    def iwae(self, x, k=5, eps=None, generator=None):
        r"""The IWAE bound estimate :math:`\operatorname{logmeanexp}_k w_k`, ``(B,)`` (Burda et al. 2016, eq. 8)."""
        log_w = self.log_weights(x, eps=eps, k=k, generator=generator)
        return torch.logsumexp(log_w, dim=0) - math.log(log_w.shape[0])

    def objective(self, x, name="elbo", k=1, generator=None):
        """The per-datapoint training objective ``name`` (``"elbo"`` or ``"iwae"`` with ``k`` samples)."""
        if name == "elbo":
            return self.elbo(x, generator=generator)
        if name == "iwae":
            return self.iwae(x, k=k, generator=generator)
        raise ValueError(f"objective must be one of {OBJECTIVES}, got {name!r}")

    # -- generation --------------------------------------------------------------------------------

    @torch.no_grad()
    def sample(self, n, generator=None, z=None):
        r"""Ancestral sampling: :math:`\mathbf z\sim p(\mathbf z)`, then the decoder's Bernoulli means
        ``probs`` and binary ``x`` drawn from them. Returns ``(x, probs)``, each ``(n, D)``."""
        p = next(self.parameters())
        if z is None:
            z = torch.randn(n, self.latent_dim, generator=generator, dtype=p.dtype, device=p.device)
        return self.decoder.sample(z, generator=generator)

    # -- conversion from/to the NumPy reference ----------------------------------------------------

    def load_numpy_params(self, params):
        """Copy a :mod:`vae_from_scratch.numpy.vae` parameter pytree into this module (in place)."""
        for name, layers in (("encoder", self.encoder), ("decoder", self.decoder)):
            linears = [m for m in layers if isinstance(m, nn.Linear)]
            if len(linears) != len(params[name]):
                raise ValueError(f"{name}: {len(params[name])} layers given, the module has {len(linears)}")
            for lin, (W, b) in zip(linears, params[name]):
                if tuple(W.shape) != (lin.in_features, lin.out_features):
                    raise ValueError(f"{name}: weight of shape {W.shape} does not fit "
                                     f"Linear({lin.in_features}, {lin.out_features})")
                with torch.no_grad():
                    lin.weight.copy_(torch.as_tensor(W).T)
                    lin.bias.copy_(torch.as_tensor(b))
        return self

    def numpy_params(self):
        """This module's weights as a :mod:`vae_from_scratch.numpy.vae` pytree of float64 arrays."""
        def layers(seq):
            return [(m.weight.detach().cpu().double().numpy().T.copy(),
                     m.bias.detach().cpu().double().numpy().copy())
                    for m in seq if isinstance(m, nn.Linear)]
        return {"encoder": layers(self.encoder), "decoder": layers(self.decoder)}

    @classmethod
    def from_numpy_params(cls, params, activation="tanh"):
        """A new module holding a NumPy parameter pytree (dtype of the current torch default)."""
        enc = params["encoder"]
        hidden = [W.shape[1] for W, _ in enc[:-1]]
        model = cls(enc[0][0].shape[0], hidden, enc[-1][0].shape[1] // 2, activation)
        return model.load_numpy_params(params)

    @property
    def _dtype(self):
        return self.encoder[0].weight.dtype


def bernoulli_log_prob(x, logits):
    r""":math:`\sum_j x_j\lambda_j - \operatorname{softplus}(\lambda_j)` over the last axis, broadcasting
    ``x`` against ``logits``; no 0/1 check (see the module docstring)."""
    return bernoulli_log_likelihood(x, logits, validate=False)


def build_vae(data_dim, arch="burda", hidden=None, latent_dim=None, activation=None, decoder="bernoulli"):
    """A :class:`VAE` from a named architecture (:data:`ARCHITECTURES`) with optional overrides."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"arch must be one of {sorted(ARCHITECTURES)}, got {arch!r}")
    spec = dict(ARCHITECTURES[arch])
    if hidden is not None:
        spec["hidden"] = tuple(hidden)
    if latent_dim is not None:
        spec["latent_dim"] = latent_dim
    if activation is not None:
        spec["activation"] = activation
    return VAE(data_dim, spec["hidden"], spec["latent_dim"], spec["activation"], decoder=decoder)


# Functional mirrors of the NumPy reference (model first, like ``params`` first there).

def encode(model, x):
    """:meth:`VAE.encode`."""
    return model.encode(x)


def decode(model, z):
    """:meth:`VAE.decode`."""
    return model.decode(z)


def elbo(model, x, eps=None, generator=None):
    """:meth:`VAE.elbo` (same as :func:`vae_from_scratch.numpy.vae.elbo`)."""
    return model.elbo(x, eps=eps, generator=generator)


def log_weights(model, x, eps=None, k=1, generator=None):
    """:meth:`VAE.log_weights` (same as :func:`vae_from_scratch.numpy.vae.log_weights`)."""
    return model.log_weights(x, eps=eps, k=k, generator=generator)


def minibatch_elbo(model, x, eps=None, generator=None):
    """Mean of :meth:`VAE.elbo` over the minibatch (monograph eq. 2.13)."""
    return model.elbo(x, eps=eps, generator=generator).mean()
