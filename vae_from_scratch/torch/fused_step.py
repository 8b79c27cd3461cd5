r"""One training step of the default VAE with the backward pass written by hand: the fast path of
the training loop (``TrainConfig.fused_step``, "auto" by default: used where it applies; the CLI's
``--autograd-step`` turns it off).

For the VAE made of an MLP trunk (tanh), the diagonal-Gaussian posterior and the Bernoulli decoder,
trained on the single-sample ELBO with the closed-form KL (Kingma & Welling 2014, eq. 10), the
gradient of the minibatch loss :math:`\ell = -\frac1B\sum_b \mathcal L(\mathbf x_b)` is short enough
to write out. With :math:`\boldsymbol\lambda` the decoder's logits, :math:`\mathbf z = \boldsymbol\mu
+ \boldsymbol\sigma\odot\boldsymbol\epsilon` (K&W eq. 2.40) and :math:`\mathbf a_{l} = \tanh(\mathbf
a_{l-1} W_l^\top + \mathbf b_l)`:

.. math::
    \frac{\partial\ell}{\partial\boldsymbol\lambda} = \tfrac1B\,(\sigma(\boldsymbol\lambda) - \mathbf x),
    \qquad
    \frac{\partial\ell}{\partial\boldsymbol\mu} = \frac{\partial\ell}{\partial\mathbf z} + \tfrac1B\boldsymbol\mu,
    \qquad
    \frac{\partial\ell}{\partial\log\boldsymbol\sigma} = \frac{\partial\ell}{\partial\mathbf z}\odot
    \boldsymbol\epsilon\odot\boldsymbol\sigma + \tfrac1B(\boldsymbol\sigma^2 - 1),

and through each layer :math:`\partial\ell/\partial\mathbf a_{l-1} = (\partial\ell/\partial\mathbf
a_l\odot(1 - \mathbf a_l^2))\,W_l`, :math:`\partial\ell/\partial W_l = \boldsymbol\delta_l^\top
\mathbf a_{l-1}`, :math:`\partial\ell/\partial\mathbf b_l = \sum_b\boldsymbol\delta_l`. Computing
these directly, in place where possible, skips autograd's graph and about half of the element-wise
passes; the matrix products are the same. ``tests/test_training.py`` checks the gradients against
autograd in float64. The noise is drawn exactly as the posterior part draws it (same generator
calls), so the two paths see the same :math:`\boldsymbol\epsilon`; their float32 results differ in
the last bits (a different order of operations).
"""

import weakref

import torch
import torch.nn.functional as F
from torch import nn

from .vae import BernoulliDecoder, DiagonalGaussianPosterior


def supports(model, objective_name="elbo"):
    """Whether :func:`elbo_step` applies: the single-sample ELBO of a VAE with a tanh MLP trunk, the
    diagonal-Gaussian posterior and the Bernoulli decoder (tanh)."""
    if objective_name != "elbo":
        return False
    # exact types: a subclass (another posterior built on the diagonal one) may sample differently
    if not (type(getattr(model, "posterior", None)) is DiagonalGaussianPosterior
            and type(getattr(model, "decoder", None)) is BernoulliDecoder):
        return False
    for seq in (model.trunk, model.decoder.net):
        if not all(isinstance(m, (nn.Linear, nn.Tanh)) for m in seq):
            return False
    return getattr(model, "activation", "tanh") == "tanh"


def _linears(seq):
    return [m for m in seq if isinstance(m, nn.Linear)]


_STRUCTURE = weakref.WeakKeyDictionary()


def _structure(model):
    """The Linear layers of the trunk and the decoder and which are followed by tanh, cached per model
    (the step runs thousands of times) and rebuilt when the model's trunk or decoder is replaced."""
    cached = _STRUCTURE.get(model)
    if cached is None or cached[0] is not model.trunk or cached[1] is not model.decoder.net:
        cached = (model.trunk, model.decoder.net,
                  (_linears(model.trunk), _layers_have_tanh(model.trunk),
                   _linears(model.decoder.net), _layers_have_tanh(model.decoder.net)))
        _STRUCTURE[model] = cached
    return cached[2]


def _layers_have_tanh(seq):
    """For each Linear of ``seq``: is it followed by a tanh?"""
    mods = list(seq)
    return [i + 1 < len(mods) and isinstance(mods[i + 1], nn.Tanh)
            for i, m in enumerate(mods) if isinstance(m, nn.Linear)]


@torch.no_grad()
def elbo_gradients(model, x, generator=None):
    """Set ``p.grad`` of every parameter to the gradient of ``-mean ELBO`` over the minibatch ``x``
    (one reparameterized sample) and return the per-datapoint ELBO ``(B,)`` (detached)."""
    trunk, trunk_tanh, dec, dec_tanh = _structure(model)
    head = model.posterior.head
    x = x.to(head.weight.dtype)
    B, K = x.shape[0], model.posterior.latent_dim

    def forward(layers, tanhs, h):
        acts = [h]
        for lin, act in zip(layers, tanhs):
            h = torch.addmm(lin.bias, h, lin.weight.t())
            if act:
                h = h.tanh_()
            acts.append(h)
        return acts

    def backward(layers, tanhs, acts, delta, need_input_grad):
        for i in range(len(layers) - 1, -1, -1):
            lin = layers[i]
            if tanhs[i]:  # delta * (1 - a^2) in one kernel
                delta = torch.ops.aten.tanh_backward(delta, acts[i + 1])
            lin.weight.grad = delta.t().mm(acts[i])
            lin.bias.grad = delta.sum(0)
            if i > 0 or need_input_grad:
                delta = delta.mm(lin.weight)
        return delta

    trunk_acts = forward(trunk, trunk_tanh, x)
    h = trunk_acts[-1]
    out = torch.addmm(head.bias, h, head.weight.t())
    mean, log_std = out[:, :K], out[:, K:]
    std = log_std.exp()
    eps = torch.randn((B, K), generator=generator, dtype=mean.dtype, device=mean.device)
    z = torch.addcmul(mean, std, eps)
    dec_acts = forward(dec, dec_tanh, z)
    logits = dec_acts[-1]

    kl = (0.5 * (mean * mean + std * std - 1.0) - log_std).sum(1)
    bound = -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(1) - kl

    delta = logits.sigmoid_().sub_(x).div_(B)  # the logits are not needed any more
    grad_z = backward(dec, dec_tanh, dec_acts, delta, need_input_grad=True)
    grad_mean = grad_z + mean / B
    grad_log_std = grad_z.mul_(eps).mul_(std).add_((std * std - 1.0) / B)
    delta = torch.cat([grad_mean, grad_log_std], 1)
    head.weight.grad = delta.t().mm(h)
    head.bias.grad = delta.sum(0)
    backward(trunk, trunk_tanh, trunk_acts, delta.mm(head.weight), need_input_grad=False)
    return bound


def elbo_step(model, optimizer, x, generator=None):
    """:func:`elbo_gradients`, then ``optimizer.step()``; returns the per-datapoint ELBO ``(B,)``."""
    bound = elbo_gradients(model, x, generator)
    optimizer.step()
    return bound
