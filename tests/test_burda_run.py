"""The Burda-schedule run that ships in book/results/burda_vae (chapter 5): its checkpoint is
consistent with its record and resumes with the current code, as the next session's --resume will."""

import json
import shutil
from pathlib import Path

import pytest

from vae_from_scratch.torch import training

ROOT = Path(__file__).resolve().parent.parent
RUN = ROOT / "book" / "results" / "burda_vae"
RECORD = ROOT / "book" / "results" / "ch05_burda_schedule.json"


@pytest.fixture(scope="module")
def state():
    return training.load_checkpoint(RUN / training.CHECKPOINT)


def test_checkpoint_is_the_burda_schedule_and_matches_its_record(state):
    config = training.TrainConfig(**state["config"])
    assert (config.schedule, config.batch_size, config.epochs, config.arch) == ("burda", 20, 3280, "burda")
    assert state["epoch"] == len(state["history"]) >= 1
    record = json.loads(RECORD.read_text())
    # the record is made from the run's metrics.json at or before the checkpoint's epoch
    assert 1 <= record["epochs_done"] <= state["epoch"]
    assert record["complete"] == (record["epochs_done"] == 3280)
    assert record["resume_command"].endswith("--resume") and "--schedule burda" in record["train_command"]
    for e in state["history"]:
        assert e["lr"] == pytest.approx(training.learning_rate(config, e["epoch"] - 1))
    if record["complete"]:
        ev = record["evaluation"]
        assert ev["k"] == 5000 and ev["n"] == 10000 and ev["test_nll_se"] > 0
        assert ev["difference_to_published"] == pytest.approx(ev["test_nll"] - 88.71, abs=2e-3)


def test_committed_checkpoint_resumes_with_the_current_code(state, tmp_path, shared_data_dir):
    run = tmp_path / "burda_vae"
    run.mkdir()
    shutil.copy(RUN / training.CHECKPOINT, run / training.CHECKPOINT)
    config = training.TrainConfig(**state["config"])
    done = state["epoch"]
    config.epochs, config.limit, config.validate = done + 1, 200, False  # one more short epoch
    model, metrics = training.train(config, out_dir=run, resume=True, device="cpu", log=lambda *a: None)
    assert len(metrics["epochs"]) == done + 1
    assert metrics["epochs"][-1]["lr"] == pytest.approx(training.learning_rate(config, done))
    assert training.load_checkpoint(run / training.CHECKPOINT)["epoch"] == done + 1
