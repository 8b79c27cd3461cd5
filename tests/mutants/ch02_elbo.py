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


def elbo_log_of_density_products(log_likelihood, mean, log_std, eps, kl="sampled"):
    """log p(z) and log q(z) as logs of products of densities: the prior's product underflows for a
    400-dimensional z (log 0 = -inf); the analytic KL likewise takes log prod(sigma^2)."""
    std = np.exp(log_std)
    z = mean + std * eps
    log_lik = log_likelihood(z)
    if kl == "analytic":
        kl_value = 0.5 * (np.sum(mean**2 + std**2 - 1.0, axis=-1) - np.log(np.prod(std**2, axis=-1)))
        return np.mean(log_lik, axis=0) - kl_value
    prior = np.prod(np.exp(-0.5 * z**2) / np.sqrt(2.0 * np.pi), axis=-1)
    q = np.prod(np.exp(-0.5 * eps**2) / (np.sqrt(2.0 * np.pi) * std), axis=-1)
    return np.mean(log_lik + np.log(prior) - np.log(q), axis=0)


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


def kl_log_of_std_ratio_product(mean_q, log_std_q, mean_p, log_std_p):
    """log(prod(sigma_p) / prod(sigma_q)): the product of 784 small sigma_q underflows to 0."""
    std_q, std_p = np.exp(log_std_q), np.exp(log_std_p)
    log_ratio = np.log(np.prod(std_p, axis=-1) / np.prod(std_q, axis=-1))
    return log_ratio + np.sum((std_q**2 + (mean_q - mean_p) ** 2) / (2.0 * std_p**2) - 0.5, axis=-1)


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


def posterior_data_space(x, W, b, log_s):
    """Gaussian conditioning in data space, z | x ~ N(W^T C^-1 (x - b), I - W^T C^-1 W) with
    C = W W^T + s^2 I: right in exact arithmetic, but for small s the covariance is the difference
    of two nearly equal matrices and loses most of its digits."""
    D, K = W.shape
    C = W @ W.T + np.exp(2.0 * log_s) * np.eye(D)
    gain = np.linalg.solve(C, W).T
    return np.dot(x - b, gain.T), np.eye(K) - gain @ W


# --- 2.4 factorized_optimum(x, W, b, log_s) -> (mean, log_std, gap) --------------------------------


def _precision(W, log_s):
    return np.eye(W.shape[1]) + W.T @ W * np.exp(-2.0 * log_s)


def factorized_marginal_variances(x, W, b, log_s):
    """The tempting guess: the posterior's own marginal variances diag(Lambda^-1) (too wide)."""
    precision = _precision(W, log_s)
    cov = np.linalg.inv(precision)
    mean = cov @ W.T @ (x - b) * np.exp(-2.0 * log_s)
    log_std = 0.5 * np.log(np.diag(cov))
    gap = 0.5 * (np.sum(np.log(np.diag(precision))) - np.linalg.slogdet(precision)[1])
    return mean, log_std, gap


def factorized_gap_via_det(x, W, b, log_s):
    """Right q, but the gap from log(prod(diag) / det): det overflows to inf for K = 100."""
    precision = _precision(W, log_s)
    mean = np.linalg.solve(precision, W.T @ (x - b)) * np.exp(-2.0 * log_s)
    diagonal = np.diag(precision)
    return mean, -0.5 * np.log(diagonal), 0.5 * np.log(np.prod(diagonal) / np.linalg.det(precision))


def factorized_zero_gap(x, W, b, log_s):
    """Right q, but claims the gap closes (0): true only for an uncorrelated posterior."""
    precision = _precision(W, log_s)
    mean = np.linalg.solve(precision, W.T @ (x - b)) * np.exp(-2.0 * log_s)
    return mean, -0.5 * np.log(np.diag(precision)), 0.0


def factorized_std_not_log(x, W, b, log_s):
    """Returns the variance 1 / Lambda_kk where the log standard deviation is asked for."""
    precision = _precision(W, log_s)
    mean = np.linalg.solve(precision, W.T @ (x - b)) * np.exp(-2.0 * log_s)
    gap = 0.5 * (np.sum(np.log(np.diag(precision))) - np.linalg.slogdet(precision)[1])
    return mean, 1.0 / np.diag(precision), gap


# --- 2.5 elbo_at_prior(x, W, b, log_s) -----------------------------------------------------------


def elbo_prior_plug_in_mean(x, W, b, log_s):
    """log p(x | z = 0): the likelihood at the prior's mean instead of its average over the prior."""
    D, s2 = W.shape[0], np.exp(2.0 * log_s)
    return -0.5 * D * np.log(2.0 * np.pi * s2) - np.sum((x - b) ** 2, axis=-1) / (2.0 * s2)


def elbo_prior_is_log_marginal(x, W, b, log_s):
    """log p(x) itself: the ELBO at q = p(z) is below it by KL(p(z) || p(z | x))."""
    D = W.shape[0]
    C = W @ W.T + np.exp(2.0 * log_s) * np.eye(D)
    r = x - b
    quad = np.sum(r * np.linalg.solve(C, np.reshape(r, (-1, D)).T).T.reshape(np.shape(r)), axis=-1)
    return -0.5 * (quad + np.linalg.slogdet(C)[1] + D * LOG_2PI)


def elbo_prior_s_not_squared(x, W, b, log_s):
    """Divides the squared residual by 2 s instead of 2 s^2."""
    D, s = W.shape[0], np.exp(log_s)
    return -0.5 * D * np.log(2.0 * np.pi * s**2) - (np.sum((x - b) ** 2, axis=-1) + np.sum(W**2)) / (2.0 * s)


MUTANTS = {
    "2.1": [elbo_log_var_as_log_std, elbo_sum_over_samples, elbo_kl_sign_flip, elbo_forgets_prior,
            elbo_samples_from_prior, elbo_log_of_density_products],
    "2.2": [kl_swapped_arguments, kl_log_var_as_log_std, kl_missing_minus_half, kl_wrong_axis,
            kl_mean_gap_not_scaled, kl_log_of_std_ratio_product],
    "2.3": [posterior_s_not_squared, posterior_forgets_prior, posterior_forgets_bias, posterior_returns_precision,
            posterior_data_space],
    "2.4": [factorized_marginal_variances, factorized_gap_via_det, factorized_zero_gap,
            factorized_std_not_log],
    "2.5": [elbo_prior_plug_in_mean, elbo_prior_is_log_marginal, elbo_prior_s_not_squared],
}
