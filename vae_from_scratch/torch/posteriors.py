r"""Approximate posteriors beyond the diagonal Gaussian, as VAE parts (PyTorch; chapter 7).

Each posterior is an ``nn.Module`` with the interface of
:class:`vae_from_scratch.torch.vae.DiagonalGaussianPosterior`, and is registered by name in
:data:`vae_from_scratch.torch.vae.POSTERIORS` (``factory(in_features, latent_dim, **options)``):

* ``params = posterior(h)``: the distribution's parameters from the trunk's features ``h`` ``(B, H)``;
* ``sample(params, sample_shape=(), eps=None, generator=None) -> (z, log_q)``: a reparameterized
  sample ``(*S, B, K)`` from standard-normal base noise ``eps`` and its log-density ``(*S, B)``;
* ``kl_to_prior(params) -> (B,)``: :math:`D_{KL}(q\,\|\,\mathcal N(\mathbf 0, \mathbf I))` in closed form,
  or ``None`` when there is none (the VAE's ELBO then uses the sampled KL
  :math:`\log q(\mathbf z) - \log p(\mathbf z)`); ``kl_per_dim(params)``: per dimension, or ``None``;
* ``mean(params) -> (B, K)``: the posterior mean where it is available in closed form, else ``None``.

The two families here:

* ``"full"``: :math:`\mathcal N(\boldsymbol\mu, \mathbf L\mathbf L^\top)` with the masked Cholesky factor
  :math:`\mathbf L = \mathbf L_{mask}\odot\mathbf L' + \operatorname{diag}\boldsymbol\sigma` (K&W eq. 2.45-2.55),
  a one-step linear flow;
* ``"iaf"``: a diagonal Gaussian :math:`\mathbf z_0` followed by ``steps`` gated IAF steps with the
  context ``c`` (a linear function of ``h``) and the order reversed between steps (K&W eq. 3.23-3.32;
  Kingma et al. 2016, algorithm 1):
  :math:`\log q(\mathbf z_T\mid\mathbf x) = \log q(\mathbf z_0\mid\mathbf x) - \sum_t\sum_i\log\sigma_{t,i}`.
"""

import torch
from torch import nn

from .distributions import LOG_2PI, log_standard_normal
from .flows import IAFFlow
from .reparameterization import full_covariance_factor, kl_normal_full_standard, rsample_normal_full

__all__ = ["FullCovariancePosterior", "IAFPosterior", "sampled_kl", "sampled_kl_per_dim"]


def _noise(like, sample_shape, eps, generator):
    if eps is not None:
        if tuple(eps.shape[-like.dim():]) != tuple(like.shape):
            raise ValueError(f"eps must end in {tuple(like.shape)}, got shape {tuple(eps.shape)}")
        return eps.to(like.dtype)
    return torch.randn(tuple(sample_shape) + tuple(like.shape), generator=generator, dtype=like.dtype,
                       device=like.device)


class FullCovariancePosterior(nn.Module):
    r"""Full-covariance Gaussian :math:`\mathcal N(\boldsymbol\mu, \mathbf L\mathbf L^\top)`: a linear head
    ``h -> (mean, log_std, K(K-1)/2 strictly-lower entries of L')``, the factor from
    :func:`~vae_from_scratch.torch.reparameterization.full_covariance_factor` (K&W eq. 2.53-2.55),
    the closed-form KL :func:`~vae_from_scratch.torch.reparameterization.kl_normal_full_standard`."""

    kl_splits_over_dims = False  # a correlated Gaussian's KL is not a sum over dimensions: no free bits

    def __init__(self, in_features, latent_dim):
        super().__init__()
        K = self.latent_dim = int(latent_dim)
        self.n_lower = K * (K - 1) // 2
        self.head = nn.Linear(int(in_features), 2 * K + self.n_lower)
        with torch.no_grad():  # start near a diagonal Gaussian: small off-diagonal entries
            self.head.weight[2 * K:].mul_(0.1)
            self.head.bias[2 * K:].zero_()
        rows, cols = torch.tril_indices(K, K, offset=-1)
        self.register_buffer("rows", rows, persistent=False)
        self.register_buffer("cols", cols, persistent=False)

    def forward(self, h):
        """``(mean (B, K), L (B, K, K))``."""
        K = self.latent_dim
        out = self.head(h)
        mean, log_std, lower = out[..., :K], out[..., K:2 * K], out[..., 2 * K:]
        L_prime = out.new_zeros(out.shape[:-1] + (K, K))
        L_prime[..., self.rows, self.cols] = lower
        L, _ = full_covariance_factor(L_prime, log_std)
        return mean, L

    def sample(self, params, sample_shape=(), eps=None, generator=None):
        r""":math:`\mathbf z = \boldsymbol\mu + \mathbf L\boldsymbol\epsilon` and :math:`\log q(\mathbf z)`
        (K&W eq. 2.46-2.49)."""
        mean, L = params
        eps = _noise(mean, sample_shape, eps, generator)
        return rsample_normal_full(mean, L, eps=eps, validate=False)

    def kl_to_prior(self, params):
        mean, L = params
        return kl_normal_full_standard(mean, L, validate=False)

    def kl_per_dim(self, params):
        return None  # the KL of a correlated Gaussian does not split over dimensions

    def mean(self, params):
        return params[0]


class IAFPosterior(nn.Module):
    r"""Inverse autoregressive flow posterior (Kingma et al. 2016; K&W section 3.4, algorithm 3):
    a linear head ``h -> (mean, log_std, context)``,
    :math:`\mathbf z_0 = \boldsymbol\mu + \boldsymbol\sigma\odot\boldsymbol\epsilon`, then ``steps`` gated
    IAF steps (MADE with hidden widths ``flow_hidden`` and the context as extra input, forget bias
    ``forget_bias``), the order reversed between steps. ``kl_to_prior`` and ``mean`` are ``None``:
    no closed form; free bits use the sampled KL split over dimensions (:meth:`sample_dims`)."""

    kl_splits_over_dims = True

    def __init__(self, in_features, latent_dim, steps=2, flow_hidden=(320, 320), context_dim=None,
                 forget_bias=1.0):
        super().__init__()
        K = self.latent_dim = int(latent_dim)
        if isinstance(flow_hidden, int):
            flow_hidden = (flow_hidden, flow_hidden)
        self.context_dim = int(context_dim if context_dim is not None else latent_dim)
        self.steps, self.flow_hidden = int(steps), tuple(int(w) for w in flow_hidden)
        self.head = nn.Linear(int(in_features), 2 * K + self.context_dim)
        self.flow = IAFFlow(K, self.steps, self.flow_hidden, context_dim=self.context_dim,
                            forget_bias=forget_bias)

    def forward(self, h):
        """``(mean (B, K), log_std (B, K), context (B, C))`` of the initial Gaussian and the flow."""
        K = self.latent_dim
        out = self.head(h)
        return out[..., :K], out[..., K:2 * K], out[..., 2 * K:]

    def sample(self, params, sample_shape=(), eps=None, generator=None):
        r""":math:`\mathbf z_0 = \boldsymbol\mu + \boldsymbol\sigma\odot\boldsymbol\epsilon`, then the
        flow; :math:`\log q(\mathbf z_T) = \log q(\mathbf z_0) - \sum_t \log|\det|` (K&W eq. 3.29)."""
        z, log_q_dims = self.sample_dims(params, sample_shape, eps, generator)
        return z, log_q_dims.sum(-1)

    def sample_dims(self, params, sample_shape=(), eps=None, generator=None):
        r"""Like :meth:`sample`, with :math:`\log q(\mathbf z_T\mid\mathbf x)` split over the
        coordinates of :math:`\mathbf z_T`, ``(*S, B, K)`` (for free bits; Kingma et al. 2016,
        appendix C):

        .. math::
            \log q(\mathbf z_T\mid\mathbf x) = \sum_i\Big[\log\mathcal N(\epsilon_i; 0, 1)
            - \log\sigma_{0,i} - \sum_t\log\sigma_{t,i}\Big],

        each term credited to the coordinate its variable ends up in after the order reversals
        (:meth:`~vae_from_scratch.torch.flows.IAFFlow.forward_dims`)."""
        mean, log_std, context = params
        eps = _noise(mean, sample_shape, eps, generator)
        z0 = mean + torch.exp(log_std) * eps
        log_q0_dims = -0.5 * (eps * eps + LOG_2PI) - log_std
        z, log_det_dims = self.flow.forward_dims(z0, context.expand(z0.shape[:-1] + context.shape[-1:]))
        return z, self.flow.carry(log_q0_dims) - log_det_dims

    def kl_to_prior(self, params):
        return None

    def kl_per_dim(self, params):
        return None

    def mean(self, params):
        return None


def sampled_kl_per_dim(z, log_q_dims):
    r"""One-sample KL estimate split over the latent dimensions, ``(..., K)``:
    :math:`\log q_i - \log\mathcal N(z_i; 0, 1)` for a log-density split ``log_q_dims`` that sums
    to :math:`\log q(\mathbf z)` (:meth:`IAFPosterior.sample_dims`). It sums to :func:`sampled_kl`;
    free bits clamp its minibatch mean per dimension or group (Kingma et al. 2016, appendix C)."""
    return log_q_dims + 0.5 * (z * z + LOG_2PI)


def sampled_kl(z, log_q):
    r"""One-sample KL estimate :math:`\log q(\mathbf z) - \log p(\mathbf z)` with :math:`p = \mathcal N(\mathbf 0,\mathbf I)`
    (unbiased for :math:`D_{KL}(q\|p)`; K&W eq. 2.10 without a closed form)."""
    return log_q - log_standard_normal(z)
