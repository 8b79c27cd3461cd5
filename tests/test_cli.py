"""``python -m vae_from_scratch train|evaluate`` on the 8x8 digits in a temporary folder (fast)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vae_from_scratch import cli
from vae_from_scratch.torch import training
from vae_from_scratch.torch.vae import VAE

ROOT = Path(__file__).resolve().parent.parent
SMALL = ["--dataset", "digits", "--arch", "small", "--hidden", "32", "--latent-dim", "4",
         "--device", "cpu", "--no-progress"]


def _json_lines(text):
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_train_then_evaluate(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["train", *SMALL, "--epochs", "2", "--out", str(out), "--eval-k", "20"]) == 0
    trained, evaluated = _json_lines(capsys.readouterr().out)
    assert trained["epochs"] == 2 and "train_elbo" in trained and "valid_elbo" in trained
    assert evaluated["k"] == 20 and evaluated["n"] == 250 and evaluated["nll"] > 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["config"]["extra"]["command"].startswith("python -m vae_from_scratch train")
    assert metrics["model"] == {"data_dim": 64, "hidden": [32], "latent_dim": 4, "activation": "tanh",
                                "posterior": "diagonal", "decoder": "bernoulli",
                                "posterior_options": {}, "decoder_options": {}}
    assert "test_k20" in metrics["evaluation"]

    assert cli.main(["evaluate", "--out", str(out), "--eval-k", "30", "--eval-n", "17", "--split", "valid",
                     "--device", "cpu", "--no-progress"]) == 0
    (result,) = _json_lines(capsys.readouterr().out)
    assert result["split"] == "valid" and result["n"] == 17 and result["k"] == 30
    assert set(json.loads((out / "metrics.json").read_text())["evaluation"]) == {"test_k20", "valid_k30_n17"}


def test_resume_from_the_command_line(tmp_path, capsys):
    out = str(tmp_path / "run")
    cli.main(["train", *SMALL, "--epochs", "1", "--out", out, "--eval-k", "0"])
    cli.main(["train", *SMALL, "--epochs", "3", "--out", out, "--eval-k", "0", "--resume",
              "--objective", "elbo"])
    assert _json_lines(capsys.readouterr().out)[-1]["epochs"] == 3
    assert training.load_checkpoint(Path(out) / "checkpoint.pt")["epoch"] == 3


def test_iwae_objective_and_k(tmp_path, capsys):
    out = tmp_path / "iwae"
    assert cli.main(["train", *SMALL, "--objective", "iwae", "--k", "4", "--epochs", "1", "--out", str(out),
                     "--eval-k", "0", "--no-validate"]) == 0
    (line,) = _json_lines(capsys.readouterr().out)
    assert "train_iwae" in line and "valid_elbo" not in line
    config = json.loads((out / "metrics.json").read_text())["config"]
    assert config["objective"] == "iwae" and config["k"] == 4


def test_errors_exit_with_a_message(tmp_path, capsys, monkeypatch):
    with pytest.raises(SystemExit) as err:  # argparse: unknown choice
        cli.main(["train", "--dataset", "cifar", "--out", str(tmp_path)])
    assert err.value.code == 2
    assert cli.main(["train", *SMALL, "--k", "3", "--out", str(tmp_path / "x")]) == 2
    assert "needs --objective iwae" in capsys.readouterr().err
    assert cli.main(["evaluate", "--out", str(tmp_path / "missing"), "--no-progress"]) == 2
    assert "no checkpoint" in capsys.readouterr().err

    monkeypatch.setattr(VAE, "elbo", lambda self, x, *a, **k: self.log_weights(x)[0] * float("nan"))
    assert cli.main(["train", *SMALL, "--threads", "zero", "--out", str(tmp_path / "t")]) == 2
    assert "positive integer, 'auto' or 'off'" in capsys.readouterr().err
    assert cli.main(["train", *SMALL, "--epochs", "2", "--out", str(tmp_path / "nan"), "--eval-k", "0",
                     "--autograd-step"]) == 1
    assert "NaN" in capsys.readouterr().err


@pytest.mark.slow
def test_python_dash_m_entry_point(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT), VAE_FROM_SCRATCH_DEVICE="cpu")
    done = subprocess.run([sys.executable, "-m", "vae_from_scratch", "train", *SMALL, "--epochs", "1",
                           "--out", str(tmp_path / "run"), "--eval-k", "10"], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    assert len(_json_lines(done.stdout)) == 2
    assert (tmp_path / "run" / "checkpoint.pt").is_file()
    helped = subprocess.run([sys.executable, "-m", "vae_from_scratch", "--help"], capture_output=True,
                            text=True, env=env, cwd=ROOT, timeout=120)
    assert helped.returncode == 0 and "train" in helped.stdout and "evaluate" in helped.stdout


@pytest.mark.parametrize("posterior", ["full", "iaf"])
def test_flow_posteriors_from_the_command_line(tmp_path, capsys, posterior):
    out = tmp_path / posterior
    flags = (["--flow-steps", "2", "--flow-hidden", "8", "--forget-bias", "2",
              "--flow-context-dim", "32"] if posterior == "iaf" else [])
    assert cli.main(["train", *SMALL, "--posterior", posterior, *flags, "--epochs", "1",
                     "--out", str(out), "--eval-k", "10"]) == 0
    trained, evaluated = _json_lines(capsys.readouterr().out)
    assert evaluated["nll"] > 0 and evaluated["nll"] < 1e4
    model = json.loads((out / "metrics.json").read_text())["model"]
    assert model["posterior"] == posterior
    if posterior == "iaf":
        assert model["posterior_options"] == {"steps": 2, "flow_hidden": [8, 8],
                                              "forget_bias": 2.0, "context_dim": 32}
    # the checkpoint rebuilds the same posterior
    loaded, _, _ = training.load_model(out / "checkpoint.pt")
    assert type(loaded.posterior).__name__ == {"full": "FullCovariancePosterior",
                                               "iaf": "IAFPosterior"}[posterior]


def test_flow_flags_need_the_iaf_posterior(tmp_path, capsys):
    assert cli.main(["train", *SMALL, "--flow-steps", "2", "--epochs", "1", "--out",
                     str(tmp_path / "x"), "--eval-k", "0"]) == 2
    assert "--posterior iaf" in capsys.readouterr().err
    assert cli.main(["train", *SMALL, "--forget-bias", "2", "--epochs", "1", "--out",
                     str(tmp_path / "y"), "--eval-k", "0"]) == 2
    assert "--posterior iaf" in capsys.readouterr().err


def test_burda_schedule_from_the_command_line(tmp_path, capsys):
    out = tmp_path / "burda"
    assert cli.main(["train", *SMALL, "--schedule", "burda", "--epochs", "5", "--limit", "50",
                     "--out", str(out), "--eval-k", "0", "--no-validate"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["config"]["schedule"] == "burda" and metrics["config"]["batch_size"] == 20
    rates = [e["lr"] for e in metrics["epochs"]]
    assert rates == pytest.approx([1e-3] + [1e-3 * 10 ** (-1 / 7)] * 3 + [1e-3 * 10 ** (-2 / 7)], rel=1e-12)
    parsed = cli.build_parser().parse_args(["train", "--out", "x", "--schedule", "burda"])
    assert parsed.epochs is None and parsed.batch_size is None  # 3,280 and 20 are filled in by _train


def test_a_fresh_run_refuses_to_overwrite_a_checkpoint(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["train", *SMALL, "--epochs", "2", "--out", str(out), "--eval-k", "0"]) == 0
    before = (out / "checkpoint.pt").read_bytes()
    metrics_before = (out / "metrics.json").read_text()
    capsys.readouterr()
    # the same command again, without --resume: refused before anything is written
    assert cli.main(["train", *SMALL, "--epochs", "1", "--out", str(out), "--eval-k", "0"]) == 2
    err = capsys.readouterr().err
    assert "already holds a checkpoint" in err and "--resume" in err and "--overwrite" in err
    assert (out / "checkpoint.pt").read_bytes() == before
    assert (out / "metrics.json").read_text() == metrics_before
    # both flags at once make no sense
    assert cli.main(["train", *SMALL, "--epochs", "3", "--out", str(out), "--eval-k", "0",
                     "--resume", "--overwrite"]) == 2
    assert "contradict" in capsys.readouterr().err
    # --overwrite replaces the run on purpose: a 1-epoch run where the 2-epoch one was
    assert cli.main(["train", *SMALL, "--epochs", "1", "--out", str(out), "--eval-k", "0",
                     "--overwrite"]) == 0
    assert training.load_checkpoint(out / "checkpoint.pt")["epoch"] == 1
    # an empty folder (or one without a checkpoint) is fine without either flag
    (tmp_path / "empty").mkdir()
    assert cli.main(["train", *SMALL, "--epochs", "1", "--out", str(tmp_path / "empty"),
                     "--eval-k", "0"]) == 0
