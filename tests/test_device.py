"""vae_from_scratch.torch.device.default_device: cuda, then mps, then cpu; argument and env override.

Availability is simulated with monkeypatch, so every branch runs on a CPU-only machine; the last
test uses the real hardware (skipped where there is no CUDA).
"""

import pytest
import torch

from vae_from_scratch.torch import device as dev


@pytest.fixture
def hardware(monkeypatch):
    """Pretend which accelerators exist: ``hardware(cuda=..., mps=..., n_cuda=...)``."""
    monkeypatch.delenv(dev.ENV_VAR, raising=False)

    def set_hardware(cuda=False, mps=False, n_cuda=1):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: n_cuda if cuda else 0)
        monkeypatch.setattr(dev, "_mps_available", lambda: mps)

    return set_hardware


@pytest.mark.parametrize("cuda, mps, expected", [(True, True, "cuda"), (True, False, "cuda"),
                                                 (False, True, "mps"), (False, False, "cpu")])
def test_default_order_cuda_mps_cpu(hardware, cuda, mps, expected):
    hardware(cuda=cuda, mps=mps)
    assert dev.default_device() == torch.device(expected)


def test_env_var_overrides_the_default(hardware, monkeypatch):
    hardware(cuda=True, mps=True)
    monkeypatch.setenv(dev.ENV_VAR, "cpu")
    assert dev.default_device() == torch.device("cpu")
    monkeypatch.setenv(dev.ENV_VAR, "  cuda:0 ")
    assert dev.default_device() == torch.device("cuda:0")
    monkeypatch.setenv(dev.ENV_VAR, "mps")
    assert dev.default_device() == torch.device("mps")
    monkeypatch.setenv(dev.ENV_VAR, "   ")  # blank means unset
    assert dev.default_device() == torch.device("cuda")


def test_argument_beats_env_var(hardware, monkeypatch):
    hardware(cuda=True)
    monkeypatch.setenv(dev.ENV_VAR, "cuda")
    assert dev.default_device("cpu") == torch.device("cpu")
    assert dev.default_device(torch.device("cpu")) == torch.device("cpu")


@pytest.mark.parametrize("via", ["env", "argument"])
def test_cuda_requested_without_cuda_is_a_clear_error(hardware, monkeypatch, via):
    hardware(cuda=False, mps=False)
    if via == "env":
        monkeypatch.setenv(dev.ENV_VAR, "cuda")
    with pytest.raises(ValueError, match="CUDA is not available") as info:
        dev.default_device("cuda" if via == "argument" else None)
    assert (dev.ENV_VAR if via == "env" else "prefer") in str(info.value)


def test_other_unavailable_or_unknown_devices(hardware, monkeypatch):
    hardware(cuda=True, n_cuda=2)
    assert dev.default_device("cuda:1") == torch.device("cuda:1")
    with pytest.raises(ValueError, match="only 2 CUDA device"):
        dev.default_device("cuda:2")
    with pytest.raises(ValueError, match="MPS is not available"):
        dev.default_device("mps")
    monkeypatch.setenv(dev.ENV_VAR, "gpu")
    with pytest.raises(ValueError, match="unknown device 'gpu'"):
        dev.default_device()


def test_real_hardware_default_is_usable():
    """Without simulation: the chosen device can hold a tensor and compute on it."""
    device = dev.default_device()
    x = torch.arange(4.0, device=device)
    assert x.device.type == device.type and float((x * 2).sum()) == 12.0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_distributions_on_cuda_match_cpu():
    from vae_from_scratch.torch import distributions as td

    g = torch.Generator().manual_seed(0)
    mean, log_std, x = (torch.randn(8, 5, generator=g, dtype=torch.float64) for _ in range(3))
    cpu = td.log_normal_diag(x, mean, log_std) + td.kl_normal_standard(mean, log_std)
    cuda = td.log_normal_diag(x.cuda(), mean.cuda(), log_std.cuda()) + td.kl_normal_standard(mean.cuda(),
                                                                                          log_std.cuda())
    assert cuda.device.type == "cuda"
    assert torch.allclose(cuda.cpu(), cpu, rtol=1e-12, atol=1e-12)
    z = td.sample_normal_diag(mean.cuda(), log_std.cuda(), generator=torch.Generator(device="cuda").manual_seed(1),
                              sample_shape=(3,))
    assert z.shape == (3, 8, 5) and z.device.type == "cuda"
