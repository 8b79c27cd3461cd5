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
    with pytest.raises(training.TrainingDiverged) as err:  # the autograd path calls VAE.elbo
        training.train(config(fused_step=False), out_dir=tmp_path, device="cpu")
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


def test_burda_schedule_rates():
    """Burda et al. (2016), section 5: 3^i epochs at 1e-3 * 10^(-i/7), i = 0..7, 3,280 epochs."""
    cfg = config(schedule="burda", lr=1e-3)
    rates = [training.learning_rate(cfg, e) for e in range(training.BURDA_EPOCHS + 5)]
    assert training.BURDA_EPOCHS == 3280
    stages = []
    for rate in rates[:training.BURDA_EPOCHS]:
        if stages and stages[-1][0] == rate:
            stages[-1][1] += 1
        else:
            stages.append([rate, 1])
    assert [count for _, count in stages] == [3**i for i in range(8)]
    np.testing.assert_allclose([rate for rate, _ in stages], [1e-3 * 10 ** (-i / 7) for i in range(8)],
                               rtol=1e-12)
    assert rates[training.BURDA_EPOCHS:] == [stages[-1][0]] * 5  # past the schedule: the last rate
    assert training.learning_rate(config(lr=3e-3), 2000) == 3e-3  # "constant"
    with pytest.raises(ValueError, match="schedule"):
        config(schedule="cosine").check()


def test_burda_schedule_is_followed_per_epoch_and_resumes_mid_schedule(tmp_path):
    """A 14-epoch run (stages 0-3) uses the scheduled rate in every epoch, with Adam's eps 1e-4; stopped
    after epoch 6 (inside stage 2) and resumed, it ends with the same weights and rates."""
    tiny = dict(schedule="burda", lr=1e-3, epochs=14, limit=100, batch_size=50, validate=False)
    expected = [1e-3 * 10 ** (-i / 7) for i, n in enumerate([1, 3, 9, 1]) for _ in range(n)]
    straight, metrics = training.train(config(**tiny), out_dir=tmp_path / "a", device="cpu")
    np.testing.assert_allclose([e["lr"] for e in metrics["epochs"]], expected, rtol=1e-12)
    groups = training.load_checkpoint(tmp_path / "a" / "checkpoint.pt")["optimizer"]["param_groups"]
    assert all(g["eps"] == 1e-4 and g["betas"] == (0.9, 0.999) for g in groups)

    training.train(config(**{**tiny, "epochs": 6}), out_dir=tmp_path / "b", device="cpu")
    resumed, m_resumed = training.train(config(**tiny), out_dir=tmp_path / "b", resume=True,
                                        device="cpu", log=lambda *a: None)
    assert _history(m_resumed) == _history(metrics)
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), f"{name} differs after resuming mid-schedule"


def test_fused_adam_takes_the_steps_of_torchs_default_adam():
    """make_optimizer's (fused) Adam and torch.optim.Adam's default implementation: same updates."""
    torch.manual_seed(0)
    a = torch.randn(30, 20, requires_grad=True)
    b = a.detach().clone().requires_grad_(True)
    start = a.detach().clone()
    fused = training.make_optimizer([a], lr=1e-2, eps=1e-4)
    assert fused.defaults["fused"]  # torch 2.13 has the fused kernel on the CPU
    plain = torch.optim.Adam([b], lr=1e-2, eps=1e-4)
    target = torch.randn(30, 20)
    for _ in range(5):
        for p, opt in ((a, fused), (b, plain)):
            opt.zero_grad()
            ((p.tanh() - target) ** 2).sum().backward()
            opt.step()
    moved = (a.detach() - start).abs()
    assert moved.min() > 1e-3  # five steps of about lr each moved every entry
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_fused_step_gradients_equal_autograd_in_float64():
    """The hand-written backward of the default VAE (two tanh trunk layers here) gives autograd's
    gradients of -mean ELBO and the same per-datapoint ELBO, with the same noise, in float64."""
    from vae_from_scratch.torch import fused_step

    torch.manual_seed(3)
    model = VAE(64, (16, 12), 5).double()
    x = (torch.rand(30, 64, generator=torch.Generator().manual_seed(4)) < 0.4).double()
    assert fused_step.supports(model, "elbo") and not fused_step.supports(model, "iwae")
    value = model.elbo(x, generator=torch.Generator().manual_seed(7))
    (-value.mean()).backward()
    expected = {name: p.grad.clone() for name, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    bound = fused_step.elbo_gradients(model, x, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(bound, value.detach(), rtol=0, atol=1e-10)
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().max() > 0, name
        torch.testing.assert_close(p.grad, expected[name], rtol=0, atol=1e-12, msg=name)


def test_training_with_the_fused_step_learns_and_resumes(tmp_path):
    """Same noise, same minibatches: the fused step's run follows autograd's in float32 (to rounding)."""
    cfg = dict(fused_step=True, epochs=4, hidden=[32])
    straight, metrics = training.train(config(**cfg), out_dir=tmp_path / "a", device="cpu")
    values = [e["train_elbo"] for e in metrics["epochs"]]
    _, reference = training.train(config(**{**cfg, "fused_step": False}), device="cpu")
    assert training.training_step(straight, config()) is not None  # "auto": on for this model
    assert training.training_step(straight, config(objective="iwae", k=2)) is None
    assert training.training_step(straight, config(kl_warmup=0.5)) is None
    assert training.training_step(straight, config(free_bits=0.1)) is None
    np.testing.assert_allclose(values, [e["train_elbo"] for e in reference["epochs"]], atol=1e-3)
    assert values[-1] > values[0] + 0.5
    training.train(config(**{**cfg, "epochs": 1}), out_dir=tmp_path / "b", device="cpu")
    resumed, _ = training.train(config(**cfg), out_dir=tmp_path / "b", resume=True, device="cpu",
                                log=lambda *a: None)
    assert all(torch.equal(a, b) for a, b in zip(straight.state_dict().values(), resumed.state_dict().values()))
    with pytest.raises(ValueError, match="fused_step"):
        training.train(config(fused_step=True, objective="iwae", k=2, epochs=1), device="cpu")


def test_fused_step_declines_what_it_does_not_cover():
    from vae_from_scratch.torch import fused_step
    from vae_from_scratch.torch.vae import DiagonalGaussianPosterior

    assert not fused_step.supports(VAE(64, (16,), 4, "relu"), "elbo")

    class Other(DiagonalGaussianPosterior):  # a posterior built on the diagonal one
        pass

    model = VAE(64, (16,), 4)
    model.posterior = Other(16, 4)
    assert not fused_step.supports(model, "elbo")
