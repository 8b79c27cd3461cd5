"""Typical wrong answers to exercise set 7 (normalizing flows); each must score less than full marks."""

import autograd.numpy as np
import numpy as onp

# --- 7.1 planar_log_det(u, w, b, z) -----------------------------------------------------------------


def planar_no_abs(u, w, b, z):
    """log(1 + psi.u) without the absolute value: NaN where the determinant is negative."""
    t = np.tanh(np.sum(w * z, axis=-1) + b)
    return np.log(1.0 + (1.0 - t**2) * np.sum(w * u, axis=-1))


def planar_tanh_instead_of_derivative(u, w, b, z):
    """Uses h(a) = tanh(a) where psi needs h'(a) = 1 - tanh(a)^2."""
    t = np.tanh(np.sum(w * z, axis=-1) + b)
    return np.log(np.abs(1.0 + t * np.sum(w * u, axis=-1)))


def planar_first_axis(u, w, b, z):
    """Sums over the first axis of z (works for a single z, not for a batch)."""
    t = np.tanh(np.sum(w * z, axis=0) + b)
    return np.log(np.abs(1.0 + (1.0 - t**2) * np.sum(w * u, axis=-1)))


# --- 7.2 planar_u_hat(u, w) -------------------------------------------------------------------------


def u_hat_norm_not_squared(u, w):
    """Divides by ||w|| instead of ||w||^2 (a mistake many public implementations made)."""
    wu = np.dot(w, u)
    return u + (-1.0 + np.logaddexp(0.0, wu) - wu) * w / np.sqrt(np.dot(w, w))


def u_hat_without_minus_one(u, w):
    """Uses m(a) = softplus(a) instead of -1 + softplus(a)."""
    wu = np.dot(w, u)
    return u + (np.logaddexp(0.0, wu) - wu) * w / np.dot(w, w)


def u_hat_unconstrained(u, w):
    """Returns u itself (no constraint)."""
    return u


# --- 7.3 made_masks_for(K, hidden) ------------------------------------------------------------------


def _masks_from(degrees, strict_output=True):
    masks = [(above[None, :] >= below[:, None]).astype(float) for below, above in zip(degrees[:-1], degrees[1:])]
    if strict_output:
        masks.append((degrees[0][None, :] > degrees[-1][:, None]).astype(float))
    else:
        masks.append((degrees[0][None, :] >= degrees[-1][:, None]).astype(float))
    return masks


def made_output_mask_not_strict(K, hidden):
    """Uses >= in the output mask too: output d sees input d (diagonal of the Jacobian nonzero)."""
    degrees = [onp.arange(1, K + 1)] + [1 + onp.arange(h) % (K - 1) for h in hidden]
    return _masks_from(degrees, strict_output=False)


def made_degrees_skip_a_value(K, hidden):
    """Hidden degrees cycle through 1..K-2 only: degree K-1 never appears, so output K cannot see input K-1."""
    degrees = [onp.arange(1, K + 1)] + [1 + onp.arange(h) % max(K - 2, 1) for h in hidden]
    return _masks_from(degrees)


def made_degrees_up_to_K(K, hidden):
    """Hidden degrees cycle through 1..K: units of degree K are connected to no output (wasted),
    and the rule differs from the stated one."""
    degrees = [onp.arange(1, K + 1)] + [1 + onp.arange(h) % K for h in hidden]
    return _masks_from(degrees)


# --- 7.4 iaf_gated_step(z, m, s, forget_bias) -------------------------------------------------------


def iaf_log_det_sign_flip(z, m, s, forget_bias=1.0):
    """Returns -sum(log sigma)."""
    g = s + forget_bias
    sigma = 1.0 / (1.0 + np.exp(-g))
    return sigma * z + (1.0 - sigma) * m, np.sum(np.logaddexp(0.0, -g), axis=-1)


def iaf_log_of_gate_without_sigmoid(z, m, s, forget_bias=1.0):
    """Takes log(s + forget_bias) as the log-determinant (the sigmoid forgotten in the log)."""
    g = s + forget_bias
    sigma = 1.0 / (1.0 + np.exp(-g))
    return sigma * z + (1.0 - sigma) * m, np.sum(np.log(g), axis=-1)


def iaf_naive_log_sigmoid(z, m, s, forget_bias=1.0):
    """log(sigmoid(g)) computed naively: -inf when sigmoid(g) rounds to 0."""
    g = s + forget_bias
    sigma = 1.0 / (1.0 + np.exp(-g))
    return sigma * z + (1.0 - sigma) * m, np.sum(np.log(sigma), axis=-1)


def iaf_mixes_the_wrong_way(z, m, s, forget_bias=1.0):
    """z_new = (1 - sigma) z + sigma m (gate on the wrong term)."""
    g = s + forget_bias
    sigma = 1.0 / (1.0 + np.exp(-g))
    return (1.0 - sigma) * z + sigma * m, np.sum(-np.logaddexp(0.0, -g), axis=-1)


MUTANTS = {
    "7.1": [planar_no_abs, planar_tanh_instead_of_derivative, planar_first_axis],
    "7.2": [u_hat_norm_not_squared, u_hat_without_minus_one, u_hat_unconstrained],
    "7.3": [made_output_mask_not_strict, made_degrees_skip_a_value, made_degrees_up_to_K],
    "7.4": [iaf_log_det_sign_flip, iaf_log_of_gate_without_sigmoid, iaf_naive_log_sigmoid,
            iaf_mixes_the_wrong_way],
}
