"""Chapter 6's recorded comparison: plain ELBO, KL warm-up and free bits on binarized MNIST.

    .venv/bin/python benchmarks/ch06_collapse.py --epochs 20 --eval-k 5000 --eval-n 1000

Trains Burda et al.'s one-stochastic-layer architecture (``--arch burda``: 784-200-200-50, tanh) with
the command line, once per configuration in :data:`RUNS` and with the same epochs, seed and data for
all, one after the other; then records, per run, the exact command, the active units (Burda et al.
2016: variance of the exact posterior mean over the data > 0.01), the KL (total and per dimension), the
test ELBO and the importance-sampled test log-likelihood (``--eval-k`` samples on a fixed random
subset of ``--eval-n`` test images, the same subset for every run), in ``book/results/ch06_collapse.json``
with the machine and the torch version. The file is rewritten after every run, so an interrupted
comparison keeps the runs that finished. Published anchor: 19 active units of 50 for this model
trained with the ELBO (Burda et al. 2016, Table 1, after 3,280 epochs).
"""

import argparse
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: name -> extra CLI arguments (everything else is shared).
RUNS = {
    "plain": [],
    "warmup": ["--kl-warmup", "10"],
    "free_bits_0.125": ["--free-bits", "0.125"],
    "free_bits_0.5": ["--free-bits", "0.5"],
    "free_bits_2x10": ["--free-bits", "2", "--free-bits-groups", "10"],
    "autoregressive": ["--decoder", "autoregressive"],
    "autoregressive_free_bits_0.5": ["--decoder", "autoregressive", "--free-bits", "0.5"],
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--eval-k", type=int, default=5000)
    parser.add_argument("--eval-n", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", nargs="+", default=list(RUNS), choices=list(RUNS))
    parser.add_argument("--out", default="runs/ch06", help="folder for the run folders (checkpoints)")
    parser.add_argument("--record", default=str(ROOT / "book" / "results" / "ch06_collapse.json"))
    args = parser.parse_args()

    import torch

    record_path = Path(args.record)
    record = json.loads(record_path.read_text()) if record_path.is_file() else {}
    record.update({
        "description": "Burda et al.'s 784-200-200-50 tanh VAE on statically binarized MNIST, "
                       f"{args.epochs} epochs each, seed {args.seed}; test metrics on a fixed random "
                       f"subset of {args.eval_n} test images, log-likelihood with k = {args.eval_k}",
        "published": {"source": "Burda, Grosse & Salakhutdinov (2016), Table 1: VAE, 1 stochastic layer, "
                                "3,280 epochs", "active_units": 19, "latent_dim": 50, "nll": 88.71},
        "driver": "python benchmarks/ch06_collapse.py " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, 1 thread, cpu",
        "torch": torch.__version__,
    })
    record.setdefault("runs", {})
    for name in args.runs:
        run_dir = Path(args.out) / name
        command = ["python", "-m", "vae_from_scratch", "train", "--dataset", "mnist", "--arch", "burda",
                   "--epochs", str(args.epochs), "--seed", str(args.seed), "--eval-k", str(args.eval_k),
                   "--eval-n", str(args.eval_n), "--threads", "1", "--no-progress", "--out", str(run_dir),
                   *RUNS[name]]
        if (ROOT / run_dir).is_dir():           # a fresh run each time (the CLI refuses to overwrite)
            shutil.rmtree(ROOT / run_dir)
        t0 = time.time()
        print(f"[{name}] {' '.join(command)}", flush=True)
        done = subprocess.run([sys.executable, *command[1:]], cwd=ROOT, capture_output=True, text=True)
        if done.returncode != 0:
            print(done.stderr[-2000:], file=sys.stderr)
            record["runs"][name] = {"command": " ".join(command), "status": f"failed ({done.returncode})"}
        else:
            metrics = json.loads((ROOT / run_dir / "metrics.json").read_text())
            evaluation = next(iter(metrics["evaluation"].values()))
            record["runs"][name] = {
                "command": " ".join(shlex.quote(c) for c in command),
                "config": {k: metrics["config"][k] for k in ("kl_warmup", "free_bits", "free_bits_groups",
                                                             "decoder", "epochs", "lr", "batch_size")},
                "test": {k: evaluation[k] for k in ("n", "k", "log_likelihood", "nll", "log_likelihood_sem",
                                                    "elbo", "kl", "kl_per_dim", "active_units")},
                "epochs": [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in e.items()
                            if k != "kl_per_dim"} for e in metrics["epochs"]],
                "wall_seconds": round(time.time() - t0),
            }
            t = record["runs"][name]["test"]
            print(f"[{name}] NLL {t['nll']:.2f}  ELBO {t['elbo']:.2f}  KL {t['kl']:.2f}  "
                  f"active units {t['active_units']}", flush=True)
        record_path.write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
