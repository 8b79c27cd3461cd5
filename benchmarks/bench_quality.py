"""Likelihood quality on statically binarized MNIST against Burda et al. (2016), appendix D.

    # bounded CPU run (what book/results/ch05_quality.json records; see benchmarks/README.md):
    .venv/bin/python benchmarks/bench_quality.py --epochs 20 --eval-k 1000
    # the paper-scale run for a GPU (Burda et al. trained 3,280 epochs with a decaying learning rate):
    .venv/bin/python benchmarks/bench_quality.py --epochs 3280 --burda-schedule --batch-size 20 --eval-k 5000 --device cuda
    .venv/bin/python benchmarks/bench_quality.py --objective iwae --k 50 ...

Trains the one-stochastic-layer architecture of Burda et al. (784-200-200-50, tanh; Gaussian encoder,
Bernoulli decoder) with the package's training loop on the 50,000 training images, then estimates the
test log-likelihood by importance sampling (``--eval-k`` samples, all 10,000 test images unless
``--eval-n``). Prints the test NLL next to the published numbers (VAE 88.71 nats, IWAE k=50 87.10;
both after 3,280 epochs and evaluated with k = 5000) and records the run, with the command that
produced it, under ``--record`` (a key per objective), for the chapter to plot.
"""

import argparse
import json
import platform
import shlex
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a clone
from vae_from_scratch.torch import training  # noqa: E402

PUBLISHED = {"vae": 88.71, "iwae_k50": 87.10}  # Burda et al. 2016, appendix D, one stochastic layer


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--objective", choices=["elbo", "iwae"], default="elbo")
    parser.add_argument("--k", type=int, default=1, help="importance samples of the IWAE objective")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--burda-schedule", action="store_true",
                        help="Burda et al.'s schedule: lr * 10^(-i/7) for 3^i epochs, i = 0..7, Adam eps 1e-4 "
                             "(training --schedule burda; needs --epochs 3280 to finish)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out (same arguments)")
    parser.add_argument("--eval-k", type=int, default=5000)
    parser.add_argument("--eval-n", type=int, default=None, help="a fixed random subset of N test images")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=None)
    parser.add_argument("--out", default="runs/bench_quality", help="run folder (checkpoints)")
    parser.add_argument("--record", default=str(ROOT / "book" / "results" / "ch05_quality.json"),
                        help="JSON file to record the result in ('' to skip)")
    parser.add_argument("--eval-only", action="store_true",
                        help="skip training: evaluate the run already in --out (same --objective/--k/--epochs)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args()

    base = "vae" if args.objective == "elbo" else f"iwae_k{args.k}"
    key = f"{base}_{args.epochs}epochs"
    out = Path(args.out) / key
    config = training.TrainConfig(dataset="mnist", arch="burda", objective=args.objective, k=args.k,
                                  epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                                  seed=args.seed, schedule="burda" if args.burda_schedule else "constant")
    t0 = time.perf_counter()
    if args.eval_only:
        metrics = json.loads((out / training.METRICS).read_text())
        if len(metrics["epochs"]) != args.epochs:
            raise SystemExit(f"{out} holds {len(metrics['epochs'])} epochs, not --epochs {args.epochs}")
    else:
        model, metrics = training.train(config, out_dir=out, resume=args.resume, device=args.device,
                                        progress=not args.no_progress)
    train_seconds = (sum(e["seconds"] for e in metrics["epochs"]) if args.eval_only or args.resume
                     else time.perf_counter() - t0)
    result = training.evaluate_run(out, k=args.eval_k, n=args.eval_n, device=args.device,
                                   seed=args.seed, progress=not args.no_progress)

    published = PUBLISHED.get(base)
    print(f"{key}: test NLL {result['nll']:.2f} nats (k={result['k']}, n={result['n']}) after "
          f"{args.epochs} epochs, {train_seconds / 60:.1f} min training on {result['device']}; "
          f"published (3,280 epochs, k=5000): {published if published is not None else 'n/a'}")

    if args.record:
        record_path = Path(args.record)
        record = json.loads(record_path.read_text()) if record_path.is_file() else {}
        record.setdefault("published", {"source": "Burda, Grosse & Salakhutdinov (2016), appendix D, "
                                                  "1 stochastic layer 784-200-200-50 tanh, k=5000",
                                         **PUBLISHED})
        command = "python benchmarks/bench_quality.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
        previous = record.get("runs", {}).get(key, {}) if args.eval_only else {}
        record.setdefault("runs", {})[key] = {
            "objective": base,
            "commands": previous.get("commands", []) + [command],  # training first, then re-evaluations
            "machine": f"{platform.machine()} {platform.processor() or ''}".strip()
                       + f", torch {torch.__version__}, {torch.get_num_threads()} threads, {result['device']}",
            "epochs": [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in e.items()}
                       for e in metrics["epochs"]],
            "train_minutes": previous.get("train_minutes", round(train_seconds / 60, 2)),
            "test": {k: (round(v, 4) if isinstance(v, float) else v) for k, v in result.items()},
            "earlier_tests": previous.get("earlier_tests", []) + ([previous["test"]] if "test" in previous else []),
        }
        record_path.parent.mkdir(parents=True, exist_ok=True)
        training.atomic_write_json(record, record_path)
        print(f"recorded in {record_path}")


if __name__ == "__main__":
    main()
