"""Record the Burda-schedule run (chapter 5): Burda et al.'s 3,280-epoch schedule, reproduced.

    # the run itself (hours on a CPU; resumable: the same command with --resume continues it)
    .venv/bin/python -m vae_from_scratch train --dataset mnist --schedule burda --batch-size 20 \\
        --eval-k 0 --no-progress --threads 1 --out book/results/burda_vae
    .venv/bin/python -m vae_from_scratch train --dataset mnist --schedule burda --batch-size 20 \\
        --eval-k 0 --no-progress --threads 1 --out book/results/burda_vae --resume
    # then (or at any point, for the progress so far)
    .venv/bin/python benchmarks/burda_schedule.py --run book/results/burda_vae

Reads the run folder's ``metrics.json`` and writes ``book/results/ch05_burda_schedule.json``: the
training command, the epochs done out of the schedule's 3,280, the learning curve (train and
validation ELBO, learning rate, active units per epoch), the training time, and, once the schedule is
complete (or with ``--evaluate`` at any point), the importance-sampled test log-likelihood with
``k = 5000`` on all 10,000 test images, its standard error over the images, the KL and the active
units on the test set, and the difference to Burda et al.'s 88.71 nats with its standard error (the
paper gives no standard error, so the difference's is ours alone). The evaluation's per-image
estimates are saved beside the run (``test_log_px_k5000.npy``) for paired comparisons.
"""

import argparse
import json
import platform
import shlex
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a clone
from vae_from_scratch.torch import training  # noqa: E402

PUBLISHED_NLL = 88.71  # Burda et al. 2016, appendix D: VAE, one stochastic layer, k = 5000
RESULTS = ROOT / "book" / "results" / "ch05_burda_schedule.json"


def learning_curve(epochs):
    """Per-epoch columns of the run's history (rounded: this is for plotting)."""
    return {"epoch": [e["epoch"] for e in epochs],
            "train_elbo": [round(e["train_elbo"], 3) for e in epochs],
            "valid_elbo": [round(e["valid_elbo"], 3) for e in epochs if "valid_elbo" in e],
            "lr": [float(f"{e['lr']:.6g}") for e in epochs],
            "active_units": [e.get("active_units") for e in epochs]}


def evaluate(run, k, n, workers):
    model, config, _ = training.load_model(run / training.CHECKPOINT)
    images = training.fixed_subset(training.load_dataset(config.dataset, "test"), n)
    result, log_px = training.evaluate_model(model, images, k=k, seed=0, workers=workers)
    np.save(run / f"test_log_px_k{k}.npy", log_px.numpy().astype(np.float64))
    sem = result["log_likelihood_sem"]
    return {"k": k, "n": result["n"], "test_nll": round(result["nll"], 3), "test_nll_se": round(sem, 3),
            "test_elbo": round(result["elbo"], 3), "kl": round(result["kl"], 3),
            "active_units": result["active_units"],
            "published_nll": PUBLISHED_NLL, "difference_to_published": round(result["nll"] - PUBLISHED_NLL, 3),
            "difference_se": round(sem, 3), "evaluation_seconds": round(result["seconds"], 1),
            "workers": result["workers"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", default=str(ROOT / "book" / "results" / "burda_vae"), help="the run folder")
    parser.add_argument("--record", default=str(RESULTS), help="the JSON file to write")
    parser.add_argument("--evaluate", action="store_true", help="evaluate even if the schedule is not complete")
    parser.add_argument("--eval-k", type=int, default=5000)
    parser.add_argument("--eval-n", type=int, default=None, help="a fixed random subset of N test images")
    parser.add_argument("--workers", type=int, default=None, help="evaluation threads (default: usable cores)")
    args = parser.parse_args()

    run = Path(args.run)
    metrics = json.loads((run / training.METRICS).read_text())
    epochs = metrics["epochs"]
    config = metrics["config"]
    done = len(epochs)
    # a resumed run records the resuming command; the run is the one without --resume
    first_command = (config["extra"].get("command") or "").replace(" --resume", "")
    record = {
        "description": "Burda et al.'s VAE (784-200-200-50 tanh, diagonal Gaussian, Bernoulli decoder) trained "
                       "on the ELBO with their schedule: lr 1e-3 * 10^(-i/7) for 3^i epochs, i = 0..7, "
                       "batch 20, Adam eps 1e-4",
        "train_command": first_command,
        "resume_command": first_command + " --resume",
        "record_command": "python benchmarks/burda_schedule.py " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
        "epochs_done": done, "epochs_total": training.BURDA_EPOCHS,
        "complete": done >= training.BURDA_EPOCHS,
        "training_hours": round(sum(e["seconds"] for e in epochs) / 3600, 2),  # wall clock, one thread
        "device": metrics.get("device"), "machine": f"{platform.machine()}, torch {torch.__version__}",
        "last_epoch": {key: (round(v, 4) if isinstance(v, float) else v) for key, v in epochs[-1].items()
                       if key not in ("kl_per_dim", "seconds")},
        "curve": learning_curve(epochs),
    }
    if record["complete"] or args.evaluate:
        record["evaluation"] = evaluate(run, args.eval_k, args.eval_n, args.workers)
        ev = record["evaluation"]
        print(f"after {done} epochs: test NLL {ev['test_nll']:.2f} +- {ev['test_nll_se']:.2f} nats "
              f"(k={ev['k']}, n={ev['n']}); Burda et al. {PUBLISHED_NLL}; difference "
              f"{ev['difference_to_published']:+.2f} +- {ev['difference_se']:.2f}; "
              f"active units {ev['active_units']}/50")
    else:
        print(f"{done} of {training.BURDA_EPOCHS} epochs done ({record['training_hours']} hours of training); "
              f"validation ELBO {epochs[-1]['valid_elbo']:.2f}; not evaluated (schedule incomplete)")
    text = dumps(record).encode()
    training._atomic_write(Path(args.record), lambda f: f.write(text))  # never a half-written record


def dumps(record):
    """Indented JSON with the learning curve's long columns one per line."""
    curve = record.pop("curve")
    text = json.dumps(record, indent=1)
    columns = ",\n".join(f"  {json.dumps(key)}: {json.dumps(values)}" for key, values in curve.items())
    return text[:-2] + ',\n "curve": {\n' + columns + "\n }\n}\n"


if __name__ == "__main__":
    main()
