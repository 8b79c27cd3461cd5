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

from .distributions import log_standard_normal
from .flows import IAFFlow
from .reparameterization import (full_covariance_factor, kl_normal_full_standard, rsample_normal_diag,
                                 rsample_normal_full)

__all__ = ["FullCovariancePosterior", "IAFPosterior", "sampled_kl"]


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
    no closed form."""

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
        mean, log_std, context = params
        eps = _noise(mean, sample_shape, eps, generator)
        z0, log_q0 = rsample_normal_diag(mean, log_std, eps=eps, validate=False)
        z, log_det = self.flow(z0, context.expand(z0.shape[:-1] + context.shape[-1:]))
        return z, log_q0 - log_det

    def kl_to_prior(self, params):
        return None

    def kl_per_dim(self, params):
        return None

    def mean(self, params):
        return None


def sampled_kl(z, log_q):
    r"""One-sample KL estimate :math:`\log q(\mathbf z) - \log p(\mathbf z)` with :math:`p = \mathcal N(\mathbf 0,\mathbf I)`
    (unbiased for :math:`D_{KL}(q\|p)`; K&W eq. 2.10 without a closed form)."""
    return log_q - log_standard_normal(z)
