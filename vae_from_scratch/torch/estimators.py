r"""Monte Carlo gradient estimators in PyTorch: the same names and contracts as
:mod:`vae_from_scratch.numpy.estimators` (per-sample gradients of shape ``(S,) + phi.shape``;
callables receive a stack of ``S`` copies of ``phi`` and broadcast over it), device-agnostic.

For training, use the surrogates directly: the gradient of ``surrogate.mean()`` with respect to the
parameters is the ``S``-sample estimator (e.g. ``(-score_function_surrogate(f, log_q, "leave-one-out")
.mean()).backward()``).

Sources: K&W eqs. 2.20-2.29 and 2.72-2.73; Roeder et al. (2017); Williams (1992).
"""

import torch

__all__ = [
    "stop_gradient",
    "per_sample_gradients",
    "reparam_gradient",
    "elbo_surrogate",
    "elbo_gradient",
    "path_derivative_surrogate",
    "path_derivative_gradient",
    "score_function_surrogate",
    "score_function_gradient",
    "score_function_elbo_gradient",
    "leave_one_out_baseline",
    "sample_bernoulli",
]


def stop_gradient(x):
    r""":math:`\bot(x)`: ``x.detach()``."""
    return x.detach()


def per_sample_gradients(fun, phi, noise):
    r"""Per-sample gradients :math:`\nabla_\phi\,\texttt{fun}(\phi, \texttt{noise}_l)`, shape
    ``(S,) + phi.shape``; ``fun(phis, noise)`` returns ``(S,)`` with entry ``l`` depending only on
    ``phis[s]`` and ``noise[s]`` (one backward pass for all samples)."""
    if not isinstance(phi, torch.Tensor) or not isinstance(noise, torch.Tensor):
        raise ValueError("phi and noise must be torch tensors")
    if noise.dim() == 0:
        raise ValueError("noise needs a leading sample axis (S, ...)")
    S = noise.shape[0]
    phis = phi.detach().expand((S,) + tuple(phi.shape)).clone().requires_grad_(True)
    with torch.enable_grad():
        values = fun(phis, noise)
        if tuple(values.shape) != (S,):
            raise ValueError(f"the function must return one value per sample, shape ({S},); "
                             f"got {tuple(values.shape)}")
        (g,) = torch.autograd.grad(values.sum(), phis, allow_unused=True)
    return torch.zeros_like(phis) if g is None else g


def reparam_gradient(f, sample, phi, eps):
    r""":math:`\nabla_\phi f(\mathbf g(\boldsymbol\epsilon_l, \phi))` per sample (K&W eqs. 2.22-2.24)."""
    return per_sample_gradients(lambda p, e: f(sample(p, e)), phi, eps)


def elbo_surrogate(log_joint, sample, log_q, phi, eps):
    r""":math:`\log p(\mathbf x,\mathbf z_l) - \log q_\phi(\mathbf z_l)` with
    :math:`\mathbf z_l=\mathbf g(\boldsymbol\epsilon_l,\phi)` (K&W eqs. 2.27-2.29); its gradient is the standard
    reparameterization gradient."""
    z = sample(phi, eps)
    return log_joint(z) - log_q(phi, z)


def elbo_gradient(log_joint, sample, log_q, phi, eps):
    r"""Per-sample standard (total-derivative) reparameterization gradients of the ELBO."""
    return per_sample_gradients(lambda p, e: elbo_surrogate(log_joint, sample, log_q, p, e), phi, eps)


def path_derivative_surrogate(log_joint, sample, log_q, phi, eps):
    r""":math:`\log p(\mathbf x,\mathbf z_l) - \log q_{\bot(\phi)}(\mathbf z_l)`: the same value as
    :func:`elbo_surrogate`, with the path-derivative ("sticking the landing") gradient of
    Roeder et al. (2017)."""
    z = sample(phi, eps)
    return log_joint(z) - log_q(stop_gradient(phi), z)


def path_derivative_gradient(log_joint, sample, log_q, phi, eps):
    r"""Per-sample path-derivative gradients of the ELBO; identically zero at the exact posterior."""
    return per_sample_gradients(
        lambda p, e: path_derivative_surrogate(log_joint, sample, log_q, p, e), phi, eps)


def score_function_surrogate(f_values, log_q_values, baseline=None):
    r""":math:`\bot(f(\mathbf z_l) - b_l)\,\log q_\phi(\mathbf z_l)`; ``baseline`` is ``None``, a tensor
    broadcastable to ``(S,)`` or ``"leave-one-out"``."""
    return _centered(f_values.detach(), baseline) * log_q_values


def score_function_gradient(f, log_q, phi, z, baseline=None):
    r"""Per-sample score-function gradients :math:`(f(\mathbf z_l)-b_l)\nabla_\phi\log q_\phi(\mathbf z_l)`
    (K&W eqs. 2.72-2.73); ``z`` is treated as a constant and ``f`` is only evaluated."""
    z = z.detach()
    with torch.no_grad():
        weights = _centered(f(z), baseline)
    return per_sample_gradients(lambda p, zz: weights * log_q(p, zz), phi, z)


def score_function_elbo_gradient(log_joint, log_q, phi, z, baseline=None):
    r"""Score-function gradients of the ELBO, :math:`f = \log p(\mathbf x,\mathbf z) - \log q_\phi(\mathbf z)`
    at the current :math:`\phi`."""
    phis = phi.detach().expand((z.shape[0],) + tuple(phi.shape))
    return score_function_gradient(lambda zz: log_joint(zz) - log_q(phis, zz), log_q, phi, z, baseline)


def leave_one_out_baseline(values):
    r""":math:`b_l = \frac{1}{S-1}\sum_{l'\ne l} f(\mathbf z_{l'})` along axis 0 (no gradient)."""
    if values.dim() == 0 or values.shape[0] < 2:
        raise ValueError("leave_one_out_baseline needs at least 2 samples along axis 0")
    values = values.detach()
    return (values.sum(0, keepdim=True) - values) / (values.shape[0] - 1)


def sample_bernoulli(logits, u=None, generator=None, sample_shape=()):
    r"""Bernoulli samples :math:`[u < \operatorname{sigmoid}(\lambda)]` as floats of the logits' dtype,
    from uniform noise ``u`` or drawn with ``generator`` (shape ``sample_shape + logits.shape``).
    No gradient flows to the logits (the step function has zero derivative almost everywhere)."""
    if u is None:
        u = torch.rand(tuple(sample_shape) + tuple(logits.shape), generator=generator,
                       dtype=logits.dtype, device=logits.device)
    return (u < torch.sigmoid(logits.detach())).to(logits.dtype)


def _centered(values, baseline):
    if baseline is None:
        return values
    if isinstance(baseline, str):
        if baseline != "leave-one-out":
            raise ValueError(f"unknown baseline {baseline!r}; use None, a tensor or 'leave-one-out'")
        return values - leave_one_out_baseline(values)
    return values - torch.as_tensor(baseline, dtype=values.dtype, device=values.device).detach()
