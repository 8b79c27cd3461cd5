r"""Data sets used throughout the book.

* **Statically binarized MNIST** (Larochelle & Murray 2011): the standard benchmark for likelihoods in
  the VAE literature, 50,000 / 10,000 / 10,000 images of 28x28 = 784 binary pixels, binarized ONCE
  (a fixed random draw per pixel), so that published log-likelihoods are comparable.
  :func:`load_binarized_mnist`.
* **scikit-learn's 8x8 digits**, thresholded to binary: small enough for the NumPy reference code,
  shipped inside scikit-learn (no download). :func:`load_binarized_digits`.
* **The 2-D toy energies U1-U4** of Rezende & Mohamed (2015, table 1): unnormalized densities for
  testing flows and posterior approximations. :func:`toy_log_density`, :func:`toy_density_grid`.
* **The linear-Gaussian testbed** (probabilistic PCA): a latent-variable model with exact
  :math:`\log p(\mathbf x)` and exact posterior. :func:`linear_gaussian_testbed`; the math is in
  :mod:`vae_from_scratch.numpy.testbed`.

Where binarized MNIST comes from (first hit wins):

1. the ``path`` argument: a folder, or a file (``.npz`` with keys ``train``/``valid``/``test``,
   ``.amat`` or ``.npy``);
2. the folder named by the environment variable ``VAE_FROM_SCRATCH_DATA``, holding
   ``binarized_mnist.npz`` and/or ``binarized_mnist_{train,valid,test}.amat``;
3. the user cache ``$XDG_CACHE_HOME/vae_from_scratch`` (default ``~/.cache/vae_from_scratch``), which
   holds ``binarized_mnist_{split}.npy`` written by an earlier download;
4. a download of Larochelle's canonical ASCII files ``binarized_mnist_{split}.amat`` (one image per line,
   784 space-separated 0/1 values) from :data:`DEFAULT_MNIST_URL`, or from the base URL in the
   ``url`` argument or ``$VAE_FROM_SCRATCH_MNIST_URL``. The download is written to a temporary file in
   the cache folder, parsed and validated, and only then renamed into place (``os.replace``), so an
   interrupted or corrupt download never leaves a bad cache file.
"""

import http.client
import os
import tempfile
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path

import autograd.numpy as anp
import numpy as np

from .numpy import testbed as _testbed

# --- statically binarized MNIST ------------------------------------------------------------------

DATA_ENV_VAR = "VAE_FROM_SCRATCH_DATA"
URL_ENV_VAR = "VAE_FROM_SCRATCH_MNIST_URL"
DEFAULT_MNIST_URL = "http://www.cs.toronto.edu/~larocheh/public/datasets/binarized_mnist"
MNIST_SPLITS = ("train", "valid", "test")
MNIST_SIZES = {"train": 50_000, "valid": 10_000, "test": 10_000}
MNIST_PIXELS = 784
NPZ_NAME = "binarized_mnist.npz"
DOWNLOAD_TIMEOUT_S = 60.0


def amat_name(split):
    """File name of the canonical ASCII file of one split, e.g. ``binarized_mnist_train.amat``."""
    return f"binarized_mnist_{_check_split(split)}.amat"


def cache_name(split):
    """File name of the cached array of one split in the user cache, e.g. ``binarized_mnist_train.npy``."""
    return f"binarized_mnist_{_check_split(split)}.npy"


def user_cache_dir():
    """The user cache folder: ``$XDG_CACHE_HOME/vae_from_scratch``, else ``~/.cache/vae_from_scratch``."""
    base = os.environ.get("XDG_CACHE_HOME", "").strip() or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "vae_from_scratch"


def load_binarized_mnist(split="train", path=None, *, cache_dir=None, url=None, download=True,
                         expected_rows=None):
    """Statically binarized MNIST (Larochelle & Murray 2011) as ``uint8`` 0/1 array of shape ``(N, 784)``.

    Rows are images in row-major 28x28 order. ``split`` is ``"train"`` (N = 50,000), ``"valid"``
    (10,000) or ``"test"`` (10,000). The lookup order (explicit ``path``, ``$VAE_FROM_SCRATCH_DATA``,
    user cache, download) is described in the module docstring.

    Parameters
    ----------
    split : str
        ``"train"``, ``"valid"`` or ``"test"``.
    path : str or Path, optional
        A folder holding ``binarized_mnist.npz`` or ``binarized_mnist_{split}.amat`` (or ``.npy``),
        or one such file. When given, nothing else is consulted.
    cache_dir : str or Path, optional
        The cache folder (default :func:`user_cache_dir`).
    url : str, optional
        Base URL of the ``.amat`` files (default ``$VAE_FROM_SCRATCH_MNIST_URL``, else
        :data:`DEFAULT_MNIST_URL`).
    download : bool
        Whether step 4 (download) may run.
    expected_rows : int, optional
        The number of images the split must have (default: the canonical 50,000/10,000/10,000).
        Only tests with small generated files need to change it; a file with another number of rows
        (e.g. a truncated download) is rejected.

    Raises
    ------
    ValueError
        Bad split name, or a file that is not binarized MNIST (wrong shape, values other than 0/1).
    FileNotFoundError
        No data anywhere and the download failed or was disabled; the message says how to supply it.
    """
    split = _check_split(split)
    rows = MNIST_SIZES[split] if expected_rows is None else int(expected_rows)
    if path is not None:
        source = _find_in(Path(path), split)
        if source is None:
            raise FileNotFoundError(
                f"path={str(path)!r} holds no binarized MNIST for split {split!r}: expected a file "
                f"{NPZ_NAME} (keys train/valid/test), {amat_name(split)} or {cache_name(split)}, "
                f"or a path to one of them.")
        return _read_mnist_file(source, split, rows)

    env = os.environ.get(DATA_ENV_VAR, "").strip()
    if env:
        source = _find_in(Path(env), split)
        if source is not None:
            return _read_mnist_file(source, split, rows)

    cache = Path(cache_dir) if cache_dir is not None else user_cache_dir()
    cached = cache / cache_name(split)
    if cached.is_file():
        try:
            return _read_mnist_file(cached, split, rows)
        except ValueError as err:  # only possible if the file was altered after it was written
            warnings.warn(f"ignoring invalid cache file {cached} ({err}); downloading again")

    base = url or os.environ.get(URL_ENV_VAR, "").strip() or DEFAULT_MNIST_URL
    if not download:
        raise FileNotFoundError(_missing_data_message(split, env, cache, base, reason="download=False"))
    try:
        return download_binarized_mnist(split, cache, base, expected_rows=rows)
    except OSError as err:  # network errors (URLError, HTTPError, timeouts, refused connections)
        raise FileNotFoundError(_missing_data_message(split, env, cache, base, reason=repr(err))) from err
    except ValueError as err:  # truncated or corrupt transfer; nothing was cached
        raise ValueError(f"downloaded file rejected, nothing was written to the cache: {err}\n"
                         + _missing_data_message(split, env, cache, base, reason="corrupt download")) from err


def download_binarized_mnist(split, cache_dir, url=DEFAULT_MNIST_URL, *, expected_rows=None,
                             timeout=DOWNLOAD_TIMEOUT_S):
    """Download ``{url}/binarized_mnist_{split}.amat``, validate it, cache it as ``.npy``; return the array.

    Both the raw download and the cached array are first written to temporary files in ``cache_dir``
    and renamed into place only after validation, so an interrupted or corrupt transfer leaves no
    file behind (temporary files are removed on any error). Raises ``OSError`` (e.g.
    ``urllib.error.URLError``) for network failures and ``ValueError`` for a file that does not hold
    ``expected_rows`` rows of 784 binary values.
    """
    split = _check_split(split)
    rows = MNIST_SIZES[split] if expected_rows is None else int(expected_rows)
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    source = f"{url.rstrip('/')}/{amat_name(split)}"
    raw_path = _fetch_to_temp(source, cache_dir, timeout)
    try:
        with open(raw_path, "rb") as f:
            images = parse_amat(f.read())
        _validate(images, rows, f"download {source}")
    finally:
        os.unlink(raw_path)
    _atomic_save_npy(images, cache_dir / cache_name(split))
    return images


def parse_amat(raw):
    """Parse the ASCII ``.amat`` format (one image per line, whitespace-separated 0/1 values).

    Returns a ``uint8`` array ``(N, C)``. Raises ``ValueError`` for ragged lines (e.g. a truncated last
    line), values other than 0 and 1, or an empty file. Single-character tokens (the canonical files)
    are parsed vectorially; other spellings such as ``1.0`` go through :func:`numpy.loadtxt`.
    """
    if isinstance(raw, str):
        raw = raw.encode()
    lines = [line for line in bytes(raw).splitlines() if line.strip()]
    if not lines:
        raise ValueError("the .amat file is empty")
    counts = [len(line.split()) for line in lines]
    if len(set(counts)) != 1:
        bad = next(i for i, c in enumerate(counts) if c != counts[0])
        raise ValueError(f"ragged .amat file: line 1 has {counts[0]} values, line {bad + 1} has "
                         f"{counts[bad]} (truncated or corrupt file?)")
    text = b" ".join(lines)
    chars = np.frombuffer(text, dtype=np.uint8)
    digits = chars[chars != ord(" ")]
    digits = digits[~np.isin(digits, np.frombuffer(b"\t\r\x0b\x0c", dtype=np.uint8))]
    if digits.size == len(lines) * counts[0]:  # every token is a single character
        values = digits.astype(np.int16) - ord("0")
    else:
        try:
            values = np.loadtxt(lines, dtype=np.float64, ndmin=2)
        except ValueError as err:
            raise ValueError(f"the .amat file holds non-numeric values: {err}") from None
    if not np.all((values == 0) | (values == 1)):
        raise ValueError("the .amat file holds values other than 0 and 1 (not binarized MNIST)")
    return values.astype(np.uint8).reshape(len(lines), counts[0])


def _check_split(split):
    if split not in MNIST_SPLITS:
        raise ValueError(f"split must be one of {MNIST_SPLITS}, got {split!r}")
    return split


def _find_in(path, split):
    """The file that holds ``split`` at ``path`` (a file, or a folder searched for known names)."""
    if path.is_file():
        return path
    if path.is_dir():
        for name in (NPZ_NAME, amat_name(split), cache_name(split)):
            if (path / name).is_file():
                return path / name
    return None


def _read_mnist_file(source, split, rows):
    """Read one split from a ``.npz``, ``.npy`` or ``.amat`` file and validate it."""
    suffix = source.suffix.lower()
    if suffix == ".npz":
        with np.load(source, allow_pickle=False) as archive:
            if split not in archive.files:
                raise ValueError(f"{source} has no array {split!r} (keys: {archive.files})")
            images = archive[split]
    elif suffix == ".npy":
        images = np.load(source, allow_pickle=False)
    elif suffix == ".amat":
        with open(source, "rb") as f:
            images = parse_amat(f.read())
    else:
        raise ValueError(f"{source}: unknown format {suffix!r}; expected .npz, .npy or .amat")
    _validate(images, rows, str(source))
    return np.ascontiguousarray(images, dtype=np.uint8)


def _validate(images, rows, where):
    """Binarized MNIST: shape ``(rows, 784)``, values only 0 and 1."""
    if images.ndim != 2 or images.shape[1] != MNIST_PIXELS:
        raise ValueError(f"{where}: expected shape (N, {MNIST_PIXELS}), got {images.shape}")
    if images.shape[0] != rows:
        raise ValueError(f"{where}: expected {rows} images, got {images.shape[0]} (truncated or wrong file?)")
    if images.dtype.kind not in "biuf" or not np.all((images == 0) | (images == 1)):
        raise ValueError(f"{where}: values must be 0 or 1 (statically binarized MNIST)")


def _fetch_to_temp(source, folder, timeout):
    """Stream ``source`` into a new temporary file in ``folder``; return its path (deleted on error)."""
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".download-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(source, timeout=timeout) as response:
            declared = response.headers.get("Content-Length")
            received = 0
            try:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    received += len(chunk)
            except http.client.HTTPException as err:  # e.g. IncompleteRead: connection cut mid-file
                raise ValueError(f"download {source} interrupted after {received} bytes: {err!r}") from None
        if declared is not None and received != int(declared):
            raise ValueError(f"download {source} interrupted: received {received} of {declared} bytes")
    except BaseException:
        os.unlink(tmp)
        raise
    return tmp


def _atomic_save_npy(array, target):
    """Write ``array`` to ``target`` via a temporary file in the same folder and ``os.replace``."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.stem}-", suffix=".npy.part")
    try:
        with os.fdopen(fd, "wb") as out:
            np.save(out, array, allow_pickle=False)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _missing_data_message(split, env, cache, base, reason):
    env_line = (f"  (${DATA_ENV_VAR} is set to {env!r}, which holds no such file)\n" if env
                else f"  (${DATA_ENV_VAR} is not set)\n")
    return (
        f"binarized MNIST split {split!r}: no local copy found, and no download ({reason}).\n"
        f"Supply it in one of these ways:\n"
        f"  1. set the environment variable {DATA_ENV_VAR} to a folder holding {NPZ_NAME} "
        f"(uint8 arrays 'train', 'valid', 'test' of shape (N, 784)) or the canonical files "
        f"binarized_mnist_train.amat, binarized_mnist_valid.amat, binarized_mnist_test.amat;\n"
        f"{env_line}"
        f"  2. pass path=<that folder or file> to load_binarized_mnist;\n"
        f"  3. put {cache_name(split)} into the cache folder {cache};\n"
        f"  4. or allow the download from {base}/{amat_name(split)} "
        f"(canonical files: {DEFAULT_MNIST_URL}/binarized_mnist_{{train,valid,test}}.amat; "
        f"another base URL can be set with ${URL_ENV_VAR})."
    )


# --- scikit-learn's 8x8 digits, binarized ------------------------------------------------------


def load_binarized_digits(threshold=7, return_labels=False):
    """scikit-learn's 8x8 handwritten digits (1,797 images, UCI), binarized: ``uint8`` ``(1797, 64)``.

    Pixels hold gray levels 0..16; a pixel becomes 1 when its level is ``> threshold`` (default 7,
    about half the range). Embedded in scikit-learn, no download. With ``return_labels=True`` returns
    ``(images, labels)`` with the digit classes 0..9 as ``int64``.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = (digits.data > threshold).astype(np.uint8)
    if return_labels:
        return images, digits.target.astype(np.int64)
    return images


# --- 2-D toy densities of Rezende & Mohamed (2015) -----------------------------------------------

TOY_DENSITIES = ("U1", "U2", "U3", "U4")


def _sigmoid(x):
    return 0.5 * (anp.tanh(0.5 * x) + 1.0)


def _w1(z1):
    return anp.sin(2.0 * np.pi * z1 / 4.0)


def _w2(z1):
    return 3.0 * anp.exp(-0.5 * ((z1 - 1.0) / 0.6) ** 2)


def _w3(z1):
    return 3.0 * _sigmoid((z1 - 1.0) / 0.3)


def toy_energy(name, z):
    r"""The energy :math:`U(\mathbf z)` of the 2-D toy densities of Rezende & Mohamed (2015, table 1).

    With :math:`w_1 = \sin(2\pi z_1/4)`, :math:`w_2 = 3 e^{-\frac12((z_1-1)/0.6)^2}`,
    :math:`w_3 = 3\,\sigma((z_1-1)/0.3)`:

    .. math::
        U_1 &= \tfrac12\Big(\frac{\|\mathbf z\|-2}{0.4}\Big)^2
              - \log\Big(e^{-\frac12(\frac{z_1-2}{0.6})^2} + e^{-\frac12(\frac{z_1+2}{0.6})^2}\Big) \\
        U_2 &= \tfrac12\Big(\frac{z_2-w_1}{0.4}\Big)^2 \\
        U_3 &= -\log\Big(e^{-\frac12(\frac{z_2-w_1}{0.35})^2} + e^{-\frac12(\frac{z_2-w_1+w_2}{0.35})^2}\Big) \\
        U_4 &= -\log\Big(e^{-\frac12(\frac{z_2-w_1}{0.4})^2} + e^{-\frac12(\frac{z_2-w_1+w_3}{0.35})^2}\Big)

    ``z`` has shape ``(..., 2)``; returns shape ``(...)``. Pure autograd.numpy (log-sum-exps computed
    stably with ``logaddexp``). The gradient of U1 is undefined at the origin (``||z||``).
    """
    z = anp.asarray(z, dtype=float) if not hasattr(z, "shape") else z
    if np.shape(z)[-1:] != (2,):
        raise ValueError(f"toy densities are 2-D: z must have shape (..., 2), got {np.shape(z)}")
    z1, z2 = z[..., 0], z[..., 1]
    if name == "U1":
        radius = anp.sqrt(z1**2 + z2**2)
        return (0.5 * ((radius - 2.0) / 0.4) ** 2
                - anp.logaddexp(-0.5 * ((z1 - 2.0) / 0.6) ** 2, -0.5 * ((z1 + 2.0) / 0.6) ** 2))
    if name == "U2":
        return 0.5 * ((z2 - _w1(z1)) / 0.4) ** 2
    if name == "U3":
        return -anp.logaddexp(-0.5 * ((z2 - _w1(z1)) / 0.35) ** 2,
                              -0.5 * ((z2 - _w1(z1) + _w2(z1)) / 0.35) ** 2)
    if name == "U4":
        return -anp.logaddexp(-0.5 * ((z2 - _w1(z1)) / 0.4) ** 2,
                              -0.5 * ((z2 - _w1(z1) + _w3(z1)) / 0.35) ** 2)
    raise ValueError(f"unknown toy density {name!r}; choose one of {TOY_DENSITIES}")


def toy_log_density(name, z):
    r"""Unnormalized log-density :math:`\log \tilde p(\mathbf z) = -U(\mathbf z)` of a toy density
    (Rezende & Mohamed 2015, table 1; see :func:`toy_energy`). ``z`` (..., 2) -> (...)."""
    return -toy_energy(name, z)


def toy_density_grid(name, limits=(-4.0, 4.0), n=200):
    """Evaluate a toy density on an ``n`` x ``n`` grid for plotting.

    Returns ``(z1, z2, density)``, each ``(n, n)`` (``numpy.meshgrid`` "xy" layout, ready for
    ``plt.contourf(z1, z2, density)``), with ``density = exp(log p~ - max log p~)``, i.e. the
    unnormalized density scaled to a maximum of 1 on the grid.
    """
    lo, hi = limits
    z1, z2 = np.meshgrid(np.linspace(lo, hi, n), np.linspace(lo, hi, n))
    log_p = np.asarray(toy_log_density(name, np.stack([z1, z2], axis=-1)))
    return z1, z2, np.exp(log_p - log_p.max())


# --- the linear-Gaussian testbed -----------------------------------------------------------------


@dataclass(frozen=True)
class LinearGaussian:
    r"""The linear-Gaussian model :math:`p(\mathbf z)=\mathcal N(\mathbf 0,\mathbf I_K)`,
    :math:`p(\mathbf x\mid\mathbf z)=\mathcal N(\mathbf W\mathbf z+\mathbf b, s^2\mathbf I_D)`
    with ``W`` (D, K), ``b`` (D,), ``log_s`` = :math:`\log s`. Methods delegate to
    :mod:`vae_from_scratch.numpy.testbed`, where the exact formulas live."""

    W: np.ndarray
    b: np.ndarray
    log_s: float

    @property
    def data_dim(self):
        return self.W.shape[0]

    @property
    def latent_dim(self):
        return self.W.shape[1]

    def log_joint(self, x, z):
        r""":math:`\log p(\mathbf x, \mathbf z)`, ``x`` (..., D), ``z`` (..., K) -> (...)."""
        return _testbed.log_joint(x, z, self.W, self.b, self.log_s)

    def log_marginal(self, x):
        r"""Exact :math:`\log p(\mathbf x)`, ``x`` (..., D) -> (...)."""
        return _testbed.log_marginal(x, self.W, self.b, self.log_s)

    def posterior(self, x):
        r"""Exact :math:`p(\mathbf z\mid\mathbf x)` as ``(mean (..., K), cov (K, K))``."""
        return _testbed.posterior(x, self.W, self.b, self.log_s)

    def sample(self, rng, n):
        """``n`` draws ``(x (n, D), z (n, K))`` from the model using the numpy Generator ``rng``."""
        return _testbed.sample(rng, n, self.W, self.b, self.log_s)


def linear_gaussian_testbed(seed=0, data_dim=5, latent_dim=2, noise_std=0.5):
    """A reproducible :class:`LinearGaussian`: ``W`` and ``b`` standard normal from ``seed``, and
    noise standard deviation ``noise_std`` (``log_s = log(noise_std)``)."""
    if noise_std <= 0:
        raise ValueError(f"noise_std must be positive, got {noise_std}")
    if data_dim < 1 or latent_dim < 1:
        raise ValueError(f"data_dim and latent_dim must be >= 1, got {data_dim}, {latent_dim}")
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((data_dim, latent_dim))
    b = rng.standard_normal(data_dim)
    return LinearGaussian(W=W, b=b, log_s=float(np.log(noise_std)))
