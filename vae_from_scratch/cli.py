"""Command line: train and evaluate VAEs on binarized MNIST or the 8x8 digits.

    python -m vae_from_scratch train --dataset mnist --arch burda --epochs 50 --out runs/vae
    python -m vae_from_scratch train --objective iwae --k 50 --out runs/iwae50
    python -m vae_from_scratch train --posterior iaf --flow-steps 2 --flow-hidden 320 --out runs/iaf
    python -m vae_from_scratch train --out runs/vae --epochs 100 --resume      # continue a run
    python -m vae_from_scratch evaluate --out runs/vae --eval-k 5000            # test log-likelihood

``train`` writes ``DIR/checkpoint.pt`` (atomically, after every epoch) and ``DIR/metrics.json``, and at
the end estimates the test log-likelihood by importance sampling with ``--eval-k`` samples
(0 skips it). ``evaluate`` does that estimate for an existing run. Exit status: 0 on success,
1 when training diverged (NaN), 2 for bad arguments or missing data.
"""

import argparse
import json
import shlex
import sys

from .torch.objectives import OBJECTIVES
from .torch.vae import ARCHITECTURES, DECODERS, POSTERIORS


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m vae_from_scratch",
                                     description="Train and evaluate variational autoencoders.")
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a VAE (checkpoints, metrics.json, test log-likelihood)")
    t.add_argument("--dataset", choices=["mnist", "digits"], default="mnist",
                   help="statically binarized MNIST (needs the data, see README) or sklearn's 8x8 digits")
    t.add_argument("--arch", choices=sorted(ARCHITECTURES), default="burda",
                   help="burda: 784-200-200-50 tanh (Burda et al. 2016); small: one hidden layer of 256, 16 latents")
    t.add_argument("--hidden", type=int, nargs="+", default=None, metavar="WIDTH",
                   help="hidden widths of the encoder (the decoder mirrors them); overrides --arch")
    t.add_argument("--latent-dim", type=int, default=None, help="latent dimension; overrides --arch")
    t.add_argument("--activation", choices=["tanh", "relu"], default=None)
    t.add_argument("--posterior", choices=sorted(POSTERIORS), default="diagonal",
                   help="the encoder's distribution q(z|x)")
    t.add_argument("--flow-steps", type=int, default=None, metavar="T",
                   help="--posterior iaf: number of IAF steps (default 2)")
    t.add_argument("--flow-hidden", type=int, default=None, metavar="H",
                   help="--posterior iaf: width of the two hidden layers of each step's MADE (default 320)")
    t.add_argument("--decoder", choices=sorted(DECODERS), default="bernoulli",
                   help="the decoder's distribution p(x|z)")
    t.add_argument("--objective", choices=sorted(OBJECTIVES), default="elbo")
    t.add_argument("--k", type=int, default=None, help="importance samples of the IWAE objective (default 5)")
    t.add_argument("--epochs", type=int, default=10, help="total epochs (with --resume: up to this many)")
    t.add_argument("--batch-size", type=int, default=100)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--limit", type=int, default=None, help="train on the first N training images only")
    t.add_argument("--no-validate", action="store_true", help="skip the validation ELBO after each epoch")
    t.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps (default: the best available)")
    t.add_argument("--out", required=True, help="run folder for checkpoint.pt and metrics.json")
    t.add_argument("--resume", action="store_true", help="continue from DIR/checkpoint.pt")
    t.add_argument("--eval-k", type=int, default=5000,
                   help="importance samples for the final test log-likelihood (0: skip; papers use 5000)")
    t.add_argument("--eval-n", type=int, default=None, help="evaluate on a fixed random subset of N test images")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_threads(t)

    e = sub.add_parser("evaluate", help="importance-sampled log-likelihood of a trained run")
    e.add_argument("--out", required=True, help="run folder holding checkpoint.pt")
    e.add_argument("--eval-k", type=int, default=5000, help="importance samples per data point")
    e.add_argument("--split", choices=["train", "valid", "test"], default="test")
    e.add_argument("--eval-n", type=int, default=None, help="only a fixed random subset of N images of the split")
    e.add_argument("--batch-size", type=int, default=100, help="data points per block")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--device", default=None)
    e.add_argument("--no-progress", action="store_true")
    _add_threads(e)
    return parser


def _add_threads(parser):
    parser.add_argument("--threads", default=None, metavar="N",
                        help="CPU threads for torch and BLAS: a number, 'auto' (one fewer than the "
                             "cores, the default) or 'off' (the libraries' own default); "
                             "also $VAE_FROM_SCRATCH_THREADS")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    from .threads import configure_threads
    from .torch import training

    try:
        configure_threads(args.threads)
        if args.command == "train":
            return _train(args, argv, training)
        return _evaluate(args, training)
    except training.TrainingDiverged as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def _train(args, argv, training):
    k = args.k if args.k is not None else (5 if args.objective == "iwae" else 1)
    config = training.TrainConfig(
        dataset=args.dataset, arch=args.arch, hidden=list(args.hidden) if args.hidden else None,
        latent_dim=args.latent_dim, activation=args.activation, posterior=args.posterior,
        posterior_options=_posterior_options(args), decoder=args.decoder, objective=args.objective, k=k,
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed, limit=args.limit,
        validate=not args.no_validate,
        extra={"command": "python -m vae_from_scratch " + " ".join(shlex.quote(a) for a in argv)})
    log = (lambda *a, **kw: None) if args.no_progress else _stderr
    model, metrics = training.train(config, out_dir=args.out, resume=args.resume, device=args.device,
                                    progress=not args.no_progress, log=log)
    last = metrics["epochs"][-1] if metrics["epochs"] else {}
    print(json.dumps({"epochs": len(metrics["epochs"]), **{k: v for k, v in last.items() if k != "epoch"}}))
    if args.eval_k > 0:
        result = training.evaluate_run(args.out, k=args.eval_k, n=args.eval_n, device=args.device,
                                       seed=args.seed, progress=not args.no_progress)
        print(json.dumps(_summary(result)))
    return 0


def _posterior_options(args):
    """Options of the posterior part from the flow flags (only the IAF posterior takes them)."""
    options = {}
    if args.flow_steps is not None:
        options["steps"] = args.flow_steps
    if args.flow_hidden is not None:
        options["flow_hidden"] = [args.flow_hidden, args.flow_hidden]
    if options and args.posterior != "iaf":
        raise ValueError("--flow-steps and --flow-hidden need --posterior iaf")
    if options.get("steps", 1) < 1 or min(options.get("flow_hidden", [1])) < 1:
        raise ValueError("--flow-steps and --flow-hidden must be positive")
    return options


def _evaluate(args, training):
    result = training.evaluate_run(args.out, k=args.eval_k, split=args.split, n=args.eval_n,
                                   device=args.device, seed=args.seed, batch_size=args.batch_size,
                                   progress=not args.no_progress)
    print(json.dumps(_summary(result)))
    return 0


def _summary(result):
    return {key: (round(v, 4) if isinstance(v, float) else v) for key, v in result.items()}


def _stderr(*parts):
    print(*parts, file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
