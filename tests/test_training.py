"""The training loop: resumable bit for bit, a clear error on NaN, atomic checkpoints, no per-step sync.

All runs use scikit-learn's 8x8 digits (1,297 training images) and a small network: fast on a CPU.
Deterministic tests only.
"""

import json

import numpy as np
import pytest
import torch

from vae_from_scratch.torch import training
from vae_from_scratch.torch.vae import VAE


def config(**overrides):
    base = dict(dataset="digits", arch="small", hidden=[32], latent_dim=4, epochs=4, batch_size=100,
                lr=3e-3, seed=0)
    base.update(overrides)
    return training.TrainConfig(**base)


def _history(metrics):
    return [{k: v for k, v in e.items() if k != "seconds"} for e in metrics["epochs"]]


def test_digits_splits_are_disjoint_and_fixed():
    parts = {s: training.load_dataset("digits", s) for s in ("train", "valid", "test")}
    assert [len(p) for p in parts.values()] == [1297, 250, 250]
    rows = [tuple(r) for p in parts.values() for r in p]
    assert len(parts["train"][0]) == 64 and set(np.unique(parts["test"])) <= {0, 1}
    np.testing.assert_array_equal(training.load_dataset("digits", "test"), parts["test"])
    assert len(rows) == 1797
    with pytest.raises(ValueError, match="split"):
        training.load_dataset("digits", "holdout")
    with pytest.raises(ValueError, match="dataset"):
        training.load_dataset("cifar")


def test_training_improves_and_writes_checkpoint_and_metrics(tmp_path):
    model, metrics = training.train(config(), out_dir=tmp_path, device="cpu")
    values = [e["train_elbo"] for e in metrics["epochs"]]
    assert len(values) == 4 and values[-1] > values[0] + 0.5
    assert metrics["status"] == "trained"
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert _history(saved) == _history(metrics) and saved["config"]["dataset"] == "digits"
    loaded, cfg, state = training.load_model(tmp_path / "checkpoint.pt")
    assert state["epoch"] == 4 and cfg.latent_dim == 4
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt", "metrics.json"]  # no temp files


def test_resume_gives_the_same_result_as_an_uninterrupted_run(tmp_path):
    straight, m_straight = training.train(config(objective="iwae", k=3), out_dir=tmp_path / "a", device="cpu")
    training.train(config(objective="iwae", k=3, epochs=2), out_dir=tmp_path / "b", device="cpu")
    resumed, m_resumed = training.train(config(objective="iwae", k=3), out_dir=tmp_path / "b", resume=True,
                                        device="cpu", log=lambda *a: None)
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), f"{name} differs after resuming"
    assert _history(m_straight) == _history(m_resumed)
    # and an interruption at a different epoch does not matter either
    training.train(config(objective="iwae", k=3, epochs=1), out_dir=tmp_path / "c", device="cpu")
    training.train(config(objective="iwae", k=3, epochs=3), out_dir=tmp_path / "c", resume=True,
                   device="cpu", log=lambda *a: None)
    again, _ = training.train(config(objective="iwae", k=3), out_dir=tmp_path / "c", resume=True,
                              device="cpu", log=lambda *a: None)
    assert all(torch.equal(a, b) for a, b in zip(straight.state_dict().values(), again.state_dict().values()))


def test_resume_checks(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        training.train(config(), out_dir=tmp_path, resume=True, device="cpu")
    training.train(config(epochs=1), out_dir=tmp_path, device="cpu")
    with pytest.raises(ValueError, match="trained with"):
        training.train(config(latent_dim=5), out_dir=tmp_path, resume=True, device="cpu")


def test_nan_stops_training_with_a_clear_message(tmp_path, monkeypatch):
    """The objective turns NaN at the 30th step (epoch 3, step 4 with 13 steps per epoch): training
    stops with TrainingDiverged naming the epoch, the step and what to do; the checkpoint of epoch 2
    stays intact and metrics.json says "diverged"."""
    original = VAE.elbo
    calls = {"n": 0}

    def poisoned(self, x, eps=None, generator=None):
        value = original(self, x, eps=eps, generator=generator)
        if not torch.is_grad_enabled():         # the validation ELBO: leave it alone
            return value
        calls["n"] += 1
        return value * float("nan") if calls["n"] >= 30 else value

    monkeypatch.setattr(VAE, "elbo", poisoned)
    with pytest.raises(training.TrainingDiverged) as err:
        training.train(config(), out_dir=tmp_path, device="cpu")
    message = str(err.value)
    assert "NaN" in message and "step 4 of epoch 3" in message and "--lr" in message
    assert "epoch 2" in message and str(tmp_path / "checkpoint.pt") in message
    state = training.load_checkpoint(tmp_path / "checkpoint.pt")
    assert state["epoch"] == 2
    assert all(torch.isfinite(t).all() for t in state["model"].values())
    assert json.loads((tmp_path / "metrics.json").read_text())["status"] == "diverged"


def test_nan_weights_from_the_start(monkeypatch):
    real_build = training.build_vae

    def broken(*args, **kwargs):
        model = real_build(*args, **kwargs)
        with torch.no_grad():
            model.trunk[0].weight[0, 0] = float("nan")
        return model

    monkeypatch.setattr(training, "build_vae", broken)
    with pytest.raises(training.TrainingDiverged, match="step 1 of epoch 1"):
        training.train(config(epochs=1), device="cpu")


def test_non_binary_data_is_rejected_once_up_front():
    with pytest.raises(ValueError, match="binary"):
        training.to_device_tensor(np.full((3, 4), 0.5), "cpu")
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        training.to_device_tensor(np.zeros(4), "cpu")


def test_checkpoint_writes_are_atomic(tmp_path, monkeypatch):
    """A crash in the middle of writing a checkpoint leaves the previous checkpoint intact and no
    temporary file behind; a crash on the first write leaves no checkpoint at all."""
    training.train(config(epochs=1), out_dir=tmp_path, device="cpu")
    good = (tmp_path / "checkpoint.pt").read_bytes()
    real_save = torch.save

    def crash_midway(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)
        f.truncate(100)  # half a file on disk
        raise OSError("disk full")

    monkeypatch.setattr(training.torch, "save", crash_midway)
    with pytest.raises(OSError, match="disk full"):
        training.train(config(epochs=2), out_dir=tmp_path, resume=True, device="cpu", log=lambda *a: None)
    assert (tmp_path / "checkpoint.pt").read_bytes() == good
    assert training.load_checkpoint(tmp_path / "checkpoint.pt")["epoch"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt", "metrics.json"]
    fresh = tmp_path / "fresh"
    with pytest.raises(OSError, match="disk full"):
        training.train(config(epochs=1), out_dir=fresh, device="cpu")
    assert not (fresh / "checkpoint.pt").exists()
    assert [p.name for p in fresh.iterdir() if p.name.endswith(".tmp")] == []


def test_run_epoch_does_not_synchronize_per_step(monkeypatch):
    """The loop reads nothing back from the device (SGD here: Adam keeps its step count on the host)."""
    data = training.to_device_tensor(training.load_dataset("digits")[:300], "cpu")
    model = VAE(64, (16,), 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    steps = []

    def forbidden(*args, **kwargs):
        raise AssertionError("host synchronization in the training loop")

    for name in ("item", "__bool__", "__float__", "__int__", "tolist"):
        monkeypatch.setattr(torch.Tensor, name, forbidden)
    mean, first_bad = training.run_epoch(model, optimizer, data, 50, "iwae", 2,
                                         torch.Generator().manual_seed(0), torch.Generator().manual_seed(1),
                                         on_step=lambda: steps.append(1))
    monkeypatch.undo()
    assert len(steps) == 6 and int(first_bad) == -1 and np.isfinite(float(mean))


def test_config_errors():
    for bad in (dict(objective="kl"), dict(dataset="cifar"), dict(k=0), dict(lr=0.0),
                dict(objective="elbo", k=5)):
        with pytest.raises(ValueError):
            config(**bad).check()


def test_evaluate_run_records_the_estimate(tmp_path):
    training.train(config(epochs=2), out_dir=tmp_path, device="cpu")
    result = training.evaluate_run(tmp_path, k=50, n=40, device="cpu", log=lambda *a: None)
    assert result["n"] == 40 and result["k"] == 50 and result["nll"] == -result["log_likelihood"]
    assert result["log_likelihood"] > result["elbo"] - 1.0  # IS estimate above the ELBO (up to noise)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["evaluation"]["test_k50_n40"]["nll"] == pytest.approx(result["nll"])
