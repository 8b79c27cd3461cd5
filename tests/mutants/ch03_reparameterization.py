"""Typical wrong answers to exercise set 3 (reparameterization); each must score less than full marks."""

import autograd.numpy as np
import numpy as onp
from autograd.tracer import getval

LOG_2PI = float(onp.log(2.0 * onp.pi))


def _log_std_normal(eps):
    return -0.5 * np.sum(eps**2 + LOG_2PI, axis=-1)


# --- 3.1 rsample_normal_diag(mean, log_std, eps) -------------------------------------------------


def diag_log_var_as_log_std(mean, log_std, eps):
    """Treats log_std as a log-variance: sigma = exp(log_std / 2)."""
    z = mean + np.exp(0.5 * log_std) * eps
    return z, _log_std_normal(eps) - 0.5 * np.sum(log_std, axis=-1)


def diag_log_det_sign_flip(mean, log_std, eps):
    """Adds the log-determinant instead of subtracting it."""
    return mean + np.exp(log_std) * eps, _log_std_normal(eps) + np.sum(log_std, axis=-1)


def diag_forgets_jacobian(mean, log_std, eps):
    """Uses the noise density as the density of z (no change-of-variables term)."""
    return mean + np.exp(log_std) * eps, _log_std_normal(eps)


def diag_wrong_axis(mean, log_std, eps):
    """Sums over the first axis instead of the event axis."""
    return mean + np.exp(log_std) * eps, -0.5 * np.sum(eps**2 + LOG_2PI, axis=0) - np.sum(log_std, axis=0)


def diag_log_det_of_product(mean, log_std, eps):
    """log|det| as the log of the product of the sigmas: underflows to log(0) for 500 small sigmas."""
    z = mean + np.exp(log_std) * eps
    log_q = np.sum(-0.5 * eps**2 - 0.5 * np.log(2.0 * np.pi), axis=-1)
    return z, log_q - np.log(np.prod(np.exp(log_std), axis=-1))


# --- 3.2 full_covariance_factor(L_prime, log_std) ------------------------------------------------


def factor_no_mask(L_prime, log_std):
    """Forgets the mask: L' leaks above and on the diagonal."""
    K = np.shape(L_prime)[-1]
    return L_prime + np.exp(log_std)[..., :, None] * np.eye(K), np.sum(log_std, axis=-1)


def factor_mask_includes_diagonal(L_prime, log_std):
    """Keeps the diagonal of L' (np.tril(., 0)): the diagonal becomes L'_ii + sigma_i."""
    K = np.shape(L_prime)[-1]
    return np.tril(np.ones((K, K))) * L_prime + np.exp(log_std)[..., :, None] * np.eye(K), \
        np.sum(log_std, axis=-1)


def factor_log_det_of_covariance(L_prime, log_std):
    """Right factor, but returns log det(L L^T) = 2 sum(log_std)."""
    K = np.shape(L_prime)[-1]
    L = np.tril(np.ones((K, K)), -1) * L_prime + np.exp(log_std)[..., :, None] * np.eye(K)
    return L, 2.0 * np.sum(log_std, axis=-1)


def factor_upper_mask(L_prime, log_std):
    """Masks the wrong triangle: an upper-triangular factor."""
    K = np.shape(L_prime)[-1]
    return np.triu(np.ones((K, K)), 1) * L_prime + np.exp(log_std)[..., :, None] * np.eye(K), \
        np.sum(log_std, axis=-1)


def factor_in_place(L_prime, log_std):
    """Right values through in-place assignment: autograd cannot differentiate it."""
    L_prime = onp.asarray(L_prime, dtype=float)
    log_std = onp.asarray(log_std, dtype=float)
    K = L_prime.shape[-1]
    L = onp.zeros(L_prime.shape)
    rows, cols = onp.tril_indices(K, -1)
    L[..., rows, cols] = L_prime[..., rows, cols]
    L[..., onp.arange(K), onp.arange(K)] = onp.exp(log_std)
    return L, onp.sum(log_std, axis=-1)


def factor_log_det_via_det(L_prime, log_std):
    """Right L, but log_det = log(det(L)): det underflows to 0 for a 300 x 300 factor."""
    K = L_prime.shape[-1]
    L = np.tril(np.ones((K, K)), -1) * L_prime + np.exp(log_std)[..., :, None] * np.eye(K)
    return L, np.log(np.linalg.det(L))


# --- 3.3 path_derivative_surrogate(log_joint, sample, log_q, phi, eps) ------------------------------


def pd_forgets_stop_gradient(log_joint, sample, log_q, phi, eps):
    """The standard estimator: no stop-gradient, so the score term stays."""
    z = sample(phi, eps)
    return log_joint(z) - log_q(phi, z)


def pd_stops_everything(log_joint, sample, log_q, phi, eps):
    """Stops the gradient on z as well: log q carries no gradient at all (biased)."""
    z = sample(phi, eps)
    return log_joint(z) - log_q(getval(phi), getval(z))


def pd_stops_the_sample(log_joint, sample, log_q, phi, eps):
    """Stops the gradient on z instead of on the parameters: keeps the score term, drops the path."""
    z = sample(phi, eps)
    return log_joint(z) - log_q(phi, getval(z))


def pd_sign_flip(log_joint, sample, log_q, phi, eps):
    """Returns log q - log p (the negative ELBO estimate)."""
    z = sample(phi, eps)
    return log_q(getval(phi), z) - log_joint(z)


# --- 3.4 kl_normal_full_standard(mean, L) -------------------------------------------------------


def kl_full_trace_of_factor(mean, L):
    """tr(L) instead of tr(L L^T)."""
    K = L.shape[-1]
    log_det = np.sum(np.log(np.abs(np.diagonal(L, axis1=-2, axis2=-1))), axis=-1)
    return 0.5 * (np.trace(L, axis1=-2, axis2=-1) + np.sum(mean**2, axis=-1) - K) - log_det


def kl_full_log_of_det(mean, L):
    """log|det L| as log(det(L)): fine for K = 3, -inf (so KL = +inf) for K = 300."""
    K = L.shape[-1]
    return 0.5 * (np.sum(L**2, axis=(-2, -1)) + np.sum(mean**2, axis=-1) - K) - np.log(np.linalg.det(L))


def kl_full_half_log_det(mean, L):
    """Halves the log-determinant term (log|det L| mistaken for log det of the covariance)."""
    K = L.shape[-1]
    log_det = np.sum(np.log(np.abs(np.diagonal(L, axis1=-2, axis2=-1))), axis=-1)
    return 0.5 * (np.sum(L**2, axis=(-2, -1)) + np.sum(mean**2, axis=-1) - K) - 0.5 * log_det


def kl_full_forgets_minus_k(mean, L):
    """Forgets the -K."""
    log_det = np.sum(np.log(np.abs(np.diagonal(L, axis1=-2, axis2=-1))), axis=-1)
    return 0.5 * (np.sum(L**2, axis=(-2, -1)) + np.sum(mean**2, axis=-1)) - log_det


# --- 3.5 reparam_gradient_variance(mean, log_std) -------------------------------------------------


def variance_forgets_mean_term(mean, log_std):
    """Drops the 4 mean^2 sigma^2 in the log_std variance (treats z as if it had mean zero)."""
    var = np.exp(2.0 * log_std)
    return 4.0 * var, 8.0 * var**2


def variance_eps_squared_one(mean, log_std):
    """Uses Var(eps^2) = 1 instead of 2."""
    var = np.exp(2.0 * log_std)
    return 4.0 * var, 4.0 * mean**2 * var + 4.0 * var**2


def variance_in_sigma(mean, log_std):
    """Differentiates with respect to sigma instead of log sigma (no factor sigma)."""
    var = np.exp(2.0 * log_std)
    return 4.0 * var, 4.0 * mean**2 + 8.0 * var


def variance_returns_std(mean, log_std):
    """Returns standard deviations instead of variances."""
    var = np.exp(2.0 * log_std)
    return 2.0 * np.sqrt(var), np.sqrt(4.0 * mean**2 * var + 8.0 * var**2)


MUTANTS = {
    "3.1": [diag_log_var_as_log_std, diag_log_det_sign_flip, diag_forgets_jacobian, diag_wrong_axis,
            diag_log_det_of_product],
    "3.2": [factor_no_mask, factor_mask_includes_diagonal, factor_log_det_of_covariance, factor_upper_mask,
            factor_in_place, factor_log_det_via_det],
    "3.3": [pd_forgets_stop_gradient, pd_stops_everything, pd_stops_the_sample, pd_sign_flip],
    "3.4": [kl_full_trace_of_factor, kl_full_log_of_det, kl_full_half_log_det, kl_full_forgets_minus_k],
    "3.5": [variance_forgets_mean_term, variance_eps_squared_one, variance_in_sigma, variance_returns_std],
}
