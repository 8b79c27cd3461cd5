r"""The variational autoencoder as a PyTorch ``nn.Module``: the model the CLI trains.

A VAE made of parts (K&W sections 2.1 and 2.5): a trunk MLP shared by the encoder, a **posterior**
part (:data:`POSTERIORS`: the diagonal Gaussian by default; later chapters register more), and a
**decoder** part (:data:`DECODERS`: the factorized Bernoulli MLP by default). With the defaults it is
the model of :mod:`vae_from_scratch.numpy.vae`, batched and device-agnostic. The VAE exposes the ELBO
(:meth:`VAE.elbo`, :meth:`VAE.elbo_terms`), the log importance weights and the IWAE bound; the
training objectives built from them live in :mod:`vae_from_scratch.torch.objectives`.

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

from .distributions import (bernoulli_log_likelihood, kl_normal_standard,
                            kl_normal_standard_per_dim, log_normal_diag, log_standard_normal,
                            sample_normal_diag)

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU}

#: Named architectures for the CLI: hidden widths, latent size and activation.
ARCHITECTURES = {
    # Burda, Grosse & Salakhutdinov (2016), appendix D: one stochastic layer, 784-200-200-50, tanh.
    "burda": {"hidden": (200, 200), "latent_dim": 50, "activation": "tanh"},
    # A small model for quick experiments (the chapter, the tests, the 8x8 digits).
    "small": {"hidden": (256,), "latent_dim": 16, "activation": "tanh"},
}


def make_mlp(sizes, activation="tanh", final_activation=False):
    """``nn.Sequential`` of Linear layers with ``activation`` between them; the last layer is linear
    unless ``final_activation`` (then it is followed by the activation too)."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
    layers = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if final_activation or i < len(sizes) - 2:
            layers.append(ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


# -- posteriors: q(z | x) from the trunk's features h ---------------------------------------------


class DiagonalGaussianPosterior(nn.Module):
    r"""Mean-field Gaussian :math:`q_\phi(\mathbf z\mid\mathbf x) = \mathcal N(\boldsymbol\mu,
    \operatorname{diag}\boldsymbol\sigma^2)`, with :math:`(\boldsymbol\mu, \log\boldsymbol\sigma)`
    a linear function of the trunk's features (K&W section 2.5 and K&W eqs. 2.36-2.40).

    The interface every posterior implements (the VAE and the training loop see only this):

    * ``params = posterior(h)``: the distribution's parameters for features ``h`` ``(B, H)``;
    * ``sample(params, sample_shape=(), eps=None, generator=None) -> (z, log_q)``: a reparameterized
      draw ``(*S, B, K)`` (``eps``: the standard-normal base noise) and its log-density ``(*S, B)``;
    * ``kl_to_prior(params)``: closed-form :math:`D_{KL}(q\|\mathcal N(0, I))` ``(B,)``, or None;
    * ``kl_per_dim(params)``: the same per latent dimension ``(B, K)``, or None;
    * ``mean(params)``: the posterior mean ``(B, K)``, or None where it has no closed form;
    * ``kl_splits_over_dims``: whether the KL is a sum over latent dimensions (free bits need it); a
      posterior without a closed form that splits provides ``sample_dims`` (``log_q`` per dimension).
    """

    kl_splits_over_dims = True

    def __init__(self, in_features, latent_dim):
        super().__init__()
        self.latent_dim = int(latent_dim)
        self.head = nn.Linear(in_features, 2 * self.latent_dim)

    def forward(self, h):
        """``(mean, log_std)``, each ``(B, K)``."""
        return tuple(self.head(h).chunk(2, dim=-1))

    def sample(self, params, sample_shape=(), eps=None, generator=None):
        r""":math:`\mathbf z = \boldsymbol\mu + \boldsymbol\sigma\odot\boldsymbol\epsilon` (K&W eq. 2.40)
        and :math:`\log q(\mathbf z)`."""
        mean, log_std = params
        z = sample_normal_diag(mean, log_std, eps=eps, generator=generator,
                               sample_shape=tuple(sample_shape))
        return z, log_normal_diag(z, mean, log_std, validate=False)  # no host sync

    def kl_to_prior(self, params):
        return kl_normal_standard(*params)

    def kl_per_dim(self, params):
        return kl_normal_standard_per_dim(*params)

    def mean(self, params):
        return params[0]


# -- decoders: p(x | z) ---------------------------------------------------------------------------


class BernoulliDecoder(nn.Module):
    r"""Factorized Bernoulli decoder :math:`p_\theta(\mathbf x\mid\mathbf z) = \prod_j
    \operatorname{Bernoulli}(x_j; \sigma(\lambda_j))` with logits :math:`\boldsymbol\lambda` from an MLP
    ``latent_dim -> hidden -> data_dim`` (Kingma & Welling 2014, appendix C.1).

    The interface every decoder implements: ``log_prob(x, z)`` :math:`\log p_\theta(\mathbf x\mid
    \mathbf z)` ``(*S, B)`` for z ``(*S, B, K)``; ``sample(z, generator=None) -> (x, probs)``;
    ``init_output_bias(p)`` (start from the pixels' marginal frequencies ``p``).
    """

    def __init__(self, latent_dim, hidden, data_dim, activation="tanh"):
        super().__init__()
        self.net = make_mlp([latent_dim, *hidden, data_dim], activation)

    def logits(self, z):
        return self.net(z)

    def log_prob(self, x, z):
        return bernoulli_log_prob(x, self.net(z))

    def sample(self, z, generator=None):
        probs = torch.sigmoid(self.net(z))
        x = torch.rand(probs.shape, generator=generator, dtype=probs.dtype, device=probs.device)
        return (x < probs).to(probs.dtype), probs

    @torch.no_grad()
    def init_output_bias(self, p, clip=1e-3):
        p = p.clamp(clip, 1 - clip)
        self.net[-1].bias.copy_(torch.log(p) - torch.log1p(-p))


#: Posterior parts by name: ``factory(in_features, latent_dim, **options)``.
POSTERIORS = {"diagonal": DiagonalGaussianPosterior}
#: Decoder parts by name: ``factory(latent_dim, hidden, data_dim, activation, **options)``.
DECODERS = {"bernoulli": BernoulliDecoder}


def _part(registry, kind, name):
    if name not in registry:
        raise ValueError(f"{kind} must be one of {sorted(registry)}, got {name!r}")
    return registry[name]


class VAE(nn.Module):
    r"""A VAE made of parts: a **trunk** MLP ``data_dim -> hidden`` (the encoder's shared layers), a
    **posterior** :math:`q_\phi(\mathbf z\mid\mathbf x)` on the trunk's last features, and a
    **decoder** :math:`p_\theta(\mathbf x\mid\mathbf z)` whose MLP mirrors the hidden widths.

    With the defaults (diagonal Gaussian, factorized Bernoulli) this is the model of
    :mod:`vae_from_scratch.numpy.vae`; the parameters are created in the same order as the NumPy
    model's layers, so a seed gives the same initialization as before the parts existed.

    Parameters
    ----------
    data_dim : int
        Number of binary pixels (784 for MNIST, 64 for the 8x8 digits).
    hidden : sequence of int
        Hidden-layer widths of the encoder; the decoder mirrors them.
    latent_dim : int
        Dimension ``K`` of :math:`\mathbf z`.
    activation : {"tanh", "relu"}
    posterior, decoder : str
        Names in :data:`POSTERIORS` and :data:`DECODERS`.
    posterior_options, decoder_options : dict, optional
        Extra keyword arguments of the part's factory (e.g. flow steps).
    """

    def __init__(self, data_dim=784, hidden=(200, 200), latent_dim=50, activation="tanh",
                 posterior="diagonal", decoder="bernoulli", posterior_options=None,
                 decoder_options=None):
        super().__init__()
        if data_dim < 1 or latent_dim < 1 or any(h < 1 for h in hidden):
            raise ValueError(f"sizes must be positive: data_dim={data_dim}, hidden={hidden}, "
                             f"latent_dim={latent_dim}")
        make_posterior = _part(POSTERIORS, "posterior", posterior)
        make_decoder = _part(DECODERS, "decoder", decoder)
        self.data_dim, self.hidden = int(data_dim), tuple(int(h) for h in hidden)
        self.latent_dim, self.activation = int(latent_dim), activation
        self.posterior_name, self.decoder_name = posterior, decoder
        self.posterior_options = dict(posterior_options or {})
        self.decoder_options = dict(decoder_options or {})
        self.trunk = make_mlp([self.data_dim, *self.hidden], activation, final_activation=True)
        features = self.hidden[-1] if self.hidden else self.data_dim
        self.posterior = make_posterior(features, self.latent_dim, **self.posterior_options)
        self.decoder = make_decoder(self.latent_dim, self.hidden[::-1], self.data_dim, activation,
                                    **self.decoder_options)

    def config(self):
        """The constructor arguments (for checkpoints): ``VAE(**model.config())`` rebuilds it."""
        return {"data_dim": self.data_dim, "hidden": list(self.hidden),
                "latent_dim": self.latent_dim, "activation": self.activation,
                "posterior": self.posterior_name, "decoder": self.decoder_name,
                "posterior_options": dict(self.posterior_options),
                "decoder_options": dict(self.decoder_options)}

    # -- the parts ---------------------------------------------------------------------------------

    def features(self, x):
        """The trunk's output ``h`` ``(B, H)`` for data ``x`` ``(B, D)``."""
        return self.trunk(x.to(self._dtype))

    def encode(self, x):
        r"""The posterior's parameters for ``x``; for the diagonal Gaussian
        :math:`(\boldsymbol\mu, \log\boldsymbol\sigma)`, each ``(B, K)``."""
        return self.posterior(self.features(x))

    def decode(self, z):
        r"""Bernoulli logits :math:`\boldsymbol\lambda` of :math:`p_\theta(\mathbf x\mid\mathbf z)`,
        ``(..., D)`` (decoders with logits that depend on z alone, such as the default)."""
        if not hasattr(self.decoder, "logits"):
            raise ValueError(f"the {self.decoder_name!r} decoder has no logits of z alone; "
                             "use model.decoder.log_prob(x, z) or model.sample()")
        return self.decoder.logits(z)

    # -- objectives --------------------------------------------------------------------------------

    def elbo_terms(self, x, eps=None, generator=None):
        r"""The two terms of the ELBO (K&W eq. 2.10) per data point, split as in Kingma & Welling
        (2014, eq. 10): ``rec`` :math:`\mathbb E_q[\log p_\theta(\mathbf x\mid\mathbf z)]` averaged over
        the samples in ``eps`` (``(B, K)`` or ``(S, B, K)``; one sample drawn with ``generator`` if
        None), ``kl`` :math:`D_{KL}(q\|p(\mathbf z))` in closed form when the posterior has one, else
        estimated from the same samples as :math:`\log q(\mathbf z) - \log p(\mathbf z)`, and
        ``kl_per_dim`` ``(B, K)``: closed form, or for a posterior with ``sample_dims`` (IAF) the
        sampled estimate split over dimensions
        (:func:`~vae_from_scratch.torch.posteriors.sampled_kl_per_dim`, summing to ``kl``), else None.
        Returns a dict of ``(B,)`` tensors (``kl_per_dim`` ``(B, K)``)."""
        x = x.to(self._dtype)
        params = self.posterior(self.features(x))
        kl, kl_dims = self.posterior.kl_to_prior(params), self.posterior.kl_per_dim(params)
        if kl is None and hasattr(self.posterior, "sample_dims"):
            z, log_q_dims = self.posterior.sample_dims(params, eps=eps, generator=generator)
            kl_dims = sampled_kl_per_dim(z, log_q_dims)
            kl_dims = kl_dims.mean(0) if kl_dims.dim() == 3 else kl_dims
            kl = kl_dims.sum(-1)
        else:
            z, log_q = self.posterior.sample(params, eps=eps, generator=generator)
            if kl is None:
                kl = log_q - log_standard_normal(z)
                kl = kl.mean(0) if kl.dim() == 2 else kl
        rec = self.decoder.log_prob(x, z)
        if rec.dim() == 2:
            rec = rec.mean(0)
        return {"rec": rec, "kl": kl, "kl_per_dim": kl_dims}

    def elbo(self, x, eps=None, generator=None):
        r"""Per-datapoint ELBO estimate, ``(B,)``: ``rec - kl`` of :meth:`elbo_terms`
        (Kingma & Welling 2014, eq. 10; K&W eq. 2.10)."""
        terms = self.elbo_terms(x, eps=eps, generator=generator)
        return terms["rec"] - terms["kl"]

    def log_weights(self, x, eps=None, k=1, generator=None):
        r"""Log importance weights :math:`\log p_\theta(\mathbf x,\mathbf z_l) - \log q_\phi(\mathbf z_l\mid\mathbf x)`,
        ``(S, B)``, for base noise ``eps`` ``(S, B, K)`` (or ``k`` samples drawn with ``generator``)."""
        x = x.to(self._dtype)
        params = self.posterior(self.features(x))
        if eps is not None and eps.dim() != 3:
            raise ValueError(f"eps must be (S, B, K) for log_weights, got shape {tuple(eps.shape)}")
        shape = () if eps is not None else (k,)
        z, log_q = self.posterior.sample(params, sample_shape=shape, eps=eps, generator=generator)
        return log_standard_normal(z) + self.decoder.log_prob(x, z) - log_q

    def iwae(self, x, k=5, eps=None, generator=None):
        r"""The IWAE bound estimate :math:`\operatorname{logmeanexp}_k w_k`, ``(B,)`` (Burda et al. 2016, eq. 8)."""
        log_w = self.log_weights(x, eps=eps, k=k, generator=generator)
        return torch.logsumexp(log_w, dim=0) - math.log(log_w.shape[0])

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

    def linear_layers(self):
        """The Linear layers in the order of the NumPy pytree: ``{"encoder": trunk layers + the
        posterior's head, "decoder": the decoder's layers}`` (diagonal posterior, Bernoulli decoder)."""
        if not (isinstance(self.posterior, DiagonalGaussianPosterior)
                and isinstance(self.decoder, BernoulliDecoder)):
            raise ValueError("NumPy parameters exist for the diagonal-Gaussian posterior and the "
                             "Bernoulli decoder only")
        encoder = [m for m in self.trunk if isinstance(m, nn.Linear)] + [self.posterior.head]
        decoder = [m for m in self.decoder.net if isinstance(m, nn.Linear)]
        return {"encoder": encoder, "decoder": decoder}

    def load_numpy_params(self, params):
        """Copy a :mod:`vae_from_scratch.numpy.vae` parameter pytree into this module (in place)."""
        for name, linears in self.linear_layers().items():
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
        return {name: [(m.weight.detach().cpu().double().numpy().T.copy(),
                        m.bias.detach().cpu().double().numpy().copy()) for m in linears]
                for name, linears in self.linear_layers().items()}

    def posterior_numpy_params(self):
        """Float64 pytree of :func:`vae_from_scratch.numpy.vae.init_posterior_vae` for any posterior
        (``"diagonal"``, ``"full"``, ``"iaf"``) with the Bernoulli decoder: the trunk's layers and
        the posterior's head, the decoder, and for IAF the MADE weights of each step (masks are
        recomputed there from the default degrees, as :class:`~.flows.MADE` builds them)."""
        if not isinstance(self.decoder, BernoulliDecoder):
            raise ValueError("NumPy parameters exist for the Bernoulli decoder only")

        def arr(t):
            return t.detach().cpu().double().numpy().copy()
        encoder = [m for m in self.trunk if isinstance(m, nn.Linear)] + [self.posterior.head]
        decoder = [m for m in self.decoder.net if isinstance(m, nn.Linear)]
        params = {"encoder": [(arr(m.weight).T, arr(m.bias)) for m in encoder],
                  "decoder": [(arr(m.weight).T, arr(m.bias)) for m in decoder]}
        if self.posterior_name == "iaf":
            made = [s.made for s in self.posterior.flow.steps if hasattr(s, "made")]
            params["flow"] = [{"W": [arr(lay.weight).T for lay in m.layers],
                               "b": [arr(lay.bias) for lay in m.layers],
                               **({} if m.context is None else {"C": arr(m.context.weight).T})}
                              for m in made]
        return params

    @classmethod
    def from_numpy_params(cls, params, activation="tanh"):
        """A new module holding a NumPy parameter pytree (dtype of the current torch default)."""
        enc = params["encoder"]
        hidden = [W.shape[1] for W, _ in enc[:-1]]
        model = cls(enc[0][0].shape[0], hidden, enc[-1][0].shape[1] // 2, activation)
        return model.load_numpy_params(params)

    @property
    def _dtype(self):
        return next(self.parameters()).dtype


def bernoulli_log_prob(x, logits):
    r""":math:`\sum_j x_j\lambda_j - \operatorname{softplus}(\lambda_j)` over the last axis, broadcasting
    ``x`` against ``logits``; no 0/1 check (see the module docstring)."""
    return bernoulli_log_likelihood(x, logits, validate=False)


def build_vae(data_dim, arch="burda", hidden=None, latent_dim=None, activation=None,
              posterior="diagonal", decoder="bernoulli", posterior_options=None,
              decoder_options=None):
    """A :class:`VAE` from a named architecture (:data:`ARCHITECTURES`) with optional overrides and
    the named posterior and decoder parts."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"arch must be one of {sorted(ARCHITECTURES)}, got {arch!r}")
    spec = dict(ARCHITECTURES[arch])
    if hidden is not None:
        spec["hidden"] = tuple(hidden)
    if latent_dim is not None:
        spec["latent_dim"] = latent_dim
    if activation is not None:
        spec["activation"] = activation
    return VAE(data_dim, spec["hidden"], spec["latent_dim"], spec["activation"],
               posterior=posterior, decoder=decoder, posterior_options=posterior_options,
               decoder_options=decoder_options)


# Chapter 7's posteriors (full covariance, IAF) register themselves here; imported last because
# they are defined in their own module, which does not import this one.
from .posteriors import FullCovariancePosterior, IAFPosterior, sampled_kl_per_dim  # noqa: E402

POSTERIORS["full"] = FullCovariancePosterior
POSTERIORS["iaf"] = IAFPosterior


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
    """Mean of :meth:`VAE.elbo` over the minibatch (K&W eq. 2.13)."""
    return model.elbo(x, eps=eps, generator=generator).mean()


# Parts defined in their own modules register themselves on import.
from . import autoregressive  # noqa: E402,F401  (DECODERS["autoregressive"], chapter 6)
