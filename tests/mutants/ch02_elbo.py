"""Typical wrong answers to exercise set 2 (the ELBO); each must score less than full marks."""

import autograd.numpy as np
import numpy as onp

LOG_2PI = float(onp.log(2.0 * onp.pi))


def _log_normal(z, mean, std):
    return -np.sum(np.log(std) + 0.5 * LOG_2PI + 0.5 * ((z - mean) / std) ** 2, axis=-1)


def _kl_std_normal(mean, std):
    return np.sum(0.5 * (mean**2 + std**2 - 1.0) - np.log(std), axis=-1)


# --- 2.1 elbo_normal_diag(log_likelihood, mean, log_std, eps, kl="sampled") -----------------------


def elbo_log_var_as_log_std(log_likelihood, mean, log_std, eps, kl="sampled"):
    """Reads log_std as a log-variance: sigma = exp(log_std / 2)."""
    std = np.exp(0.5 * log_std)
    z = mean + std * eps
    if kl == "analytic":
        return np.mean(log_likelihood(z), axis=0) - _kl_std_normal(mean, std)
    return np.mean(log_likelihood(z) + _log_normal(z, 0.0, 1.0) - _log_normal(z, mean, std), axis=0)


def elbo_sum_over_samples(log_likelihood, mean, log_std, eps, kl="sampled"):
    """Sums the per-sample terms instead of averaging them."""
    std = np.exp(log_std)
    z = mean + std * eps
    if kl == "analytic":
        return np.sum(log_likelihood(z), axis=0) - _kl_std_normal(mean, std)
    return np.sum(log_likelihood(z) + _log_normal(z, 0.0, 1.0) - _log_normal(z, mean, std), axis=0)


def elbo_kl_sign_flip(log_likelihood, mean, log_std, eps, kl="sampled"):
    """Adds the KL term instead of subtracting it (both modes)."""
    std = np.exp(log_std)
    z = mean + std * eps
    if kl == "analytic":
        return np.mean(log_likelihood(z), axis=0) + _kl_std_normal(mean, std)
    return np.mean(log_likelihood(z) - _log_normal(z, 0.0, 1.0) + _log_normal(z, mean, std), axis=0)


def elbo_forgets_prior(log_likelihood, mean, log_std, eps, kl="sampled"):
    """Sampled mode without log p(z); analytic mode without the KL (a plain reconstruction term)."""
    std = np.exp(log_std)
    z = mean + std * eps
    if kl == "analytic":
        return np.mean(log_likelihood(z), axis=0)
    return np.mean(log_likelihood(z) - _log_normal(z, mean, std), axis=0)


def elbo_samples_from_prior(log_likelihood, mean, log_std, eps, kl="sampled"):
    """Evaluates the terms at the noise itself (z = eps, a sample of the prior) instead of a sample of q."""
    std = np.exp(log_std)
    z = eps
    if kl == "analytic":
        return np.mean(log_likelihood(z), axis=0) - _kl_std_normal(mean, std)
    return np.mean(log_likelihood(z) + _log_normal(z, 0.0, 1.0) - _log_normal(z, mean, std), axis=0)


# --- 2.2 kl_normal_diag(mean_q, log_std_q, mean_p, log_std_p) -------------------------------------


def kl_swapped_arguments(mean_q, log_std_q, mean_p, log_std_p):
    """Computes KL(p || q) instead of KL(q || p)."""
    ratio = np.exp(2.0 * (log_std_p - log_std_q))
    return np.sum(log_std_q - log_std_p + 0.5 * (ratio + (mean_p - mean_q) ** 2 * np.exp(-2.0 * log_std_q) - 1.0),
                  axis=-1)


def kl_log_var_as_log_std(mean_q, log_std_q, mean_p, log_std_p):
    """Reads the log standard deviations as log-variances."""
    ratio = np.exp(log_std_q - log_std_p)
    return np.sum(0.5 * (log_std_p - log_std_q) + 0.5 * (ratio + (mean_q - mean_p) ** 2 * np.exp(-log_std_p) - 1.0),
                  axis=-1)


def kl_missing_minus_half(mean_q, log_std_q, mean_p, log_std_p):
    """Forgets the constant -1/2 per dimension."""
    ratio = np.exp(2.0 * (log_std_q - log_std_p))
    return np.sum(log_std_p - log_std_q + 0.5 * (ratio + (mean_q - mean_p) ** 2 * np.exp(-2.0 * log_std_p)), axis=-1)


def kl_wrong_axis(mean_q, log_std_q, mean_p, log_std_p):
    """Sums over the first axis instead of the event axis."""
    ratio = np.exp(2.0 * (log_std_q - log_std_p))
    terms = log_std_p - log_std_q + 0.5 * (ratio + (mean_q - mean_p) ** 2 * np.exp(-2.0 * log_std_p) - 1.0)
    return np.sum(terms, axis=0)


def kl_mean_gap_not_scaled(mean_q, log_std_q, mean_p, log_std_p):
    """Forgets to divide the squared mean difference by the prior variance."""
    ratio = np.exp(2.0 * (log_std_q - log_std_p))
    return np.sum(log_std_p - log_std_q + 0.5 * (ratio + (mean_q - mean_p) ** 2 - 1.0), axis=-1)


# --- 2.3 posterior(x, W, b, log_s) -------------------------------------------------------------------


def posterior_s_not_squared(x, W, b, log_s):
    """Divides by s instead of s^2."""
    K = W.shape[1]
    cov = np.linalg.inv(np.eye(K) + np.dot(W.T, W) * np.exp(-log_s))
    return np.dot(x - b, np.dot(W, cov)) * np.exp(-log_s), cov


def posterior_forgets_prior(x, W, b, log_s):
    """Drops the prior's identity from the precision: the maximum-likelihood solution, not the posterior."""
    cov = np.linalg.inv(np.dot(W.T, W) * np.exp(-2.0 * log_s))
    return np.dot(x - b, np.dot(W, cov)) * np.exp(-2.0 * log_s), cov


def posterior_forgets_bias(x, W, b, log_s):
    """Uses x instead of x - b in the mean."""
    K = W.shape[1]
    cov = np.linalg.inv(np.eye(K) + np.dot(W.T, W) * np.exp(-2.0 * log_s))
    return np.dot(x, np.dot(W, cov)) * np.exp(-2.0 * log_s), cov


def posterior_returns_precision(x, W, b, log_s):
    """Returns the precision matrix where the covariance is asked for."""
    K = W.shape[1]
    precision = np.eye(K) + np.dot(W.T, W) * np.exp(-2.0 * log_s)
    cov = np.linalg.inv(precision)
    return np.dot(x - b, np.dot(W, cov)) * np.exp(-2.0 * log_s), precision


MUTANTS = {
    "2.1": [elbo_log_var_as_log_std, elbo_sum_over_samples, elbo_kl_sign_flip, elbo_forgets_prior,
            elbo_samples_from_prior],
    "2.2": [kl_swapped_arguments, kl_log_var_as_log_std, kl_missing_minus_half, kl_wrong_axis,
            kl_mean_gap_not_scaled],
    "2.3": [posterior_s_not_squared, posterior_forgets_prior, posterior_forgets_bias, posterior_returns_precision],
}
