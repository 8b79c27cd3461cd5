r"""Exercise set 6: when the latent code goes unused (``exercises/06_posterior_collapse.ipynb``).

6.1 the KL of each latent dimension of a diagonal Gaussian to the standard normal, 6.2 the free-bits KL
term of a minibatch (Kingma et al. 2016, appendix C; K&W eqs. 2.69-2.70), 6.3 the number of active
units (Burda et al. 2016) from an encoder's exact posterior means. References in
:mod:`vae_from_scratch.numpy.collapse`.

Tolerances. Every comparison is against an independent float64 oracle written here in plain NumPy
(the KL per dimension in variances instead of log-std, the free-bits term with explicit loops over
groups, the variance of the means by its definition). Inputs are at most 784-dimensional with values
below 1e3 (log-std down to -400 in the extreme test, where the KL is about 400 and its terms do not
cancel), so a correct answer agrees with the oracle to ~1e-12 relative; we allow ``rtol = 1e-9`` and
``atol = 1e-9``, a margin of 1000x. The active-unit count is an integer compared exactly; the inputs
keep every unit's variance at least a factor 1.5 away from the threshold, so no rounding decides it.
The typical mistakes (a log-variance read as a log-std, summing over the dimensions, clamping each
example or the total instead of each group's minibatch mean, min for max, the variance of sampled z or
the standard deviation of the means) change a result by more than 1e-2 or change the count.

All tests are deterministic given their random inputs: the false-failure rate of each exercise is 0.
"""

import autograd
import autograd.numpy as anp
import numpy as onp

from vae_from_scratch.numpy import collapse, distributions

from ..core import assert_close, exercise

TOL = 1e-9


def _sizes(rng):
    """Batch B in 6..11 and latent K in 2..5 with B != K: a wrong axis changes the shape."""
    K = int(rng.integers(2, 6))
    B = int(rng.choice([b for b in range(6, 12) if b != K]))
    return B, K


# --- 6.1 ---------------------------------------------------------------------------------------

EX1 = exercise("6.1", "The KL of each latent dimension", function="kl_per_dim",
               reference=collapse.kl_per_dim)
EX1.forbidden = (distributions.kl_normal_standard_per_dim, distributions.kl_normal_standard,
                 distributions.kl_normal_diag)


def _oracle_kl_per_dim(mean, log_std):
    # in variances: (var + mu^2 - 1 - log var) / 2, with log var = 2 log_std (no exp -> log round trip)
    return 0.5 * (onp.exp(2.0 * log_std) + mean**2 - 1.0 - 2.0 * log_std)


@EX1.test("matches the closed-form KL of each dimension at random inputs, shape (B, K)", points=2,
          hint="Per dimension (mean^2 + sigma^2 - 1)/2 - log sigma with sigma = exp(log_std); do not sum "
               "over the last axis: the result keeps the shape of mean.")
def _(f, rng):
    B, K = _sizes(rng)
    mean, log_std = rng.normal(0.0, 1.5, (B, K)), rng.uniform(-2.0, 1.0, (B, K))
    assert_close(f(mean, log_std), _oracle_kl_per_dim(mean, log_std), rtol=TOL, atol=TOL)


@EX1.test("is zero exactly where q is the prior and positive elsewhere", points=1,
          hint="At mean = 0, log_std = 0 every dimension's KL must be 0; check the '- 1' and the sign of "
               "the log term.")
def _(f, rng):
    B, K = _sizes(rng)
    assert_close(f(onp.zeros((B, K)), onp.zeros((B, K))), onp.zeros((B, K)), rtol=0, atol=1e-15,
                 what="your KL at q = p")
    mean, log_std = rng.normal(0.0, 1.0, (B, K)), rng.uniform(-1.0, 1.0, (B, K))
    assert onp.all(onp.asarray(f(mean, log_std)) > 0), "your KL is not positive where q differs from p"


@EX1.test("is finite and exact for very narrow posteriors (log_std down to -400)", points=1,
          hint="Write log sigma^2 as 2 * log_std instead of np.log(np.exp(log_std) ** 2): exp(-400) ** 2 "
               "underflows to 0 and its log is -inf.")
def _(f, rng):
    B, K = _sizes(rng)
    mean, log_std = rng.normal(0.0, 1.0, (B, K)), rng.uniform(-400.0, -300.0, (B, K))
    assert_close(f(mean, log_std), _oracle_kl_per_dim(mean, log_std), rtol=TOL, atol=TOL)


@EX1.test("keeps batch axes: (S, B, K) inputs give (S, B, K)", points=1,
          hint="Use elementwise operations only; nothing needs a reshape or a sum.")
def _(f, rng):
    B, K = _sizes(rng)
    mean, log_std = rng.normal(0.0, 1.0, (3, B, K)), rng.uniform(-1.0, 1.0, (3, B, K))
    assert_close(f(mean, log_std), _oracle_kl_per_dim(mean, log_std), rtol=TOL, atol=TOL)


# --- 6.2 ---------------------------------------------------------------------------------------

EX2 = exercise("6.2", "The free-bits KL of a minibatch", function="free_bits_kl",
               reference=collapse.free_bits_kl)
EX2.forbidden = (collapse.free_bits_kl_per_example, collapse.group_kl)


def _oracle_free_bits(kl_dims, lam, groups):
    B, K = kl_dims.shape
    G = K if groups is None else groups
    size = K // G
    total = 0.0
    for j in range(G):
        group_mean = sum(kl_dims[i, j * size:(j + 1) * size].sum() for i in range(B)) / B
        total += max(lam, group_mean)
    return onp.array(total)


def _kl_dims(rng, B, K, scale_per_dim):
    """Non-negative KLs (B, K) whose minibatch means per dimension are about scale_per_dim."""
    return rng.exponential(1.0, (B, K)) * scale_per_dim


def _groups_problem(rng):
    """B examples, G groups of size 2 or 3, some groups' minibatch-mean KL below lambda and some above,
    and in the groups above lambda some examples below it (so per-example clamping differs)."""
    G, size = int(rng.integers(2, 5)), int(rng.integers(2, 4))
    B = int(rng.integers(6, 12))
    scale = onp.repeat(onp.where(onp.arange(G) % 2 == 0, 0.05, 1.5), size)
    return _kl_dims(rng, B, G * size, scale), G


@EX2.test("matches sum_j max(lambda, minibatch mean of group j's KL) with groups", points=2,
          hint="Sum each example's KL within each group of consecutive dimensions, average over the "
               "minibatch (axis 0), then clamp each group's average from below at lambda and add them up.")
def _(f, rng):
    kl_dims, G = _groups_problem(rng)
    lam = 0.5 * kl_dims.shape[1] / G
    assert_close(f(kl_dims, lam, G), _oracle_free_bits(kl_dims, lam, G), rtol=TOL, atol=TOL)


@EX2.test("groups=None means one group per latent dimension", points=1,
          hint="With groups=None every dimension is its own group: clamp each dimension's minibatch mean.")
def _(f, rng):
    B, K = _sizes(rng)
    kl_dims = _kl_dims(rng, B, K, onp.where(onp.arange(K) % 2 == 0, 0.02, 1.0))
    assert_close(f(kl_dims, 0.3, None), _oracle_free_bits(kl_dims, 0.3, None), rtol=TOL, atol=TOL)


@EX2.test("has zero gradient in a group whose mean KL is below lambda, the KL's gradient in the others",
          points=2, hint="max(lambda, mean) with np.maximum: below lambda the term is a constant. Clamp the "
                         "minibatch mean of each group, not each example's KL.")
def _(f, rng):
    kl_dims, G = _groups_problem(rng)
    lam = 0.5 * kl_dims.shape[1] / G
    g = autograd.grad(lambda k: f(k, lam, G))(kl_dims)
    size = kl_dims.shape[1] // G
    means = kl_dims.reshape(kl_dims.shape[0], G, size).sum(-1).mean(0)
    expected = onp.repeat(onp.where(means > lam, 1.0 / kl_dims.shape[0], 0.0), size)
    assert_close(g, onp.broadcast_to(expected, kl_dims.shape), rtol=TOL, atol=TOL,
                 what="your gradient in kl_dims")


@EX2.test("784 latent dimensions in 16 groups (a wide model), lambda = 0 gives the average KL", points=1,
          hint="Reshape (B, K) to (B, G, K // G) to sum within groups; with lambda = 0 the result is the "
               "minibatch mean of the total KL.")
def _(f, rng):
    kl_dims = _kl_dims(rng, 8, 784, onp.repeat(rng.uniform(0.0, 0.1, 16), 49))
    for lam in (0.0, 1.0):
        assert_close(f(kl_dims, lam, 16), _oracle_free_bits(kl_dims, lam, 16), rtol=TOL, atol=TOL)


# --- 6.3 ---------------------------------------------------------------------------------------

EX3 = exercise("6.3", "Active units", function="active_units", reference=collapse.active_units)
EX3.forbidden = (collapse.active_unit_variances,)


def _encoder_with_known_variances(rng, N, D, variances, log_std=0.0):
    """A linear encoder mean = A x on whitened data x (N, D): unit k's mean has variance variances[k]
    over the data, exactly; log_std is constant (a collapsed unit has posterior ~ prior)."""
    x = rng.normal(0.0, 1.0, (N, D))
    x = x - x.mean(0)
    x = x @ onp.linalg.inv(onp.linalg.cholesky(x.T @ x / N)).T
    A = rng.normal(0.0, 1.0, (len(variances), D))
    A *= onp.sqrt(variances)[:, None] / onp.linalg.norm(A, axis=1, keepdims=True)
    K = len(variances)

    def encode(data):
        return data @ A.T, onp.full((len(data), K), log_std)

    return encode, x


def _variances(rng, K, n_active):
    """n_active variances in [0.015, 2] and K - n_active in [1e-6, 0.0066]: each at least 1.5x away
    from 0.01; some inactive ones above 1e-4 so that a standard deviation would count them."""
    active = rng.uniform(0.015, 2.0, n_active)
    inactive = onp.concatenate([rng.uniform(2e-4, 0.0066, (K - n_active + 1) // 2),
                                10.0 ** rng.uniform(-6, -5, (K - n_active) // 2)])
    return rng.permutation(onp.concatenate([active, inactive]))


@EX3.test("counts the units whose posterior mean varies over the data by more than 0.01", points=2,
          hint="Encode all of x, take the variance over the data points (axis 0) of each unit's MEAN, and "
               "count how many exceed the threshold. The variance, not the standard deviation.")
def _(f, rng):
    K = int(rng.integers(5, 9))
    n_active = int(rng.integers(1, K))
    encode, x = _encoder_with_known_variances(rng, 300, 12, _variances(rng, K, n_active))
    count = f(encode, x)
    assert int(count) == n_active and float(count) == int(count), "your count is not the number of active units"


@EX3.test("uses the exact means: collapsed units with a unit-variance posterior stay inactive", points=2,
          hint="Do not sample z: z ~ q(z|x) varies with variance about 1 in a collapsed unit (its "
               "posterior is the prior), so every unit would look active. Use the mean the encoder returns.")
def _(f, rng):
    K = int(rng.integers(5, 9))
    n_active = int(rng.integers(1, K - 1))
    encode, x = _encoder_with_known_variances(rng, 300, 12, _variances(rng, K, n_active), log_std=0.0)
    assert int(f(encode, x)) == n_active, "your count is not the number of active units"


@EX3.test("honours the threshold argument", points=1,
          hint="Compare the variances with threshold, not with a hard-coded 0.01.")
def _(f, rng):
    variances = onp.array([1.0, 0.3, 0.05, 0.02, 0.004, 1e-5])
    encode, x = _encoder_with_known_variances(rng, 200, 10, rng.permutation(variances))
    assert int(f(encode, x, threshold=0.1)) == 2, "your count with threshold=0.1 is wrong"
    assert int(f(encode, x, threshold=0.001)) == 5, "your count with threshold=0.001 is wrong"


@EX3.test("Burda et al.'s setting: 784 pixels, 50 latent units, 1000 images", points=1,
          hint="Work on the (N, K) array of means; the variance is over the N data points.")
def _(f, rng):
    n_active = int(rng.integers(10, 30))
    encode, x = _encoder_with_known_variances(rng, 1000, 784, _variances(rng, 50, n_active), log_std=-0.1)
    assert int(f(encode, x)) == n_active, "your count is not the number of active units"
