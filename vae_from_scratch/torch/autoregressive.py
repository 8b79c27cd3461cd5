r"""An autoregressive Bernoulli decoder: a decoder that can model the data without the latent code.

.. math::
    p_\theta(\mathbf x\mid\mathbf z) = \prod_{j=1}^{D}\operatorname{Bernoulli}\big(x_j;\,
        \operatorname{sigmoid}(\lambda_j)\big),\qquad
    \lambda_j = c_j(\mathbf z) + \sum_{i<j} V_{ji}\,x_i

with :math:`\mathbf c(\mathbf z)` an MLP of the latent code (the factorized decoder's logits) and
:math:`\mathbf V` a **strictly lower-triangular** matrix (a masked linear layer, as in the fully
visible sigmoid belief network of Frey 1998, or one layer of MADE, Germain et al. 2015). Pixel
:math:`j` sees the pixels before it in raster order, so the decoder alone is an autoregressive model
of :math:`\mathbf x` and can explain much of the data without using :math:`\mathbf z`: the setting in
which the ELBO's optimum may set :math:`q(\mathbf z\mid\mathbf x) = p(\mathbf z)` (Chen et al. 2017;
the essay by Zhao & Song, "Towards deeper understanding of variational autoencoding models").

Each conditional is a normalized Bernoulli, and their product over ``j`` in this order is a normalized
distribution on :math:`\{0,1\}^D` for every ``z`` (tested by summing over all :math:`2^D` images for a
small ``D``). Evaluating :math:`\log p(\mathbf x\mid\mathbf z)` needs one pass (teacher forcing: the
observed ``x`` feeds the masked layer); sampling needs ``D`` sequential passes.

The module is a decoder part of :class:`~vae_from_scratch.torch.vae.VAE` (``log_prob(x, z)``,
``sample(z)``, ``init_output_bias(p)``), registered as ``DECODERS["autoregressive"]``:
``VAE(..., decoder="autoregressive")``, or ``--decoder autoregressive`` on the command line.
"""

import torch
from torch import nn

from .distributions import bernoulli_log_likelihood
from .vae import DECODERS, make_mlp


class AutoregressiveBernoulliDecoder(nn.Module):
    r"""Autoregressive Bernoulli decoder over ``data_dim`` pixels in raster order, conditioned on ``z``
    through an MLP ``latent_dim -> hidden... -> data_dim`` (see the module docstring)."""

    def __init__(self, latent_dim, hidden, data_dim, activation="tanh"):
        super().__init__()
        if latent_dim < 1 or data_dim < 1:
            raise ValueError(f"sizes must be positive: latent_dim={latent_dim}, data_dim={data_dim}")
        self.latent_dim, self.data_dim = int(latent_dim), int(data_dim)
        self.context = make_mlp([self.latent_dim, *hidden, self.data_dim], activation)
        self.weight = nn.Parameter(torch.zeros(self.data_dim, self.data_dim))
        self.register_buffer("mask", torch.ones(self.data_dim, self.data_dim).tril(-1))

    def conditional_logits(self, x, z):
        r""":math:`\lambda_j = c_j(\mathbf z) + \sum_{i<j}V_{ji}x_i`; ``x`` ``(B, D)`` (or broadcastable
        against ``z``'s batch axes), ``z`` ``(*S, B, K)``; returns ``(*S, B, D)``."""
        x = x.to(self.weight.dtype)
        return self.context(z) + x @ (self.weight * self.mask).T

    def log_prob(self, x, z):
        r""":math:`\log p_\theta(\mathbf x\mid\mathbf z)`, ``(*S, B)``, by teacher forcing (one pass)."""
        return bernoulli_log_likelihood(x, self.conditional_logits(x, z), validate=False)

    @torch.no_grad()
    def sample(self, z, generator=None):
        r"""Ancestral sampling pixel by pixel; returns ``(x, probs)`` each ``(*z.shape[:-1], D)``, where
        ``probs[..., j]`` is :math:`p(x_j = 1\mid x_{<j}, \mathbf z)` at the drawn prefix."""
        context = self.context(z)
        V = self.weight * self.mask
        x = torch.zeros_like(context)
        probs = torch.zeros_like(context)
        for j in range(self.data_dim):
            p_j = torch.sigmoid(context[..., j] + x @ V[j])
            u = torch.rand(p_j.shape, generator=generator, dtype=p_j.dtype, device=p_j.device)
            probs[..., j] = p_j
            x[..., j] = (u < p_j).to(x.dtype)
        return x, probs

    def init_output_bias(self, p, clip=1e-3):
        """Set the output bias to the logit of the pixel means ``p`` ``(D,)`` (the marginal model)."""
        p = p.clamp(clip, 1 - clip)
        with torch.no_grad():
            self.context[-1].bias.copy_(torch.log(p) - torch.log1p(-p))
        return self


DECODERS["autoregressive"] = AutoregressiveBernoulliDecoder
