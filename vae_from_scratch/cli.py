"""Command line: train and evaluate VAEs on binarized MNIST or the 8x8 digits.

    python -m vae_from_scratch train --dataset mnist --arch burda --epochs 50 --out runs/vae
    python -m vae_from_scratch train --objective iwae --k 50 --out runs/iwae50
    python -m vae_from_scratch train --posterior iaf --flow-steps 2 --flow-hidden 320 --out runs/iaf
    python -m vae_from_scratch train --out runs/vae --epochs 100 --resume      # continue a run
    python -m vae_from_scratch train --schedule burda --batch-size 20 --out runs/burda   # 3,280 epochs
    python -m vae_from_scratch evaluate --out runs/vae --eval-k 5000            # test log-likelihood
    python -m vae_from_scratch evaluate --pretrained burda_vae --eval-n 1000    # a model that ships
    python -m vae_from_scratch pretrained                                       # list those models

``train`` writes ``DIR/checkpoint.pt`` (atomically, after every epoch) and ``DIR/metrics.json``, and at
the end estimates the test log-likelihood by importance sampling with ``--eval-k`` samples
(0 skips it). ``evaluate`` does that estimate for an existing run. A fresh ``train`` into a folder
that already holds a checkpoint is refused: add ``--resume`` to continue it or ``--overwrite`` to
replace it. Exit status: 0 on success, 1 when training diverged (NaN), 2 for bad arguments,
missing data or a checkpoint that would be overwritten.
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
    t.add_argument("--forget-bias", type=float, default=None, metavar="B",
                   help="--posterior iaf: the gate bias, sigma = sigmoid(s + B) (default 1; K&W "
                        "section 3.4: about +1 or +2 starts each step near the identity)")
    t.add_argument("--flow-context-dim", type=int, default=None, metavar="C",
                   help="--posterior iaf: width of the context h the encoder trunk passes to every "
                        "step (default: the latent dimension)")
    t.add_argument("--decoder", choices=sorted(DECODERS), default="bernoulli",
                   help="the decoder's distribution p(x|z): bernoulli (factorized pixels) or "
                        "autoregressive (each pixel also sees the pixels before it)")
    t.add_argument("--objective", choices=sorted(OBJECTIVES), default="elbo")
    t.add_argument("--k", type=int, default=None, help="importance samples of the IWAE objective (default 5)")
    t.add_argument("--kl-warmup", type=float, default=0.0, metavar="EPOCHS_OR_FRACTION",
                   help="KL warm-up: the KL weight rises linearly from 0 to 1 over this many epochs (>= 1) "
                        "or this fraction of training (< 1); default 0, none")
    t.add_argument("--free-bits", type=float, default=None, metavar="LAMBDA",
                   help="free bits (Kingma et al. 2016): each group's minibatch-mean KL is clamped from "
                        "below at LAMBDA nats")
    t.add_argument("--free-bits-groups", type=int, default=None, metavar="G",
                   help="split the latent dimensions into G groups for --free-bits (default: one per dimension)")
    t.add_argument("--epochs", type=int, default=None,
                   help="total epochs (with --resume: up to this many); default 10, or 3280 with --schedule burda")
    t.add_argument("--batch-size", type=int, default=None,
                   help="minibatch size; default 100, or 20 (Burda et al.'s) with --schedule burda")
    t.add_argument("--lr", type=float, default=1e-3, help="learning rate (with --schedule burda: the first one)")
    t.add_argument("--schedule", choices=list(training_schedules()), default="constant",
                   help="constant: --lr throughout; burda: Burda et al. 2016, lr * 10^(-i/7) for 3^i epochs, "
                        "i = 0..7 (3,280 epochs), batch 20, Adam eps 1e-4; resumable mid-schedule")
    t.add_argument("--autograd-step", action="store_true",
                   help="use autograd for every step (by default the default VAE's ELBO step uses its "
                        "hand-written backward, vae_from_scratch.torch.fused_step: faster on a CPU)")
    t.add_argument("--compile", action="store_true",
                   help="torch.compile the objective (seconds to compile; see benchmarks/README.md for when it helps)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--limit", type=int, default=None, help="train on the first N training images only")
    t.add_argument("--no-validate", action="store_true", help="skip the validation ELBO after each epoch")
    t.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps (default: the best available)")
    t.add_argument("--out", required=True, help="run folder for checkpoint.pt and metrics.json")
    t.add_argument("--resume", action="store_true", help="continue from DIR/checkpoint.pt")
    t.add_argument("--overwrite", action="store_true",
                   help="start afresh even if DIR already holds a checkpoint (it is replaced)")
    t.add_argument("--eval-k", type=int, default=5000,
                   help="importance samples for the final test log-likelihood (0: skip; papers use 5000)")
    t.add_argument("--eval-n", type=int, default=None, help="evaluate on a fixed random subset of N test images")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_threads(t)

    e = sub.add_parser("evaluate", help="importance-sampled log-likelihood of a trained run")
    which = e.add_mutually_exclusive_group(required=True)
    which.add_argument("--out", help="run folder holding checkpoint.pt (results merged into its metrics.json)")
    which.add_argument("--pretrained", metavar="NAME",
                       help="a model that ships with the package (see `python -m vae_from_scratch pretrained`)")
    e.add_argument("--eval-k", type=int, default=5000, help="importance samples per data point")
    e.add_argument("--split", choices=["train", "valid", "test"], default="test")
    e.add_argument("--eval-n", type=int, default=None, help="only a fixed random subset of N images of the split")
    e.add_argument("--batch-size", type=int, default=100, help="data points per block")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--device", default=None)
    e.add_argument("--no-progress", action="store_true")
    _add_threads(e)

    _add_threads(sub.add_parser("pretrained", help="list the pretrained models that ship with the package"))
    return parser


def training_schedules():
    from .torch.training import SCHEDULES

    return SCHEDULES


def _add_threads(parser):
    parser.add_argument("--threads", default=None, metavar="N",
                        help="CPU threads for torch and BLAS: a number, 'auto' (one fewer than the "
                             "cores, the default) or 'off' (the libraries' own default); "
                             "also $VAE_FROM_SCRATCH_THREADS. The test log-likelihood runs on that "
                             "many worker threads if a number is given, else on every usable core "
                             "(its workers never wait for each other)")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    from .threads import configure_threads
    from .torch import training

    try:
        configure_threads(args.threads)
        if args.command == "train":
            return _train(args, argv, training)
        if args.command == "pretrained":
            return _list_pretrained()
        return _evaluate(args, training)
    except training.TrainingDiverged as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def _train(args, argv, training):
    k = args.k if args.k is not None else (5 if args.objective == "iwae" else 1)
    burda = args.schedule == "burda"  # the paper's run: 3,280 epochs of minibatches of 20
    epochs = args.epochs if args.epochs is not None else (training.BURDA_EPOCHS if burda else 10)
    batch_size = args.batch_size if args.batch_size is not None else (20 if burda else 100)
    config = training.TrainConfig(
        dataset=args.dataset, arch=args.arch, hidden=list(args.hidden) if args.hidden else None,
        latent_dim=args.latent_dim, activation=args.activation, posterior=args.posterior,
        posterior_options=_posterior_options(args), decoder=args.decoder,
        objective=args.objective, k=k,
        epochs=epochs, batch_size=batch_size, lr=args.lr, seed=args.seed, limit=args.limit,
        validate=not args.no_validate, kl_warmup=_warmup_fraction(args.kl_warmup, epochs),
        free_bits=args.free_bits, free_bits_groups=args.free_bits_groups,
        schedule=args.schedule, compile=args.compile, fused_step=False if args.autograd_step else "auto",
        extra={"command": "python -m vae_from_scratch " + " ".join(shlex.quote(a) for a in argv)})
    log = (lambda *a, **kw: None) if args.no_progress else _stderr
    model, metrics = training.train(config, out_dir=args.out, resume=args.resume, device=args.device,
                                    progress=not args.no_progress, log=log, overwrite=args.overwrite)
    last = metrics["epochs"][-1] if metrics["epochs"] else {}
    print(json.dumps({"epochs": len(metrics["epochs"]), **{k: v for k, v in last.items() if k != "epoch"}}))
    if args.eval_k > 0:
        result = training.evaluate_run(args.out, k=args.eval_k, n=args.eval_n, device=args.device,
                                       seed=args.seed, progress=not args.no_progress,
                                       workers=evaluation_workers(args.threads))
        print(json.dumps(_summary(result)))
    return 0


def evaluation_workers(threads):
    """Threads of the importance-sampled evaluation (``--threads`` if given; see
    :func:`vae_from_scratch.threads.evaluation_workers`)."""
    from .threads import evaluation_workers as workers

    return workers(threads)


def _posterior_options(args):
    """Options of the posterior part from the flow flags (only the IAF posterior takes them)."""
    options = {}
    if args.flow_steps is not None:
        options["steps"] = args.flow_steps
    if args.flow_hidden is not None:
        options["flow_hidden"] = [args.flow_hidden, args.flow_hidden]
    if args.forget_bias is not None:
        options["forget_bias"] = args.forget_bias
    if args.flow_context_dim is not None:
        options["context_dim"] = args.flow_context_dim
    if options and args.posterior != "iaf":
        raise ValueError("--flow-steps, --flow-hidden, --forget-bias and --flow-context-dim need "
                         "--posterior iaf")
    if (options.get("steps", 1) < 1 or min(options.get("flow_hidden", [1])) < 1
            or options.get("context_dim", 1) < 1):
        raise ValueError("--flow-steps, --flow-hidden and --flow-context-dim must be positive")
    return options


def _warmup_fraction(value, epochs):
    """``--kl-warmup``: a number of epochs (>= 1) or a fraction of training (< 1) -> a fraction."""
    if value < 0:
        raise ValueError(f"--kl-warmup must be >= 0, got {value}")
    if value < 1:
        return float(value)
    if value > epochs:
        raise ValueError(f"--kl-warmup {value:g} epochs is longer than --epochs {epochs}")
    return float(value) / epochs


def _evaluate(args, training):
    if args.pretrained is not None:
        return _evaluate_pretrained(args, training)
    result = training.evaluate_run(args.out, k=args.eval_k, split=args.split, n=args.eval_n,
                                   device=args.device, seed=args.seed, batch_size=args.batch_size,
                                   progress=not args.no_progress,
                                   workers=evaluation_workers(args.threads))
    print(json.dumps(_summary(result)))
    return 0


def _evaluate_pretrained(args, training):
    from .torch.device import default_device
    from .torch.pretrained import load_pretrained

    device = args.device if args.device is not None else default_device()
    model = load_pretrained(args.pretrained, device=device)
    dataset = (model.pretrained_info.get("check") or {}).get("dataset", "mnist")
    images = training.fixed_subset(training.load_dataset(dataset, args.split), args.eval_n)
    result, _ = training.evaluate_model(model, images, k=args.eval_k, seed=args.seed,
                                        batch_size=args.batch_size, progress=not args.no_progress,
                                        workers=evaluation_workers(args.threads))
    print(json.dumps(_summary({"pretrained": args.pretrained, "split": args.split, **result})))
    return 0


def _list_pretrained():
    from .torch.pretrained import _index

    index = _index()
    if not index:
        print("no pretrained models in this installation")
    for name, entry in index.items():
        print(f"{name}: {entry['description']}")
        check = entry.get("check") or {}
        if check:
            print(f"    {entry.get('epochs')} epochs; test ELBO {check['elbo']:.2f} nats on {check['n']} "
                  f"fixed test images (the check tests/test_pretrained.py repeats)")
        if entry.get("command"):
            print(f"    trained with: {entry['command']}")
        if entry.get("results"):
            print(f"    recorded results: {entry['results']}")
    return 0


def _summary(result):
    return {key: (round(v, 4) if isinstance(v, float) else v) for key, v in result.items()}


def _stderr(*parts):
    print(*parts, file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
