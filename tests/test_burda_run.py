"""The Burda-schedule run of chapter 5 (book/results/ch05_burda_schedule.json): its record is the
complete schedule, its evaluation agrees with the per-image estimates saved beside it, and the model
that ships as ``burda_vae`` is that run's final model. (The run's training checkpoint and metrics are
in git history at commit 42271e8; resuming mid-schedule is tested in tests/test_training.py.)"""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from vae_from_scratch.torch import pretrained, training

ROOT = Path(__file__).resolve().parent.parent
RECORD = ROOT / "book" / "results" / "ch05_burda_schedule.json"
ESTIMATES = ROOT / "book" / "results" / "burda_vae" / "test_log_px_k5000.npy"


@pytest.fixture(scope="module")
def record():
    return json.loads(RECORD.read_text())


def test_record_is_the_complete_schedule(record):
    assert record["complete"] and record["epochs_done"] == record["epochs_total"] == 3280
    curve = record["curve"]
    assert curve["epoch"] == list(range(1, 3281)) and len(curve["valid_elbo"]) == 3280
    config = training.TrainConfig(schedule="burda", epochs=3280, batch_size=20)
    for epoch, lr in zip(curve["epoch"], curve["lr"]):
        assert lr == pytest.approx(training.learning_rate(config, epoch - 1), rel=1e-5)
    assert "--schedule burda" in record["train_command"] and "--resume" not in record["train_command"]
    assert record["resume_command"] == record["train_command"] + " --resume"


def test_evaluation_agrees_with_the_saved_per_image_estimates(record):
    ev = record["evaluation"]
    log_px = np.load(ESTIMATES)
    assert ev["k"] == 5000 and ev["n"] == len(log_px) == 10000
    assert ev["test_nll"] == pytest.approx(-log_px.mean(), abs=2e-3)
    assert ev["test_nll_se"] == pytest.approx(log_px.std(ddof=1) / math.sqrt(len(log_px)), abs=2e-3)
    assert ev["difference_to_published"] == pytest.approx(ev["test_nll"] - 88.71, abs=2e-3)


def test_shipped_burda_vae_is_the_final_model_of_the_run(record):
    entry = pretrained.pretrained_info("burda_vae")
    assert entry["epochs"] == 3280 and entry["command"] == record["train_command"]
    assert entry["results"] == "book/results/ch05_burda_schedule.json"
