"""Typical wrong answers to exercise set 0 (distributions); each must score less than full marks."""

import autograd.numpy as np
import numpy as onp

LOG_2PI = float(onp.log(2.0 * onp.pi))

# --- 0.1 log_normal_diag(x, mean, log_std) -------------------------------------------------------


def log_var_as_log_std(x, mean, log_std):
    """Treats the parameter as a log-variance: sigma = exp(log_std / 2)."""
    z = (x - mean) * np.exp(-log_std / 2.0)
    return -np.sum(log_std / 2.0 + 0.5 * LOG_2PI + 0.5 * z**2, axis=-1)


def gaussian_wrong_axis(x, mean, log_std):
    """Sums over the first axis instead of the event axis."""
    z = (x - mean) * np.exp(-log_std)
    return -np.sum(log_std + 0.5 * LOG_2PI + 0.5 * z**2, axis=0)


def missing_log_2pi(x, mean, log_std):
    """Forgets the normalizing constant (1/2) log(2 pi)."""
    z = (x - mean) * np.exp(-log_std)
    return -np.sum(log_std + 0.5 * z**2, axis=-1)


def gaussian_mean_not_sum(x, mean, log_std):
    """Averages over the event axis instead of summing."""
    z = (x - mean) * np.exp(-log_std)
    return -np.mean(log_std + 0.5 * LOG_2PI + 0.5 * z**2, axis=-1)


def gaussian_plain_numpy(x, mean, log_std):
    """Right values, but plain NumPy: autograd cannot differentiate it."""
    z = (onp.asarray(x) - onp.asarray(mean)) / onp.exp(onp.asarray(log_std, dtype=float))
    return -onp.sum(onp.asarray(log_std, dtype=float) + 0.5 * LOG_2PI + 0.5 * z**2, axis=-1)


def gaussian_sign_flip(x, mean, log_std):
    """Adds log sigma instead of subtracting it."""
    z = (x - mean) * np.exp(-log_std)
    return np.sum(log_std - 0.5 * LOG_2PI - 0.5 * z**2, axis=-1)


def gaussian_log_of_product(x, mean, log_std):
    """The log of the product of the per-dimension densities: underflows to log(0) in high dimension."""
    sigma = np.exp(log_std)
    densities = np.exp(-0.5 * ((x - mean) / sigma) ** 2) / (np.sqrt(2.0 * np.pi) * sigma)
    return np.log(np.prod(densities, axis=-1))


# --- 0.2 bernoulli_log_likelihood(x, logits) ----------------------------------------------------


def naive_sigmoid_log(x, logits):
    """The textbook formula with sigmoid then log: log(0) = -inf at extreme logits."""
    p = 1.0 / (1.0 + np.exp(-logits))
    return np.sum(x * np.log(p) + (1.0 - x) * np.log(1.0 - p), axis=-1)


def half_stable_log1p_exp(x, logits):
    """x * l - log(1 + exp(l)) with log1p: exp overflows to inf for l = 1e4."""
    return np.sum(x * logits - np.log1p(np.exp(logits)), axis=-1)


def swapped_classes(x, logits):
    """Uses sigmoid(logits) as the probability of x = 0."""
    return np.sum((1.0 - x) * logits - np.logaddexp(0.0, logits), axis=-1)


def bernoulli_mean_not_sum(x, logits):
    """Averages over the pixels instead of summing."""
    return np.mean(x * logits - np.logaddexp(0.0, logits), axis=-1)


def bernoulli_wrong_axis(x, logits):
    """Sums over the first axis."""
    return np.sum(x * logits - np.logaddexp(0.0, logits), axis=0)


def bernoulli_log_of_product(x, logits):
    """Stable per-pixel probabilities, but the log of their product: underflows for 784 pixels."""
    log_p = np.where(x == 1, -np.logaddexp(0.0, -logits), -np.logaddexp(0.0, logits))
    return np.log(np.prod(np.exp(log_p), axis=-1))


# --- 0.3 kl_normal_standard(mean, log_std) ------------------------------------------------------


def kl_sign_flip(mean, log_std):
    """Returns -KL (e.g. copied the ELBO's KL term with its sign)."""
    return -0.5 * np.sum(mean**2 + np.exp(2.0 * log_std) - 1.0 - 2.0 * log_std, axis=-1)


def kl_log_var_as_log_std(mean, log_std):
    """Treats the parameter as a log-variance: sigma^2 = exp(log_std)."""
    return 0.5 * np.sum(mean**2 + np.exp(log_std) - 1.0 - log_std, axis=-1)


def kl_missing_minus_one(mean, log_std):
    """Forgets the -1 per dimension."""
    return 0.5 * np.sum(mean**2 + np.exp(2.0 * log_std) - 2.0 * log_std, axis=-1)


def kl_mean_not_sum(mean, log_std):
    """Averages over the latent dimensions instead of summing."""
    return 0.5 * np.mean(mean**2 + np.exp(2.0 * log_std) - 1.0 - 2.0 * log_std, axis=-1)


def kl_sum_all_axes(mean, log_std):
    """Sums over every axis: one number for the whole batch."""
    return 0.5 * np.sum(mean**2 + np.exp(2.0 * log_std) - 1.0 - 2.0 * log_std)


def kl_log_of_product(mean, log_std):
    """log prod(sigma^2) instead of sum(2 log_std): the product underflows for a narrow q in 784-D."""
    sigma2 = np.exp(2.0 * log_std)
    return 0.5 * (np.sum(mean**2 + sigma2 - 1.0, axis=-1) - np.log(np.prod(sigma2, axis=-1)))


MUTANTS = {
    "0.1": [log_var_as_log_std, gaussian_wrong_axis, missing_log_2pi, gaussian_mean_not_sum,
            gaussian_plain_numpy, gaussian_sign_flip, gaussian_log_of_product],
    "0.2": [naive_sigmoid_log, half_stable_log1p_exp, swapped_classes, bernoulli_mean_not_sum,
            bernoulli_wrong_axis, bernoulli_log_of_product],
    "0.3": [kl_sign_flip, kl_log_var_as_log_std, kl_missing_minus_one, kl_mean_not_sum,
            kl_sum_all_axes, kl_log_of_product],
}
