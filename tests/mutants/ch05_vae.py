"""Typical wrong answers to exercise set 5 (the VAE); each must score less than full marks."""

import autograd
import autograd.numpy as np
from autograd.misc import flatten
from autograd.scipy.special import logsumexp

from vae_from_scratch.numpy import distributions as d
from vae_from_scratch.numpy.vae import decode, encode
from vae_from_scratch.numpy.vae import elbo as package_elbo

# --- 5.1 elbo(params, x, eps) -------------------------------------------------------------------------


def _recon(params, x, z):
    r = d.bernoulli_log_likelihood(x, decode(params, z))
    return np.mean(r, axis=0) if np.ndim(z) == 3 else r


def kl_sign_flip(params, x, eps):
    """Adds the KL instead of subtracting it."""
    mean, log_std = encode(params, x)
    return _recon(params, x, d.sample_normal_diag(mean, log_std, eps)) + d.kl_normal_standard(mean, log_std)


def log_var_as_log_std(params, x, eps):
    """Reads the encoder's second half as a log-variance: sigma = exp(log_std / 2), KL for log-variance."""
    mean, log_var = encode(params, x)
    z = mean + np.exp(0.5 * log_var) * eps
    kl = np.sum(0.5 * (mean**2 + np.exp(log_var) - 1.0 - log_var), axis=-1)
    return _recon(params, x, z) - kl


def naive_sigmoid_log(params, x, eps):
    """log(sigmoid) and log(1 - sigmoid): -inf at extreme logits."""
    mean, log_std = encode(params, x)
    z = d.sample_normal_diag(mean, log_std, eps)
    p = 1.0 / (1.0 + np.exp(-decode(params, z)))
    r = np.sum(x * np.log(p) + (1 - x) * np.log(1 - p), axis=-1)
    r = np.mean(r, axis=0) if np.ndim(z) == 3 else r
    return r - d.kl_normal_standard(mean, log_std)


def pixel_mean(params, x, eps):
    """Averages the reconstruction over pixels instead of summing."""
    mean, log_std = encode(params, x)
    z = d.sample_normal_diag(mean, log_std, eps)
    r = np.mean(x * decode(params, z) - d.softplus(decode(params, z)), axis=-1)
    r = np.mean(r, axis=0) if np.ndim(z) == 3 else r
    return r - d.kl_normal_standard(mean, log_std)


def first_sample_only(params, x, eps):
    """Uses only the first of S samples."""
    e = eps[0] if np.ndim(eps) == 3 else eps
    mean, log_std = encode(params, x)
    return _recon(params, x, d.sample_normal_diag(mean, log_std, e)) - d.kl_normal_standard(mean, log_std)


# --- 5.2 iwae(params, x, eps) -------------------------------------------------------------------------


def _log_w(params, x, eps, log_std_scale=1.0):
    mean, log_std = encode(params, x)
    z = mean + np.exp(log_std * log_std_scale) * eps
    return (d.bernoulli_log_likelihood(x, decode(params, z)) + d.log_standard_normal(z)
            - d.log_normal_diag(z, mean, log_std * log_std_scale))


def naive_log_mean_exp(params, x, eps):
    """log(mean(exp(log w))): exp underflows to 0 for very negative log-weights."""
    return np.log(np.mean(np.exp(_log_w(params, x, eps)), axis=0))


def log_sum_exp_without_log_s(params, x, eps):
    """Forgets to divide by S: log of the sum of the weights."""
    return logsumexp(_log_w(params, x, eps), axis=0)


def mean_of_log_weights(params, x, eps):
    """Averages the log-weights: the ELBO estimate, not the importance-sampled log p(x)."""
    return np.mean(_log_w(params, x, eps), axis=0)


def wrong_axis(params, x, eps):
    """Log-mean-exp over the data points instead of the samples."""
    return logsumexp(_log_w(params, x, eps), axis=1) - np.log(np.shape(eps)[1])


def missing_prior(params, x, eps):
    """Weights p(x|z)/q(z|x): forgets the prior density p(z)."""
    mean, log_std = encode(params, x)
    z = d.sample_normal_diag(mean, log_std, eps)
    log_w = d.bernoulli_log_likelihood(x, decode(params, z)) - d.log_normal_diag(z, mean, log_std)
    return logsumexp(log_w, axis=0) - np.log(np.shape(eps)[0])


# --- 5.3 aevb_sgd_step(params, x, eps, lr) ------------------------------------------------------------


def _step(params, grads, lr):
    flat, unflatten = flatten(params)
    return unflatten(flat + lr * flatten(grads)[0])


def gradient_descent(params, x, eps, lr):
    """Descends the ELBO (treats it as a loss without negating it)."""
    grads = autograd.grad(lambda p: np.mean(package_elbo(p, x, eps)))(params)
    return _step(params, grads, -lr)


def sum_not_mean(params, x, eps, lr):
    """Gradient of the minibatch SUM: a step B times too large."""
    grads = autograd.grad(lambda p: np.sum(package_elbo(p, x, eps)))(params)
    return _step(params, grads, lr)


def decoder_only(params, x, eps, lr):
    """Updates theta (the decoder) only; the encoder stays where it was."""
    grad_dec = autograd.grad(lambda dec: np.mean(package_elbo({"encoder": params["encoder"], "decoder": dec},
                                                              x, eps)))(params["decoder"])
    flat, unflatten = flatten(params["decoder"])
    return {"encoder": params["encoder"], "decoder": unflatten(flat + lr * flatten(grad_dec)[0])}


def reconstruction_only(params, x, eps, lr):
    """Ascends the reconstruction term alone (drops the KL: a plain stochastic autoencoder)."""
    def recon(p):
        mean, log_std = encode(p, x)
        return np.mean(d.bernoulli_log_likelihood(x, decode(p, d.sample_normal_diag(mean, log_std, eps))))
    return _step(params, autograd.grad(recon)(params), lr)


# --- 5.4 beta_optimal_gaussian(x, W, b, log_s, beta) ---------------------------------------------


def _gaussian_answer(x, W, b, log_s, prior_precision, lik_scale):
    D, K = np.shape(W)
    s2 = np.exp(2.0 * log_s)
    cov = np.linalg.inv(prior_precision * np.eye(K) + np.dot(W.T, W) / (lik_scale * s2))
    mean = np.dot(cov, np.dot(W.T, x - b)) / (lik_scale * s2)
    return mean, cov


def _objective(x, W, b, log_s, beta, mean, cov):
    D, K = np.shape(W)
    s2 = np.exp(2.0 * log_s)
    r = x - np.dot(W, mean) - b
    ell = -0.5 * D * np.log(2 * np.pi * s2) - (np.dot(r, r) + np.trace(np.dot(W, np.dot(cov, W.T)))) / (2 * s2)
    kl = 0.5 * (np.trace(cov) + np.dot(mean, mean) - K - np.linalg.slogdet(cov)[1])
    return ell - beta * kl


def beta_ignored(x, W, b, log_s, beta):
    """Returns the posterior and log p(x) whatever beta is."""
    mean, cov = _gaussian_answer(x, W, b, log_s, 1.0, 1.0)
    return mean, cov, _objective(x, W, b, log_s, 1.0, mean, cov)


def beta_on_the_prior(x, W, b, log_s, beta):
    """Puts beta on the prior's precision (q proportional to p(z)^beta p(x|z)), value consistent with it."""
    mean, cov = _gaussian_answer(x, W, b, log_s, beta, 1.0)
    return mean, cov, _objective(x, W, b, log_s, beta, mean, cov)


def elbo_not_beta_objective(x, W, b, log_s, beta):
    """The right q, but reports its ELBO instead of the beta-weighted objective."""
    mean, cov = _gaussian_answer(x, W, b, log_s, 1.0, beta)
    return mean, cov, _objective(x, W, b, log_s, 1.0, mean, cov)


def determinant_not_log_determinant(x, W, b, log_s, beta):
    """The closed form with log(det(.)) of the D x D covariance: -inf or inf once D is in the hundreds."""
    mean, cov = _gaussian_answer(x, W, b, log_s, 1.0, beta)
    D = np.shape(W)[0]
    s2 = np.exp(2.0 * log_s)
    cov_x = np.dot(W, W.T) + beta * s2 * np.eye(D)
    d = x - b
    log_n = -0.5 * (np.dot(d, np.linalg.solve(cov_x, d)) + np.log(np.linalg.det(cov_x)) + D * np.log(2 * np.pi))
    value = -0.5 * D * np.log(2 * np.pi * s2) + 0.5 * beta * D * np.log(2 * np.pi * beta * s2) + beta * log_n
    return mean, cov, value


MUTANTS = {
    "5.1": [kl_sign_flip, log_var_as_log_std, naive_sigmoid_log, pixel_mean, first_sample_only],
    "5.2": [naive_log_mean_exp, log_sum_exp_without_log_s, mean_of_log_weights, wrong_axis, missing_prior],
    "5.3": [gradient_descent, sum_not_mean, decoder_only, reconstruction_only],
    "5.4": [beta_ignored, beta_on_the_prior, elbo_not_beta_objective, determinant_not_log_determinant],
}
