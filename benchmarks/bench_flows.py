"""Diagonal vs full-covariance vs IAF posteriors on statically binarized MNIST (chapter 7).

    .venv/bin/python benchmarks/bench_flows.py --epochs 20 --eval-k 5000 --eval-n 1000 --gap-n 100

Trains, one after the other, three VAEs that differ ONLY in the posterior part: the same encoder trunk
(784-200-200, tanh), the same decoder (50-200-200-784, tanh, Bernoulli), the same data, seed, optimizer
(Adam, lr 1e-3, batch 100) and number of epochs. The posteriors are those of
:mod:`vae_from_scratch.torch.posteriors`: ``diagonal``, ``full`` (Cholesky) and ``iaf``
(``--flow-steps`` gated IAF steps, MADE hidden widths ``--flow-hidden``). The training objective is the
one-sample ELBO, with the KL in closed form where the posterior has one and sampled otherwise.

Reports per posterior: the test ELBO (all 10,000 test images, one seeded sample each), the
importance-sampled test log-likelihood with ``--eval-k`` samples from the encoder's posterior on a fixed
random subset of ``--eval-n`` test images, and on the first ``--gap-n`` images of that subset the
decomposition of Cremer et al. (2018): approximation gap log p(x) - ELBO(q*) and amortization gap
ELBO(q*) - ELBO(q_x), where q* is the same posterior family with the trunk output h optimized per data
point (the model's weights fixed). Results, with this command, go to ``--record``.
"""

import argparse
import json
import math
import platform
import shlex
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a clone
from vae_from_scratch.torch import training  # noqa: E402
from vae_from_scratch.torch.distributions import log_standard_normal  # noqa: E402
from vae_from_scratch.torch.vae import build_vae  # noqa: E402


def elbo_from_h(model, x, h, generator=None, n_samples=None):
    """The ELBO of ``model`` with the trunk's output replaced by ``h`` (closed-form KL where the
    posterior has one, else sampled), averaged over ``n_samples`` draws if given."""
    params = model.posterior(h)
    z, log_q = model.posterior.sample(params, sample_shape=() if n_samples is None else (n_samples,),
                                      generator=generator)
    kl = model.posterior.kl_to_prior(params)
    if kl is None:
        kl = log_q - log_standard_normal(z)
    out = model.decoder.log_prob(x, z) - kl
    return out if n_samples is None else out.mean(0)


def log_weights_from_h(model, x, h, k, generator=None):
    z, log_q = model.posterior.sample(model.posterior(h), sample_shape=(k,), generator=generator)
    return log_standard_normal(z) + model.decoder.log_prob(x, z) - log_q


@torch.no_grad()
def importance(model, x, k, generator, h=None, batch=100, block=500):
    """Per-datapoint (log p(x) estimate with k samples, mean log-weight = k-sample ELBO average)."""
    out_lp, out_elbo = [], []
    for s in range(0, x.shape[0], batch):
        xb = x[s:s + batch]
        hb = model.features(xb) if h is None else h[s:s + batch]
        lse, total = None, 0.0
        for j in range(0, k, block):
            w = log_weights_from_h(model, xb, hb, min(block, k - j), generator)
            b = torch.logsumexp(w.double(), 0)
            lse = b if lse is None else torch.logaddexp(lse, b)
            total = total + w.double().sum(0)
        out_lp.append(lse - math.log(k))
        out_elbo.append(total / k)
    return torch.cat(out_lp), torch.cat(out_elbo)


def optimize_h(model, x, steps, lr, n_samples, generator):
    """Per-datapoint optimum q* of the posterior family: the trunk output h optimized (Adam) for each x."""
    with torch.no_grad():
        h0 = model.features(x)
    h = h0.clone().requires_grad_(True)
    opt = torch.optim.Adam([h], lr=lr)
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        for _ in range(steps):
            loss = -elbo_from_h(model, x, h, generator, n_samples=n_samples).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    finally:
        for p in model.parameters():
            p.requires_grad_(True)
    return h.detach()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--posteriors", nargs="+", default=["diagonal", "full", "iaf"])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--flow-steps", type=int, default=2)
    parser.add_argument("--flow-hidden", type=int, default=320)
    parser.add_argument("--eval-k", type=int, default=5000)
    parser.add_argument("--eval-n", type=int, default=1000)
    parser.add_argument("--gap-n", type=int, default=100)
    parser.add_argument("--gap-steps", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=None, help="train on the first N images (smoke tests)")
    parser.add_argument("--record", default=str(ROOT / "book" / "results" / "ch07_flows.json"))
    args = parser.parse_args()
    command = "python benchmarks/bench_flows.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])

    train = training.to_device_tensor(training.load_dataset("mnist", "train")[:args.limit], "cpu")
    test = training.to_device_tensor(training.load_dataset("mnist", "test"), "cpu")
    subset = test[torch.randperm(test.shape[0], generator=torch.Generator().manual_seed(0))[:args.eval_n]]
    record_path = Path(args.record)
    record = json.loads(record_path.read_text()) if record_path.exists() else {}
    record.update({"command": command, "machine": f"{platform.machine()}, torch {torch.__version__}, cpu",
                   "settings": {k: v for k, v in vars(args).items() if k != "record"}})
    record.setdefault("runs", {})
    for name in args.posteriors:
        torch.manual_seed(args.seed)
        options = {"steps": args.flow_steps, "flow_hidden": args.flow_hidden} if name == "iaf" else {}
        model = build_vae(784, arch="burda", posterior=name, posterior_options=options)
        model.decoder.init_output_bias(train.mean(0))
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        perm_gen = torch.Generator().manual_seed(args.seed)
        noise_gen = torch.Generator().manual_seed(args.seed + 1)
        history, t0 = [], time.perf_counter()
        for epoch in range(args.epochs):
            perm = torch.randperm(train.shape[0], generator=perm_gen)
            total = 0.0
            for s in range(0, train.shape[0], 100):
                xb = train[perm[s:s + 100]]
                value = model.elbo(xb, generator=noise_gen)
                opt.zero_grad(set_to_none=True)
                (-value.mean()).backward()
                opt.step()
                total += float(value.detach().sum())
            if not math.isfinite(total):
                raise SystemExit(f"{name}: the ELBO became NaN or infinite in epoch {epoch + 1}")
            history.append(round(total / train.shape[0], 3))
            print(f"{name} epoch {epoch + 1}: train elbo {history[-1]:.2f}", flush=True)
        train_seconds = time.perf_counter() - t0
        model.eval()
        gen = torch.Generator().manual_seed(args.seed + 2)
        with torch.no_grad():
            test_elbo = torch.cat([model.elbo(test[s:s + 1000], generator=gen) for s in range(0, 10000, 1000)]).mean()
        log_px, _ = importance(model, subset, args.eval_k, gen)
        xg = subset[:args.gap_n]
        with torch.enable_grad():
            h_star = optimize_h(model, xg, args.gap_steps, 0.01, 16, gen)
        lp_star, elbo_star = importance(model, xg, args.eval_k, gen, h=h_star)
        lp_enc, elbo_enc = importance(model, xg, args.eval_k, gen)
        log_px_gap = torch.maximum(lp_star, lp_enc)  # the better (higher) of two unbiased-in-p estimates
        result = {
            "posterior": name, "options": options, "epochs": args.epochs, "train_elbo": history,
            "train_seconds": round(train_seconds, 1),
            "test_elbo": round(float(test_elbo), 3),
            "test_nll": round(float(-log_px.mean()), 3), "test_nll_se": round(float(log_px.std() / math.sqrt(len(log_px))), 3),
            "eval_k": args.eval_k, "eval_n": args.eval_n,
            "gap_n": args.gap_n, "gap_steps": args.gap_steps,
            "gap_log_px": round(float(log_px_gap.mean()), 3),
            "gap_elbo_encoder": round(float(elbo_enc.mean()), 3),
            "gap_elbo_optimal": round(float(elbo_star.mean()), 3),
            "approximation_gap": round(float((log_px_gap - elbo_star).mean()), 3),
            "amortization_gap": round(float((elbo_star - elbo_enc).mean()), 3),
            "n_parameters": sum(p.numel() for p in model.parameters()),
        }
        print(json.dumps(result), flush=True)
        record["runs"][name] = result
        record_path.parent.mkdir(parents=True, exist_ok=True)
        record_path.write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
