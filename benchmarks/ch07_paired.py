"""Diagonal vs IAF posteriors, paired on the whole MNIST test set (chapter 7).

    .venv/bin/python benchmarks/ch07_paired.py --epochs 30 --eval-k 1000

Trains (or resumes) one VAE per configuration below with the package's training loop
(``python -m vae_from_scratch train``: Burda et al.'s 784-200-200-50 tanh network, Adam lr 1e-3,
batch 100, seed 0; only the posterior and the KL term differ), into ``--runs/<name>``. Then every
model is evaluated on the same 10,000 test images with the same number ``--eval-k`` of importance
samples and the same noise seed, and each configuration is compared with ``diagonal`` image by image:
the paired difference of the log p(x) estimates and its standard error
``std(d) / sqrt(10000)``. Per-model standard errors (about 0.25 nats here) are much larger than the
paired one, because most of the spread is between images, which both models share.

Results, with this command, go to the ``--key`` entry (default ``"paired"``) of ``--record``
(``book/results/ch07_flows.json``); the per-image estimates to ``<run>/test_log_px_k<k>.npy``.
"""

import argparse
import json
import math
import shlex
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a clone
from vae_from_scratch.torch import training  # noqa: E402

# name -> (TrainConfig fields beyond the shared ones, what the configuration tests)
CONFIGS = {
    "diagonal": ({}, "the baseline: a diagonal Gaussian"),
    "iaf": ({"posterior": "iaf", "posterior_options": {"steps": 2, "flow_hidden": [320, 320]}},
            "chapter 7's IAF: 2 gated steps, MADE 320-320, forget bias 1, context width 50"),
    "iaf_fb2_ctx200": ({"posterior": "iaf",
                        "posterior_options": {"steps": 2, "flow_hidden": [320, 320],
                                              "forget_bias": 2.0, "context_dim": 200}},
                       "each step nearer the identity at the start (sigma = sigmoid(s + 2) = 0.88) "
                       "and a context as wide as the trunk"),
    "iaf_fb2_ctx200_freebits": ({"posterior": "iaf",
                                 "posterior_options": {"steps": 2, "flow_hidden": [320, 320],
                                                       "forget_bias": 2.0, "context_dim": 200},
                                 "free_bits": 0.1},
                                "as above, trained with free bits, 0.1 nats per dimension"),
    "diagonal_freebits": ({"free_bits": 0.1}, "the diagonal Gaussian with the same free bits"),
}


def config_for(name, epochs, seed, limit=None, runs_flag=""):
    fields, _ = CONFIGS[name]
    command = f"python benchmarks/ch07_paired.py --only {name} --epochs {epochs}{runs_flag}"
    return training.TrainConfig(dataset="mnist", arch="burda", epochs=epochs, batch_size=100, lr=1e-3,
                                seed=seed, limit=limit, extra={"command": command}, **fields)


def train_or_resume(name, runs, epochs, seed, limit=None):
    """Train ``name`` into ``runs/name``, continuing from its checkpoint where there is one."""
    out = runs / name
    resume = (out / "checkpoint.pt").exists()
    default = (ROOT / "runs" / "ch07").resolve()
    runs_flag = "" if runs.resolve() == default else f" --runs {shlex.quote(str(runs))}"
    return training.train(config_for(name, epochs, seed, limit, runs_flag), out_dir=out, resume=resume,
                          device="cpu", log=lambda *a, **k: None)


def paired_difference(log_px, log_px_base):
    """Mean of ``log_px - log_px_base`` over the images and its standard error (nats)."""
    d = np.asarray(log_px, float) - np.asarray(log_px_base, float)
    return float(d.mean()), float(d.std(ddof=1) / math.sqrt(len(d)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--eval-k", type=int, default=1000)
    parser.add_argument("--eval-n", type=int, default=None, help="first N test images (smoke tests)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=None, help="train on the first N images (smoke tests)")
    parser.add_argument("--workers", type=int, default=1, help="evaluation threads (result unchanged)")
    parser.add_argument("--runs", default=str(ROOT / "runs" / "ch07"))
    parser.add_argument("--record", default=str(ROOT / "book" / "results" / "ch07_flows.json"))
    parser.add_argument("--key", default="paired", help="the record's entry for this study")
    args = parser.parse_args()
    command = "python benchmarks/ch07_paired.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    runs, record_path = Path(args.runs), Path(args.record)
    test = training.load_dataset("mnist", "test")[:args.eval_n]
    record = json.loads(record_path.read_text()) if record_path.exists() else {}
    paired = record.get(args.key, {})
    if (paired.get("eval_k"), paired.get("eval_n"), paired.get("epochs")) != (args.eval_k, len(test),
                                                                            args.epochs):
        paired = {}
    paired.update({"command": command, "epochs": args.epochs, "eval_k": args.eval_k,
                   "eval_n": len(test), "seed": args.seed})
    paired.setdefault("runs", {})
    for name in args.only:
        model, metrics = train_or_resume(name, runs, args.epochs, args.seed, args.limit)
        result, log_px = training.evaluate_model(model, test, k=args.eval_k, seed=args.seed,
                                                 workers=args.workers)
        np.save(runs / name / f"test_log_px_k{args.eval_k}_n{len(test)}.npy", log_px.numpy())
        paired["runs"][name] = {
            "what": CONFIGS[name][1], "config": {k: v for k, v in CONFIGS[name][0].items()},
            "epochs": len(metrics["epochs"]),
            "train_elbo": round(metrics["epochs"][-1]["train_elbo"], 3),
            "test_elbo": round(result["elbo"], 3), "test_nll": round(result["nll"], 3),
            "test_nll_se": round(result["log_likelihood_sem"], 3),
            "train_command": metrics["config"]["extra"]["command"]}
        print(json.dumps({name: paired["runs"][name]}), flush=True)
        add_differences(paired, runs)
        record[args.key] = paired
        training.atomic_write_json(record, record_path)  # after every run: nothing is lost
    print(json.dumps({n: (r.get("log_px_minus_diagonal"), r.get("log_px_minus_diagonal_se"))
                      for n, r in paired["runs"].items()}))


def add_differences(paired, runs):
    """Every stored run against the diagonal baseline, from the saved per-image estimates."""
    tag = f"k{paired['eval_k']}_n{paired['eval_n']}"
    base = runs / "diagonal" / f"test_log_px_{tag}.npy"
    for name, entry in paired["runs"].items():
        file = runs / name / f"test_log_px_{tag}.npy"
        if name != "diagonal" and file.exists() and base.exists():
            diff, se = paired_difference(np.load(file), np.load(base))
            entry["log_px_minus_diagonal"] = round(diff, 3)
            entry["log_px_minus_diagonal_se"] = round(se, 3)

if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
