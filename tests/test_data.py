"""vae_from_scratch.data: binarized MNIST (shared npz, download, cache, errors), digits, toy densities,
linear-Gaussian testbed.

Downloads are tested against a small generated ``.amat`` served by ``http.server`` on 127.0.0.1
(ephemeral port), with the user cache redirected into ``tmp_path``: no test touches the network or
the real cache. Statistical tests are z-tests at 5 standard errors (two-sided false-failure rate
about 5.7e-7 each under the normal approximation); this file has 5 + 4 = 9 of them, < 1e-5 in total.
"""

import hashlib
import http.server
import socket
import threading

import numpy as np
import pytest
from autograd import grad
from autograd.test_util import check_grads
from scipy import stats

from vae_from_scratch import data
from vae_from_scratch.numpy import testbed

N_SMALL = 12  # rows of the generated .amat files

# The identity of the shared data set: /work/shared/data/README.md (sha256 of arr.tobytes()).
SHARED_SHA256 = {
    "train": "43490d4d6ac9002727af4426d8748609fdb7e4094fa65ad8d681ea60082a7a5a",
    "valid": "069b4f0beb389b776478c3e872b4df71c95ac4be64d7cbe6d32e24ebac8e6d5e",
    "test": "ca0294c3b8d984c7a1dc891015a8eea6f37bae59a34e35ea0fc8c47110a8dd86",
}
SHARED_MEAN = {"train": 0.130562, "valid": 0.131127, "test": 0.132512}


# --- helpers and fixtures ------------------------------------------------------------------------


def small_images(seed=0, n=N_SMALL):
    return np.random.default_rng(seed).integers(0, 2, size=(n, 784)).astype(np.uint8)


def to_amat(images, trailing=""):
    return "".join(" ".join(map(str, row)) + trailing + "\n" for row in images).encode()


def closed_port_url():
    """A base URL on 127.0.0.1 where nothing listens (the port was bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/datasets"


def all_files(folder):
    """Every file under ``folder`` (hidden and temporary ones included)."""
    if not folder.exists():
        return []
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves ``server.files[name] = (mode, body)``; modes reproduce failed transfers."""

    def do_GET(self):  # noqa: N802 (http.server API)
        entry = self.server.files.get(self.path.rsplit("/", 1)[-1])
        if entry is None:
            self.send_error(404, "no such file")
            return
        mode, body = entry
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        if mode != "cut_without_length":
            self.send_header("Content-Length", str(len(body)))  # the full length, even when cut
        self.end_headers()
        if mode.startswith("cut"):
            self.wfile.write(body[: len(body) // 2 + 7])  # stop mid-line, then close the connection
        else:
            self.wfile.write(body)
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    """An HTTP server on 127.0.0.1 serving ``server.files``; ``server.url`` is the base URL."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.files = {}
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}/datasets"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """Isolate the loader: no data folder, user cache in tmp_path, default URL unreachable."""
    monkeypatch.delenv(data.DATA_ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv(data.URL_ENV_VAR, closed_port_url())
    folder = tmp_path / "xdg" / "vae_from_scratch"
    assert data.user_cache_dir() == folder
    return folder


# --- the shared binarized MNIST --------------------------------------------------------------------


@pytest.mark.parametrize("split", data.MNIST_SPLITS)
def test_shared_mnist_shape_dtype_values(shared_data_dir, split):
    images = data.load_binarized_mnist(split)
    assert images.shape == (data.MNIST_SIZES[split], 784)
    assert images.dtype == np.uint8
    assert set(np.unique(images)) == {0, 1}
    assert abs(images.mean() - SHARED_MEAN[split]) < 1e-6
    np.testing.assert_array_equal(data.load_binarized_mnist(split, path=shared_data_dir), images)


@pytest.mark.parametrize("split", data.MNIST_SPLITS)
def test_shared_mnist_sha256_matches_readme(shared_data_dir, split):
    images = data.load_binarized_mnist(split)
    assert hashlib.sha256(images.tobytes()).hexdigest() == SHARED_SHA256[split]


# --- download, cache, interrupted transfers ------------------------------------------------------


def test_download_validates_and_caches(server, cache):
    images = small_images()
    server.files["binarized_mnist_test.amat"] = ("ok", to_amat(images, trailing=" "))
    loaded = data.load_binarized_mnist("test", url=server.url, expected_rows=N_SMALL)
    assert loaded.dtype == np.uint8 and loaded.shape == (N_SMALL, 784)
    np.testing.assert_array_equal(loaded, images)
    assert all_files(cache) == ["binarized_mnist_test.npy"]  # no temporary files left behind
    # The second call reads the cache: it works with the server gone.
    server.files.clear()
    np.testing.assert_array_equal(
        data.load_binarized_mnist("test", url=closed_port_url(), expected_rows=N_SMALL), images)


def test_download_base_url_from_env_var(server, cache, monkeypatch):
    images = small_images(1)
    server.files["binarized_mnist_valid.amat"] = ("ok", to_amat(images))
    monkeypatch.setenv(data.URL_ENV_VAR, server.url)
    np.testing.assert_array_equal(data.load_binarized_mnist("valid", expected_rows=N_SMALL), images)


BAD_TRANSFERS = {
    # mode, body -> the error must mention one of these words
    "cut_with_length": ("cut_with_length", None, "interrupted"),
    "cut_without_length": ("cut_without_length", None, "ragged"),
    "too_few_rows": ("ok", to_amat(small_images()[:-1]), "expected 12 images"),
    "non_binary_values": ("ok", to_amat(2 * small_images()), "0 and 1"),
    "binary_garbage": ("ok", np.random.default_rng(3).bytes(20_000), "amat"),
    "html_page": ("ok", b"<html><body>moved</body></html>\n", "non-numeric"),
    "http_404": (None, None, "404"),
}


@pytest.mark.parametrize("case", sorted(BAD_TRANSFERS))
def test_bad_download_leaves_no_cache_and_a_later_download_succeeds(server, cache, case):
    mode, body, words = BAD_TRANSFERS[case]
    images = small_images()
    if mode is not None:
        server.files["binarized_mnist_train.amat"] = (mode, to_amat(images) if body is None else body)
    with pytest.raises((ValueError, FileNotFoundError), match=words) as info:
        data.load_binarized_mnist("train", url=server.url, expected_rows=N_SMALL)
    assert data.DATA_ENV_VAR in str(info.value)  # the error also says how to supply the data
    assert all_files(cache) == []  # neither a partial download nor a cache file
    server.files["binarized_mnist_train.amat"] = ("ok", to_amat(images))
    np.testing.assert_array_equal(
        data.load_binarized_mnist("train", url=server.url, expected_rows=N_SMALL), images)
    assert all_files(cache) == ["binarized_mnist_train.npy"]


def test_interrupted_cache_write_leaves_nothing(server, cache, monkeypatch):
    """A crash while the validated array is being written to the cache leaves no file at all."""
    images = small_images()
    server.files["binarized_mnist_train.amat"] = ("ok", to_amat(images))
    real_save = np.save

    def save_then_crash(file, array, **kwargs):
        real_save(file, array[: len(array) // 2], **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(data.np, "save", save_then_crash)
    with pytest.raises(KeyboardInterrupt):
        data.load_binarized_mnist("train", url=server.url, expected_rows=N_SMALL)
    assert all_files(cache) == []
    monkeypatch.setattr(data.np, "save", real_save)
    np.testing.assert_array_equal(
        data.load_binarized_mnist("train", url=server.url, expected_rows=N_SMALL), images)


def test_invalid_cache_file_is_replaced_by_a_download(server, cache):
    images = small_images()
    server.files["binarized_mnist_train.amat"] = ("ok", to_amat(images))
    cache.mkdir(parents=True)
    np.save(cache / "binarized_mnist_train.npy", images[:5])  # altered by hand: wrong row count
    with pytest.warns(UserWarning, match="invalid cache file"):
        loaded = data.load_binarized_mnist("train", url=server.url, expected_rows=N_SMALL)
    np.testing.assert_array_equal(loaded, images)
    np.testing.assert_array_equal(np.load(cache / "binarized_mnist_train.npy"), images)


def test_offline_error_says_how_to_supply_the_data(cache):
    with pytest.raises(FileNotFoundError) as info:
        data.load_binarized_mnist("train", url=closed_port_url())
    message = str(info.value)
    for needle in (data.DATA_ENV_VAR, "path=", "binarized_mnist.npz", "binarized_mnist_train.amat",
                   "binarized_mnist_valid.amat", "binarized_mnist_test.amat", data.DEFAULT_MNIST_URL,
                   data.URL_ENV_VAR, str(cache)):
        assert needle in message, needle
    assert all_files(cache) == []


def test_download_disabled_error(cache):
    with pytest.raises(FileNotFoundError, match=data.DATA_ENV_VAR):
        data.load_binarized_mnist("valid", download=False)


# --- lookup order ---------------------------------------------------------------------------------


def write_npz(folder, seed):
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {split: small_images(seed + i) for i, split in enumerate(data.MNIST_SPLITS)}
    np.savez(folder / "binarized_mnist.npz", **arrays)
    return arrays


def test_lookup_order_path_env_cache_download(tmp_path, server, cache, monkeypatch):
    load = lambda **kw: data.load_binarized_mnist("test", url=server.url, expected_rows=N_SMALL, **kw)
    server.files["binarized_mnist_test.amat"] = ("ok", to_amat(small_images(40)))
    np.testing.assert_array_equal(load(), small_images(40))  # 4. download (fills the cache)
    server.files.clear()
    np.testing.assert_array_equal(load(), small_images(40))  # 3. cache
    env_arrays = write_npz(tmp_path / "env", seed=10)
    monkeypatch.setenv(data.DATA_ENV_VAR, str(tmp_path / "env"))
    np.testing.assert_array_equal(load(), env_arrays["test"])  # 2. env var beats the cache
    explicit = tmp_path / "explicit"
    explicit.mkdir()
    (explicit / "binarized_mnist_test.amat").write_bytes(to_amat(small_images(20)))
    np.testing.assert_array_equal(load(path=explicit), small_images(20))  # 1. path (folder, .amat)
    np.testing.assert_array_equal(load(path=explicit / "binarized_mnist_test.amat"), small_images(20))
    other = write_npz(tmp_path / "other", seed=30)
    np.testing.assert_array_equal(load(path=tmp_path / "other" / "binarized_mnist.npz"), other["test"])


def test_env_var_folder_without_data_falls_through_and_is_named(tmp_path, cache, monkeypatch):
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv(data.DATA_ENV_VAR, str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError, match="holds no such file"):
        data.load_binarized_mnist("train", url=closed_port_url())


def test_explicit_path_without_data_is_an_error(tmp_path, cache):
    with pytest.raises(FileNotFoundError, match="binarized_mnist_valid.amat"):
        data.load_binarized_mnist("valid", path=tmp_path)


def test_local_files_are_validated(tmp_path, cache):
    images = small_images()
    truncated = tmp_path / "binarized_mnist_train.amat"
    truncated.write_bytes(to_amat(images)[:-100])  # the last line is cut
    with pytest.raises(ValueError, match="ragged"):
        data.load_binarized_mnist("train", path=truncated, expected_rows=N_SMALL)
    good = tmp_path / "good.amat"
    good.write_bytes(to_amat(images))
    with pytest.raises(ValueError, match="expected 50000 images"):  # the canonical size by default
        data.load_binarized_mnist("train", path=good)
    np.savez(tmp_path / "no_test.npz", train=images)
    with pytest.raises(ValueError, match="no array 'test'"):
        data.load_binarized_mnist("test", path=tmp_path / "no_test.npz", expected_rows=N_SMALL)
    np.save(tmp_path / "wide.npy", np.zeros((N_SMALL, 785), np.uint8))
    with pytest.raises(ValueError, match=r"shape \(N, 784\)"):
        data.load_binarized_mnist("train", path=tmp_path / "wide.npy", expected_rows=N_SMALL)
    np.save(tmp_path / "gray.npy", images * 255)
    with pytest.raises(ValueError, match="0 or 1"):
        data.load_binarized_mnist("train", path=tmp_path / "gray.npy", expected_rows=N_SMALL)


@pytest.mark.parametrize("split", ["training", "val", "", None, 0])
def test_bad_split_name(split, cache):
    with pytest.raises(ValueError, match="split must be one of"):
        data.load_binarized_mnist(split)


def test_parse_amat_formats_and_errors():
    images = small_images()[:, :6]
    text = "\n".join(" ".join(f"{v:.1f}" for v in row) for row in images)  # "1.0 0.0 ..." spelling
    np.testing.assert_array_equal(data.parse_amat(text), images)
    np.testing.assert_array_equal(data.parse_amat(to_amat(images, trailing="\t").replace(b"\n", b"\r\n")),
                                  images)
    with pytest.raises(ValueError, match="empty"):
        data.parse_amat(b"\n \n")
    with pytest.raises(ValueError, match="ragged"):
        data.parse_amat(b"0 1 0\n1 0\n")
    with pytest.raises(ValueError, match="0 and 1"):
        data.parse_amat(b"0 1 0.5\n1 0 1\n")
    with pytest.raises(ValueError, match="non-numeric"):
        data.parse_amat(b"0 1 ab\n1 0 1\n")


# --- binarized 8x8 digits ------------------------------------------------------------------------


def test_binarized_digits():
    from sklearn.datasets import load_digits

    images, labels = data.load_binarized_digits(return_labels=True)
    assert images.shape == (1797, 64) and images.dtype == np.uint8
    assert set(np.unique(images)) == {0, 1}
    assert labels.shape == (1797,) and set(np.unique(labels)) == set(range(10))
    gray = load_digits().data
    np.testing.assert_array_equal(images, (gray > 7).astype(np.uint8))
    np.testing.assert_array_equal(data.load_binarized_digits(threshold=0), (gray > 0).astype(np.uint8))
    assert 0.2 < images.mean() < 0.5  # a threshold of 7 of 16 keeps the strokes, not the background


# --- toy densities -------------------------------------------------------------------------------


def reference_energy(name, z1, z2):
    """Table 1 of Rezende & Mohamed (2015), written out with plain exp/log (fine at moderate z)."""
    w1 = np.sin(2 * np.pi * z1 / 4)
    w2 = 3 * np.exp(-0.5 * ((z1 - 1) / 0.6) ** 2)
    w3 = 3 / (1 + np.exp(-(z1 - 1) / 0.3))
    if name == "U1":
        r = np.hypot(z1, z2)
        return 0.5 * ((r - 2) / 0.4) ** 2 - np.log(np.exp(-0.5 * ((z1 - 2) / 0.6) ** 2)
                                                   + np.exp(-0.5 * ((z1 + 2) / 0.6) ** 2))
    if name == "U2":
        return 0.5 * ((z2 - w1) / 0.4) ** 2
    if name == "U3":
        return -np.log(np.exp(-0.5 * ((z2 - w1) / 0.35) ** 2) + np.exp(-0.5 * ((z2 - w1 + w2) / 0.35) ** 2))
    return -np.log(np.exp(-0.5 * ((z2 - w1) / 0.4) ** 2) + np.exp(-0.5 * ((z2 - w1 + w3) / 0.35) ** 2))


@pytest.mark.parametrize("name", data.TOY_DENSITIES)
def test_toy_density_values_shapes_gradients(name):
    rng = np.random.default_rng(0)
    z = rng.uniform(-3, 3, size=(3, 5, 2))
    log_p = data.toy_log_density(name, z)
    assert log_p.shape == (3, 5) and np.all(np.isfinite(log_p))
    np.testing.assert_allclose(-log_p, reference_energy(name, z[..., 0], z[..., 1]), rtol=1e-12, atol=1e-12)
    far = data.toy_log_density(name, np.array([[40.0, -40.0], [-1e3, 1e3]]))
    assert np.all(np.isfinite(far))  # stable log-sum-exp: no log(0) far from the mass
    check_grads(lambda v: data.toy_log_density(name, v), modes=["rev"], order=2)(z[0] + 0.1)
    assert np.all(np.isfinite(grad(lambda v: np.sum(data.toy_log_density(name, v)))(z)))


def test_toy_density_known_values():
    # U1 only depends on |z1| and |z2|; on the circle |z| = 2 at z = (+-2, 0) its radial term vanishes.
    z = np.array([[0.7, 1.3], [0.7, -1.3], [-0.7, 1.3], [-0.7, -1.3]])
    u1 = data.toy_energy("U1", z)
    np.testing.assert_allclose(u1, u1[0], rtol=1e-14)
    expected = -np.logaddexp(0.0, -0.5 * (4 / 0.6) ** 2)
    np.testing.assert_allclose(data.toy_energy("U1", np.array([2.0, 0.0])), expected, rtol=1e-14)
    # U2 is zero exactly on the curve z2 = sin(pi z1 / 2).
    z1 = np.linspace(-4, 4, 9)
    np.testing.assert_allclose(data.toy_energy("U2", np.stack([z1, np.sin(np.pi * z1 / 2)], -1)), 0.0,
                               atol=1e-12)


def test_toy_density_grid_and_errors():
    z1, z2, density = data.toy_density_grid("U3", limits=(-4, 4), n=31)
    assert z1.shape == z2.shape == density.shape == (31, 31)
    assert density.max() == 1.0 and density.min() >= 0.0
    assert z1[0, 0] == -4 and z1[0, -1] == 4 and z2[-1, 0] == 4  # meshgrid "xy" layout
    with pytest.raises(ValueError, match="unknown toy density"):
        data.toy_log_density("U5", np.zeros(2))
    with pytest.raises(ValueError, match=r"\(\.\.\., 2\)"):
        data.toy_log_density("U1", np.zeros((4, 3)))


# --- linear-Gaussian testbed ---------------------------------------------------------------------


@pytest.fixture
def model():
    return data.linear_gaussian_testbed(seed=1, data_dim=4, latent_dim=2, noise_std=0.7)


def test_testbed_construction(model):
    assert model.data_dim == 4 and model.latent_dim == 2
    assert model.W.shape == (4, 2) and model.b.shape == (4,) and np.isclose(np.exp(model.log_s), 0.7)
    again = data.linear_gaussian_testbed(seed=1, data_dim=4, latent_dim=2, noise_std=0.7)
    np.testing.assert_array_equal(again.W, model.W)
    assert not np.array_equal(data.linear_gaussian_testbed(seed=2, data_dim=4, latent_dim=2).W, model.W)
    with pytest.raises(ValueError, match="noise_std"):
        data.linear_gaussian_testbed(noise_std=0.0)
    x = np.random.default_rng(0).standard_normal((3, 5, 4))
    assert model.log_marginal(x).shape == (3, 5)
    mean, cov = model.posterior(x)
    assert mean.shape == (3, 5, 2) and cov.shape == (2, 2)
    np.testing.assert_array_equal(model.log_marginal(x), testbed.log_marginal(x, model.W, model.b, model.log_s))


def test_testbed_exact_log_marginal_against_monte_carlo(model):
    """p(x) = E_{p(z)}[p(x|z)]: the plain Monte Carlo mean over M prior draws, 5-SE z-test per point.

    p(x|z) is bounded, so the CLT applies; 5 points x 5.7e-7 = 3e-6 false-failure rate. A model with
    s instead of s^2 in the covariance, or W scaled by 1.05, fails by 8-56 standard errors.
    """
    rng = np.random.default_rng(0)
    x, _ = model.sample(rng, 5)
    M = 200_000
    z = rng.standard_normal((M, 1, model.latent_dim))
    log_lik = model.log_joint(x, z) - stats.norm.logpdf(z).sum(-1)  # log p(x|z), shape (M, 5)
    weights = np.exp(log_lik)
    estimate = weights.mean(0)
    se = weights.std(0, ddof=1) / np.sqrt(M)
    exact = np.exp(model.log_marginal(x))
    assert np.all(np.abs(estimate - exact) < 5 * se), (estimate - exact) / se
    assert np.all(se < 0.01 * exact)  # the test has power: SE is below 1% of the value


def test_testbed_exact_posterior_is_bayes_rule(model):
    """log p(x, z) - log p(z|x) = log p(x) for every z (Bayes' rule), with the exact Gaussian posterior."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, model.data_dim))
    z = 2.0 * rng.standard_normal((7, 3, model.latent_dim))
    mean, cov = model.posterior(x)
    log_post = np.stack([stats.multivariate_normal(mean[i], cov).logpdf(z[:, i]) for i in range(3)], -1)
    difference = model.log_joint(x, z) - log_post  # (7, 3)
    np.testing.assert_allclose(difference, np.broadcast_to(model.log_marginal(x), (7, 3)), rtol=0, atol=1e-10)
    assert np.ptp(difference, axis=0).max() < 1e-10  # constant in z


def test_testbed_sample_moments(model):
    """x ~ N(b, W W^T + s^2 I): per-coordinate mean, 5-SE z-tests (4 x 5.7e-7)."""
    x, z = model.sample(np.random.default_rng(2), 100_000)
    assert x.shape == (100_000, 4) and z.shape == (100_000, 2)
    var = np.diag(model.W @ model.W.T) + np.exp(2 * model.log_s)
    assert np.all(np.abs(x.mean(0) - model.b) < 5 * np.sqrt(var / len(x)))
