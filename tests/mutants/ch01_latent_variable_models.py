"""Typical wrong answers to exercise set 1 (latent-variable models); each must score less than full marks."""

import numpy as onp
import scipy.special
import scipy.stats

LOG_2PI = float(onp.log(2.0 * onp.pi))


def _cov(W, log_s):
    return W @ W.T + onp.exp(2.0 * log_s) * onp.eye(W.shape[0])


# --- 1.1 testbed_log_marginal(x, W, b, log_s) --------------------------------------------------


def log_of_det(x, W, b, log_s):
    """Textbook formula with log(det(C)): det underflows to 0.0 for D = 784 (log 0 = -inf)."""
    C = _cov(W, log_s)
    r = x - b
    quad = onp.sum(r * onp.linalg.solve(C, r.T).T, axis=-1)
    return -0.5 * (quad + onp.log(onp.linalg.det(C)) + W.shape[0] * LOG_2PI)


def log_of_density(x, W, b, log_s):
    """The log of scipy's density (pdf, not logpdf): the density underflows for D = 784."""
    return onp.log(scipy.stats.multivariate_normal(b, _cov(W, log_s)).pdf(x))


def s_not_squared(x, W, b, log_s):
    """Covariance W W^T + s I instead of W W^T + s^2 I."""
    C = W @ W.T + onp.exp(log_s) * onp.eye(W.shape[0])
    return scipy.stats.multivariate_normal(b, C).logpdf(x)


def forgets_the_latent(x, W, b, log_s):
    """Covariance s^2 I: the marginal of the noise alone, without W W^T."""
    return scipy.stats.norm.logpdf(x, loc=b, scale=onp.exp(log_s)).sum(-1)


# --- 1.2 naive_log_marginal(x, W, b, log_s, z) -------------------------------------------------


def _log_lik(x, W, b, log_s, z):
    means = z @ W.T + b
    return scipy.stats.norm.logpdf(x[None], loc=means[:, None], scale=onp.exp(log_s)).sum(-1)  # (S, N)


def naive_exp_then_log(x, W, b, log_s, z):
    """log(mean(exp(log-likelihoods))): every likelihood underflows to 0.0 for D = 784."""
    return onp.log(onp.mean(onp.exp(_log_lik(x, W, b, log_s, z)), axis=0))


def mean_of_log_likelihoods(x, W, b, log_s, z):
    """The mean of the log-likelihoods: a different (smaller) number, log taken before averaging."""
    return onp.mean(_log_lik(x, W, b, log_s, z), axis=0)


def forgets_log_s(x, W, b, log_s, z):
    """logsumexp without the - log S: the log of a sum, not of a mean."""
    return scipy.special.logsumexp(_log_lik(x, W, b, log_s, z), axis=0)


def averages_over_data(x, W, b, log_s, z):
    """logsumexp over the data axis instead of the sample axis."""
    values = scipy.special.logsumexp(_log_lik(x, W, b, log_s, z), axis=1) - onp.log(len(x))
    return values[: len(x)] if len(values) >= len(x) else onp.resize(values, len(x))


# --- 1.3 log_second_moment_ratio(x, W, b, log_s) ------------------------------------------------


def _logpdf(x, W, b, s2):
    return scipy.stats.multivariate_normal(b, W @ W.T + s2 * onp.eye(W.shape[0])).logpdf(x)


def ratio_forgets_constant(x, W, b, log_s):
    """Drops the (4 pi s^2)^(-D/2) in p(x|z)^2 = (4 pi s^2)^(-D/2) N(x; W z + b, s^2/2 I)."""
    s2 = onp.exp(2.0 * log_s)
    return _logpdf(x, W, b, s2 / 2.0) - 2.0 * _logpdf(x, W, b, s2)


def ratio_keeps_full_noise(x, W, b, log_s):
    """Uses s^2 instead of s^2 / 2 for the variance of the squared likelihood."""
    D, s2 = W.shape[0], onp.exp(2.0 * log_s)
    return -0.5 * D * onp.log(4.0 * onp.pi * s2) + _logpdf(x, W, b, s2) - 2.0 * _logpdf(x, W, b, s2)


def ratio_returns_v(x, W, b, log_s):
    """Returns v = E[p^2] / p^2 - 1 itself instead of log(1 + v)."""
    D, s2 = W.shape[0], onp.exp(2.0 * log_s)
    log_ratio = -0.5 * D * onp.log(4.0 * onp.pi * s2) + _logpdf(x, W, b, s2 / 2.0) - 2.0 * _logpdf(x, W, b, s2)
    return onp.expm1(log_ratio)


def ratio_of_densities(x, W, b, log_s):
    """Right formula, computed with densities: 0 / 0 for D = 784."""
    D, s2 = W.shape[0], onp.exp(2.0 * log_s)
    second = (4.0 * onp.pi * s2) ** (-D / 2) * onp.exp(_logpdf(x, W, b, s2 / 2.0))
    return onp.log(second / onp.exp(_logpdf(x, W, b, s2)) ** 2)


MUTANTS = {
    "1.1": [log_of_det, log_of_density, s_not_squared, forgets_the_latent],
    "1.2": [naive_exp_then_log, mean_of_log_likelihoods, forgets_log_s, averages_over_data],
    "1.3": [ratio_forgets_constant, ratio_keeps_full_noise, ratio_returns_v, ratio_of_densities],
}
