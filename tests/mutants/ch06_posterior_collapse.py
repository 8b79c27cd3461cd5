"""Typical wrong answers to exercise set 6 (posterior collapse); each must score less than full marks."""

import autograd.numpy as np
import numpy as onp


# --- 6.1 kl_per_dim(mean, log_std) ------------------------------------------------------------------


def kl_log_var_as_log_std(mean, log_std):
    """Reads log_std as a log-variance."""
    return 0.5 * (mean**2 + np.exp(log_std) - 1.0) - 0.5 * log_std


def kl_summed_over_dims(mean, log_std):
    """Returns the total KL (summed over the last axis) instead of one value per dimension."""
    return np.sum(0.5 * (mean**2 + np.exp(2.0 * log_std) - 1.0) - log_std, axis=-1)


def kl_log_sign_flip(mean, log_std):
    """Adds log sigma instead of subtracting it."""
    return 0.5 * (mean**2 + np.exp(2.0 * log_std) - 1.0) + log_std


def kl_naive_log(mean, log_std):
    """Computes log sigma^2 as log(exp(log_std)^2): -inf for very narrow posteriors."""
    std = np.exp(log_std)
    return 0.5 * (mean**2 + std**2 - 1.0 - np.log(std**2))


# --- 6.2 free_bits_kl(kl_dims, free_bits, groups=None) ----------------------------------------------


def _group(kl_dims, groups):
    B, K = kl_dims.shape
    G = K if groups is None else groups
    return np.sum(np.reshape(kl_dims, (B, G, K // G)), axis=-1)


def free_bits_per_example(kl_dims, free_bits, groups=None):
    """Clamps each example's group KL, then averages (not Kingma et al.'s minibatch-mean clamp)."""
    return np.mean(np.sum(np.maximum(free_bits, _group(kl_dims, groups)), axis=-1))


def free_bits_clamp_total(kl_dims, free_bits, groups=None):
    """Clamps the total KL once instead of each group."""
    return np.maximum(free_bits, np.mean(np.sum(kl_dims, axis=-1)))


def free_bits_min_for_max(kl_dims, free_bits, groups=None):
    """np.minimum instead of np.maximum: caps the KL at lambda instead of flooring it."""
    return np.sum(np.minimum(free_bits, np.mean(_group(kl_dims, groups), axis=0)))


def free_bits_strided_groups(kl_dims, free_bits, groups=None):
    """Groups dimensions k, k + G, k + 2G, ... instead of consecutive blocks."""
    B, K = kl_dims.shape
    G = K if groups is None else groups
    grouped = np.sum(np.reshape(kl_dims, (B, K // G, G)), axis=1)
    return np.sum(np.maximum(free_bits, np.mean(grouped, axis=0)))


# --- 6.3 active_units(encode, x, threshold=0.01) ----------------------------------------------------


def active_units_sampled_z(encode, x, threshold=0.01):
    """Variance of sampled z instead of the exact posterior mean."""
    mean, log_std = encode(x)
    z = mean + onp.exp(log_std) * onp.random.default_rng(0).standard_normal(mean.shape)
    return int(onp.sum(onp.var(z, axis=0) > threshold))


def active_units_std(encode, x, threshold=0.01):
    """Standard deviation of the means instead of their variance."""
    mean, _ = encode(x)
    return int(onp.sum(onp.std(mean, axis=0) > threshold))


def active_units_wrong_axis(encode, x, threshold=0.01):
    """Variance over the latent units of each data point, counted over data points."""
    mean, _ = encode(x)
    return int(onp.sum(onp.var(mean, axis=1) > threshold))


MUTANTS = {
    "6.1": [kl_log_var_as_log_std, kl_summed_over_dims, kl_log_sign_flip, kl_naive_log],
    "6.2": [free_bits_per_example, free_bits_clamp_total, free_bits_min_for_max, free_bits_strided_groups],
    "6.3": [active_units_sampled_z, active_units_std, active_units_wrong_axis],
}
