"""Typical wrong answers to exercise set 4 (score-function gradients); each must score less than full marks."""

import autograd.numpy as np
from autograd import grad


def _per_sample(weights, log_q, phi, z, transform=lambda lq: lq):
    S = np.shape(z)[0]
    phis = np.tile(phi, (S,) + (1,) * np.ndim(phi))
    return grad(lambda p: np.sum(weights * transform(log_q(p, z))))(phis)


# --- 4.1 score_function_gradient(f, log_q, phi, z, baseline=None) ----------------------------------


def sf_baseline_added(f, log_q, phi, z, baseline=None):
    """Adds the baseline instead of subtracting it."""
    weights = f(z) if baseline is None else f(z) + baseline
    return _per_sample(weights, log_q, phi, z)


def sf_density_not_log(f, log_q, phi, z, baseline=None):
    """Differentiates q instead of log q (forgets the log-derivative trick's log)."""
    weights = f(z) if baseline is None else f(z) - baseline
    return _per_sample(weights, log_q, phi, z, transform=np.exp)


def sf_sign_flip(f, log_q, phi, z, baseline=None):
    """Uses minus the score."""
    weights = f(z) if baseline is None else f(z) - baseline
    return -_per_sample(weights, log_q, phi, z)


def sf_ignores_baseline(f, log_q, phi, z, baseline=None):
    """Accepts a baseline and never uses it."""
    return _per_sample(f(z), log_q, phi, z)


def sf_mean_over_samples(f, log_q, phi, z, baseline=None):
    """Returns the S-sample average instead of one gradient per sample."""
    weights = f(z) if baseline is None else f(z) - baseline
    return np.mean(_per_sample(weights, log_q, phi, z), axis=0)


def sf_density_ratio(f, log_q, phi, z, baseline=None):
    """Writes the score as grad q / q: exact in low dimension, 0 / 0 once q(z) underflows."""
    weights = f(z) if baseline is None else f(z) - baseline
    S = np.shape(z)[0]
    phis = np.tile(phi, (S,) + (1,) * np.ndim(phi))
    grad_q = grad(lambda p: np.sum(np.exp(log_q(p, z))))(phis)
    q = np.exp(log_q(phis, z))
    shape = (S,) + (1,) * np.ndim(phi)
    return np.reshape(weights, shape) * grad_q / np.reshape(q, shape)


# --- 4.2 leave_one_out_baseline(values) -----------------------------------------------------------


def loo_includes_itself(values):
    """The plain mean of all samples, the sample itself included."""
    return np.mean(values, axis=0) * np.ones(np.shape(values))


def loo_divides_by_S(values):
    """Leaves the sample out of the sum but divides by S instead of S - 1."""
    return (np.sum(values, axis=0) - values) / np.shape(values)[0]


def loo_wrong_axis(values):
    """Leaves one out along the last axis instead of the sample axis 0."""
    n = np.shape(values)[-1]
    return (np.sum(values, axis=-1, keepdims=True) - values) / (n - 1)


def loo_sum_not_mean(values):
    """The sum of the other values, not their mean."""
    return np.sum(values, axis=0) - values


# --- 4.3 score_function_variance(mu, c) ----------------------------------------------------------


def variance_chapter_formula(mu, c):
    """Quotes the chapter's 3 + 1.5 K, which holds only at mu = 0, c = 1."""
    return 3.0 + 1.5 * np.size(mu)


def variance_without_other_offsets(mu, c):
    """Forgets that the other coordinates' offsets a_j = mu_j - c_j add noise too."""
    a = np.asarray(mu) - np.asarray(c)
    return 2.5 + 2.0 * a[0] ** 2 + 0.5 * (np.size(a) - 1)


def variance_first_term_wrong(mu, c):
    """Treats the first coordinate's term like the others (misses E[eps^6] = 15): 1.5 + 3 a_1^2 + ..."""
    a = np.asarray(mu) - np.asarray(c)
    return 1.5 + 3.0 * a[0] ** 2 + 0.5 * (np.size(a) - 1) + np.sum(a[1:] ** 2) + 0.5


MUTANTS = {
    "4.1": [sf_baseline_added, sf_density_not_log, sf_sign_flip, sf_ignores_baseline, sf_mean_over_samples,
            sf_density_ratio],
    "4.2": [loo_includes_itself, loo_divides_by_S, loo_wrong_axis, loo_sum_not_mean],
    "4.3": [variance_chapter_formula, variance_without_other_offsets, variance_first_term_wrong],
}
