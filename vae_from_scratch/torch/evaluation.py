r"""Importance-sampled :math:`\log p(\mathbf x)`, the IWAE bound and the amortization gap in PyTorch.

Same names and conventions as :mod:`vae_from_scratch.numpy.evaluation` (see there for the math:
K&W eqs. 2.56-2.57, Burda et al. 2016). :func:`importance_log_likelihood` works in blocks of
data points times samples, so ``k = 5000`` over the 10,000 MNIST test images runs in bounded memory on
a laptop or a GPU; results stay on the device until the end (one host copy per call).

What makes the ``k = 5000`` evaluation fast (``benchmarks/bench_eval.py`` measures it): most of its
arithmetic is the decoder's last layer, ``k x N`` products of 200 hidden units with a 784 x 200
matrix. :func:`vae_log_weights` computes the factorized Bernoulli decoder's term without the
avoidable passes over those ``k x N x 784`` logits (:func:`bernoulli_mlp_log_prob`: the data term
folded into the hidden layer, the logits made chunk by chunk in cache), and on a CPU
:func:`importance_log_likelihood` spreads the blocks over ``workers`` threads that each run
single-threaded operations: no thread waits for another, so a core lost to another process slows
the evaluation by that core's share instead of stalling every operation. The noise is drawn in the
same order for any number of workers, so the result does not depend on it.

:func:`optimize_local_gaussian` and :func:`amortization_gap` measure how much the amortized encoder
costs (Cremer, Li & Duvenaud 2018): for each data point a free Gaussian :math:`q^*` is fitted by
gradient ascent on its own ELBO, starting from the encoder's output.
"""

import math
from collections import deque
from concurrent.futures import ThreadPoolExecutor

import torch
from torch import nn

from .distributions import (kl_normal_standard, log_normal_diag, log_standard_normal, sample_normal_diag,
                            softplus)
from .vae import BernoulliDecoder, bernoulli_log_prob


def logmeanexp(a, dim=0):
    r"""Stable :math:`\log \frac1n \sum_i e^{a_i}` along ``dim`` (``torch.logsumexp`` minus :math:`\log n`)."""
    n = a.shape[dim]
    if n == 0:
        raise ValueError("logmeanexp of an empty axis")
    return torch.logsumexp(a, dim=dim) - math.log(n)


def iwae_bound(log_w):
    r""":math:`\operatorname{logmeanexp}_k w_k` of log-weights ``(k, ...)`` along dim 0 (Burda et al. 2016, eq. 8)."""
    return logmeanexp(log_w, dim=0)


def elbo_from_log_weights(log_w):
    r"""The ELBO estimate :math:`\frac1k\sum_k w_k` of log-weights ``(k, ...)`` (K&W eq. 2.29)."""
    return log_w.mean(0)


def iwae_curve(log_w, ks):
    r"""IWAE estimates :math:`\mathcal L_k` for each ``k`` in ``ks`` from one tensor of log-weights ``(K, ...)``
    (disjoint groups of ``k`` samples, averaged; see the NumPy version). Returns ``(len(ks), ...)``."""
    total = log_w.shape[0]
    out = []
    for k in ks:
        if not 1 <= k <= total:
            raise ValueError(f"k={k} must be between 1 and the number of samples {total}")
        groups = total // k
        grouped = log_w[:groups * k].reshape(groups, k, *log_w.shape[1:])
        out.append(logmeanexp(grouped, dim=1).mean(0))
    return torch.stack(out)


@torch.no_grad()
def importance_log_likelihood(log_weight_fn, x, k, latent_dim, generator=None, eps=None,
                              batch_size=100, sample_batch_size=500, workers=1):
    r"""Importance-sampled :math:`\log p(\mathbf x)` (K&W eq. 2.57) for each row of ``x``, ``(N,)``.

    ``log_weight_fn(x_batch, eps_batch)``: data ``(b, D)`` and standard-normal noise
    ``(s, b, latent_dim)`` to log-weights ``(s, b)`` (for a :class:`~vae_from_scratch.torch.vae.VAE`,
    :func:`vae_log_likelihood` passes :func:`vae_log_weights`). Blocks of ``batch_size`` data points times
    ``sample_batch_size`` samples bound the memory; sample blocks are merged with a running
    log-sum-exp. Noise: ``eps`` of shape ``(k, N, latent_dim)`` used block by block (so different block
    sizes give the same answer), or blocks drawn with ``generator`` on ``x``'s device.

    ``workers > 1`` (CPU): that many threads compute blocks at once, each with single-threaded torch
    operations (torch's thread count is set to 1 meanwhile and restored after). The noise is still
    drawn here, block after block in the serial order, and the blocks are merged in that order, so
    the result is the same for every ``workers``.
    """
    if x.dim() != 2:
        raise ValueError(f"x must be (N, D), got shape {tuple(x.shape)}")
    if k < 1 or batch_size < 1 or sample_batch_size < 1 or workers < 1:
        raise ValueError("k, batch_size, sample_batch_size and workers must be positive")
    N = x.shape[0]
    if eps is not None and tuple(eps.shape) != (k, N, latent_dim):
        raise ValueError(f"eps must have shape (k, N, latent_dim) = {(k, N, latent_dim)}, "
                         f"got {tuple(eps.shape)}")

    def blocks():  # (first row, last row, noise) in the serial order: the noise stream is fixed here
        for lo in range(0, N, batch_size):
            hi = min(lo + batch_size, N)
            for s in range(0, k, sample_batch_size):
                n = min(sample_batch_size, k - s)
                if eps is not None:
                    yield lo, hi, eps[s:s + n, lo:hi].to(x.device)
                else:
                    yield lo, hi, torch.randn(n, hi - lo, latent_dim, generator=generator,
                                              device=x.device, dtype=_float_dtype(x))

    def block_logsumexp(task):
        lo, hi, e = task
        return lo, torch.logsumexp(log_weight_fn(x[lo:hi], e), dim=0)

    results, running, start = [], None, 0
    for lo, block in _ordered_map(block_logsumexp, blocks(), workers):
        if lo != start:  # a new data block: the previous one is complete
            results.append(running - math.log(k))
            running, start = None, lo
        running = block if running is None else torch.logaddexp(running, block)
    results.append(running - math.log(k))
    return torch.cat(results)


def _ordered_map(fn, tasks, workers):
    """``map(fn, tasks)`` in order, with ``workers`` threads and at most ``2 * workers`` tasks in
    flight (bounded memory); torch runs single-threaded inside the workers."""
    if workers == 1:
        yield from map(fn, tasks)
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            pending = deque()
            for task in tasks:
                pending.append(pool.submit(fn, task))
                if len(pending) >= 2 * workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
    finally:
        torch.set_num_threads(threads)


def bernoulli_mlp_layers(decoder):
    """``[(linear, activation), ...]`` of a factorized Bernoulli MLP decoder (the activation after
    each layer, ``None`` after the last), or ``None`` if ``decoder`` is not one."""
    if type(decoder) is not BernoulliDecoder:
        return None
    modules, layers = list(decoder.net), []
    for i, m in enumerate(modules):
        if isinstance(m, nn.Linear):
            after = modules[i + 1] if i + 1 < len(modules) else None
            if after is not None and type(after) not in (nn.Tanh, nn.ReLU):
                return None
            layers.append((m, after))
        elif type(m) not in (nn.Tanh, nn.ReLU):
            return None
    if not layers or layers[-1][1] is not None:
        return None
    return layers


@torch.no_grad()
def bernoulli_mlp_log_prob(layers, x, z, chunk_rows=512):
    r""":math:`\log p_\theta(\mathbf x\mid\mathbf z) = \sum_j x_j\lambda_j - \operatorname{softplus}(\lambda_j)`
    (K&W eqs. 1.17-1.18) of an MLP decoder with logits :math:`\boldsymbol\lambda = \mathbf W\mathbf h
    + \mathbf b` (``layers`` from :func:`bernoulli_mlp_layers`), for ``x`` ``(B, D)`` and ``z``
    ``(S, B, K)``; returns ``(S, B)``. No gradients: for evaluation.

    The same numbers as ``decoder.log_prob(x, z)`` (up to rounding), with fewer passes over the
    ``S x B x D`` logits: the data term is folded into the last hidden layer,
    :math:`\mathbf x^\top(\mathbf W\mathbf h + \mathbf b) = (\mathbf W^\top\mathbf x)^\top\mathbf h
    + \mathbf b^\top\mathbf x`, a product with ``H`` numbers per data point instead of ``D``; and the
    network runs on chunks of about ``chunk_rows`` samples whose logits stay in the cache, where only
    :math:`\sum_j\operatorname{softplus}(\lambda_j)` is taken of them.
    """
    S, B, K = z.shape
    last = layers[-1][0]
    x = x.to(z.dtype)
    xw = x @ last.weight                      # (B, H): W^T x for each data point
    xb = x @ last.bias                        # (B,)
    z = z.reshape(S * B, K)
    per = max(1, chunk_rows // B)             # whole samples per chunk: rows s*B .. (s+per)*B
    data_term = torch.empty(S, B, dtype=z.dtype, device=z.device)
    normalizer = torch.empty(S, B, dtype=z.dtype, device=z.device)
    for s in range(0, S, per):
        n = min(per, S - s)
        h = z[s * B:(s + n) * B]
        for linear, activation in layers[:-1]:
            h = torch.addmm(linear.bias, h, linear.weight.T)
            h = h.tanh_() if type(activation) is nn.Tanh else h.relu_()
        logits = torch.addmm(last.bias, h, last.weight.T)
        torch.sum(softplus(logits), dim=-1, out=normalizer[s:s + n].view(-1))
        torch.sum(h.view(n, B, -1) * xw, dim=-1, out=data_term[s:s + n])
    return data_term + xb - normalizer


@torch.no_grad()
def vae_log_weights(model, x, eps):
    r"""Log importance weights :math:`\log p_\theta(\mathbf x,\mathbf z_s) - \log q_\phi(\mathbf z_s\mid\mathbf x)`,
    ``(S, B)``, for base noise ``eps`` ``(S, B, K)``: :meth:`VAE.log_weights
    <vae_from_scratch.torch.vae.VAE.log_weights>` for evaluation (no gradients), with the factorized
    Bernoulli decoder's term from :func:`bernoulli_mlp_log_prob` (other decoders: their ``log_prob``)."""
    layers = bernoulli_mlp_layers(model.decoder)
    if layers is None:
        return model.log_weights(x, eps=eps)
    x = x.to(next(model.parameters()).dtype)
    if eps.dim() != 3:
        raise ValueError(f"eps must be (S, B, K) for log_weights, got shape {tuple(eps.shape)}")
    z, log_q = model.posterior.sample(model.encode(x), eps=eps)
    return log_standard_normal(z) + bernoulli_mlp_log_prob(layers, x, z) - log_q


def vae_log_likelihood(model, x, k=5000, generator=None, eps=None, batch_size=100, sample_batch_size=None,
                       max_block_elements=2**24, workers=1):
    r"""Importance-sampled :math:`\log p_\theta(\mathbf x)` of a :class:`~vae_from_scratch.torch.vae.VAE`
    with ``k`` samples from its encoder, ``(N,)``.

    Unless ``sample_batch_size`` is given it is chosen so that the largest activation of a block
    (``samples x batch x max(width)`` numbers) stays below ``max_block_elements`` (64 MiB in float32).
    ``workers``: threads on a CPU (see :func:`importance_log_likelihood`; ignored on other devices).
    """
    was_training = model.training
    model.eval()
    param = next(model.parameters())
    x = x.to(device=param.device, dtype=param.dtype)
    if sample_batch_size is None:
        width = max(model.data_dim, *model.hidden, 2 * model.latent_dim)
        sample_batch_size = max(1, min(k, max_block_elements // (min(batch_size, len(x)) * width)))
    workers = workers if param.device.type == "cpu" else 1
    try:
        return importance_log_likelihood(lambda xb, e: vae_log_weights(model, xb, e), x, k,
                                         model.latent_dim, generator=generator, eps=eps,
                                         batch_size=batch_size, sample_batch_size=sample_batch_size,
                                         workers=workers)
    finally:
        model.train(was_training)


def optimize_local_gaussian(model, x, steps=300, lr=0.05, n_samples=16, generator=None):
    r"""Per-datapoint variational inference started from the encoder (Cremer et al. 2018, section 3).

    For each row of ``x`` a free diagonal Gaussian :math:`q^*(\mathbf z) = \mathcal N(\mathbf m,
    \operatorname{diag} e^{2\mathbf s})` is initialized at the encoder's output and its own ELBO
    :math:`\mathbb E_{q^*}[\log p_\theta(\mathbf x\mid\mathbf z)] - D_{KL}(q^*\|p(\mathbf z))` is
    maximized with Adam (``steps`` steps, ``n_samples`` reparameterized samples per step). The model's
    weights are not changed. Returns ``(mean, log_std)``, each ``(N, K)``, detached.
    """
    with torch.no_grad():
        mean0, log_std0 = model.encode(x)
    mean = mean0.detach().clone().requires_grad_(True)
    log_std = log_std0.detach().clone().requires_grad_(True)
    optimizer = torch.optim.Adam([mean, log_std], lr=lr)
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        for _ in range(steps):
            z = sample_normal_diag(mean, log_std, generator=generator, sample_shape=(n_samples,))
            local_elbo = bernoulli_log_prob(x, model.decode(z)).mean(0) - kl_normal_standard(mean, log_std)
            optimizer.zero_grad(set_to_none=True)
            (-local_elbo.sum()).backward()  # the data points are independent: one sum, N problems
            optimizer.step()
    finally:
        for p in model.parameters():
            p.requires_grad_(True)
    return mean.detach(), log_std.detach()


@torch.no_grad()
def gaussian_log_weights(model, x, mean, log_std, eps):
    r"""Log-weights :math:`\log p_\theta(\mathbf x,\mathbf z) - \log q(\mathbf z)` for an arbitrary diagonal
    Gaussian proposal ``(mean, log_std)`` (``(B, K)`` each) and noise ``eps`` ``(S, B, K)``: ``(S, B)``."""
    z = sample_normal_diag(mean, log_std, eps=eps)
    return (log_standard_normal(z) + bernoulli_log_prob(x, model.decode(z))
            - log_normal_diag(z, mean, log_std, validate=False))


@torch.no_grad()
def amortization_gap(model, x, k=5000, steps=300, lr=0.05, n_samples=16, generator=None,
                     sample_batch_size=500):
    r"""The decomposition of Cremer et al. (2018) for the rows of ``x``, each term ``(N,)``:

    .. math::
        \underbrace{\log p(\mathbf x) - \mathcal L[q_\phi]}_{\text{inference gap}}
        = \underbrace{\log p(\mathbf x) - \mathcal L[q^*]}_{\text{approximation gap}}
        + \underbrace{\mathcal L[q^*] - \mathcal L[q_\phi]}_{\text{amortization gap}}

    with :math:`q_\phi` the encoder and :math:`q^*` the per-datapoint optimum
    (:func:`optimize_local_gaussian`). Both ELBOs are averaged over ``k`` samples; :math:`\log p(\mathbf x)`
    is importance-sampled with ``k`` samples from :math:`q^*` (the better proposal). Returns a dict with
    keys ``log_px``, ``elbo_optimal``, ``elbo_encoder``, ``approximation_gap``, ``amortization_gap``.
    """
    with torch.enable_grad():
        m_star, s_star = optimize_local_gaussian(model, x, steps, lr, n_samples, generator)
    m_enc, s_enc = model.encode(x)
    K = model.latent_dim
    sums = {"elbo_optimal": 0.0, "elbo_encoder": 0.0}
    lse = None
    for s in range(0, k, sample_batch_size):
        n = min(sample_batch_size, k - s)
        eps = torch.randn(n, x.shape[0], K, generator=generator, device=x.device, dtype=m_enc.dtype)
        w_star = gaussian_log_weights(model, x, m_star, s_star, eps)
        w_enc = gaussian_log_weights(model, x, m_enc, s_enc, eps)
        sums["elbo_optimal"] = sums["elbo_optimal"] + w_star.sum(0)
        sums["elbo_encoder"] = sums["elbo_encoder"] + w_enc.sum(0)
        block = torch.logsumexp(w_star, dim=0)
        lse = block if lse is None else torch.logaddexp(lse, block)
    log_px = lse - math.log(k)
    elbo_opt, elbo_enc = sums["elbo_optimal"] / k, sums["elbo_encoder"] / k
    return {"log_px": log_px, "elbo_optimal": elbo_opt, "elbo_encoder": elbo_enc,
            "approximation_gap": log_px - elbo_opt, "amortization_gap": elbo_opt - elbo_enc}


def _float_dtype(x):
    return x.dtype if x.is_floating_point() else torch.get_default_dtype()
