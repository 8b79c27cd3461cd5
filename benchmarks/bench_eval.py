"""Time and peak memory of the importance-sampled test log-likelihood (k = 5000 over 10k test images).

    .venv/bin/python benchmarks/bench_eval.py                          # the full job: k=5000, n=10000
    .venv/bin/python benchmarks/bench_eval.py --k 5000 --n 200 --repeats 3   # a subset, for a CPU
    .venv/bin/python benchmarks/bench_eval.py --checkpoint runs/vae/checkpoint.pt

Three ways to compute the same estimate, alternating within one run (``--repeats`` rounds) on the
same images with the same noise:

* ``before``: the blocked estimator with the model's own log-weights (:meth:`VAE.log_weights`), one
  thread: how the package evaluated before the fast path;
* ``fast, 1 worker``: :func:`vae_from_scratch.torch.evaluation.vae_log_likelihood`, whose Bernoulli
  term skips the avoidable passes over the logits (:func:`~vae_from_scratch.torch.evaluation.bernoulli_mlp_log_prob`);
* ``fast, W workers``: the same with ``W`` threads over the blocks (default: the usable cores,
  as ``python -m vae_from_scratch evaluate`` uses; ``--workers``).

Prints each one's wall-clock and CPU time (median over the rounds, and extrapolated to n = 10,000),
the ratios to ``before``, the largest difference between their estimates, the arithmetic floor (the
decoder's and encoder's multiply-adds at the matrix-product speed measured here), and the peak memory
of the fast path (CUDA: ``max_memory_allocated``; CPU: growth of the process's peak resident set)
next to what the unblocked logits would need.
"""

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a clone
from vae_from_scratch.threads import usable_cores  # noqa: E402
from vae_from_scratch.torch import training  # noqa: E402
from vae_from_scratch.torch.device import default_device  # noqa: E402
from vae_from_scratch.torch.evaluation import importance_log_likelihood, vae_log_likelihood  # noqa: E402
from vae_from_scratch.torch.vae import build_vae  # noqa: E402


def peak_rss_bytes():
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def block_samples(model, k, batch, n):
    width = max(model.data_dim, *model.hidden, 2 * model.latent_dim)
    return max(1, min(k, 2**24 // (min(batch, n) * width)))


def before(model, x, k, batch, seed):
    """The estimator with the model's own log-weights, one thread (the package before the fast path)."""
    generator = torch.Generator(device=x.device).manual_seed(seed)
    was = model.training
    model.eval()
    try:
        return importance_log_likelihood(lambda xb, e: model.log_weights(xb, eps=e), x, k, model.latent_dim,
                                         generator=generator, batch_size=batch,
                                         sample_batch_size=block_samples(model, k, batch, len(x)))
    finally:
        model.train(was)


def fast(model, x, k, batch, seed, workers):
    generator = torch.Generator(device=x.device).manual_seed(seed)
    return vae_log_likelihood(model, x, k=k, generator=generator, batch_size=batch, workers=workers)


def timed(fn, device):
    if device.type == "cuda":
        torch.cuda.synchronize()
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    float(out.mean())  # waits for the device
    return out, time.perf_counter() - w0, time.process_time() - c0


def matmul_gflops(device, rows=20000, repeats=3):
    """Single-thread (CPU) speed of the decoder's largest product, ``(rows, 200) @ (200, 784)``."""
    h = torch.randn(rows, 200, device=device)
    w = torch.randn(784, 200, device=device)
    b = torch.randn(784, device=device)
    torch.addmm(b, h, w.T)
    best = float("inf")
    for _ in range(repeats):
        _, seconds, _ = timed(lambda: torch.addmm(b, h, w.T), device)
        best = min(best, seconds)
    return 2 * rows * 200 * 784 / best / 1e9


def multiply_adds(model):
    """Multiply-adds per sample (decoder) and per image (encoder) of the MLP VAE."""
    dec = [model.latent_dim, *model.hidden[::-1], model.data_dim]
    enc = [model.data_dim, *model.hidden, 2 * model.latent_dim]
    return (sum(a * b for a, b in zip(dec[:-1], dec[1:])), sum(a * b for a, b in zip(enc[:-1], enc[1:])))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--k", type=int, default=5000)
    parser.add_argument("--n", type=int, default=10000, help="test images (a fixed random subset of n)")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=1, help="alternating rounds of the three ways")
    parser.add_argument("--workers", type=int, default=None, help="threads of the last way (default: usable cores)")
    parser.add_argument("--checkpoint", default=None, help="a trained run's checkpoint.pt (default: random weights)")
    parser.add_argument("--device", default=None)
    args = parser.parse_args()

    device = torch.device(args.device) if args.device else default_device()
    torch.set_num_threads(1)  # "before" and "fast, 1 worker" run on one thread (the policy on 2 cores)
    workers = args.workers or usable_cores()
    images = training.load_dataset("mnist", "test")
    if args.n < len(images):  # a fixed random subset: the test split is sorted by digit class
        images = images[np.sort(np.random.default_rng(0).permutation(len(images))[:args.n])]
    x = training.to_device_tensor(images, device)
    if args.checkpoint:
        model = training.load_model(args.checkpoint, device)[0]
    else:
        torch.manual_seed(0)
        model = build_vae(784, "burda").to(device)
        training.init_output_bias(model, x)
    print(f"device={device}  torch={torch.__version__}  k={args.k}  n={len(x)}  data block={args.batch_size}  "
          f"sample block={block_samples(model, args.k, args.batch_size, len(x))}  repeats={args.repeats}")

    ways = {"before (model.log_weights, 1 thread)": lambda: before(model, x, args.k, args.batch_size, 0),
            "fast, 1 worker": lambda: fast(model, x, args.k, args.batch_size, 0, 1),
            f"fast, {workers} workers": lambda: fast(model, x, args.k, args.batch_size, 0, workers)}
    if device.type != "cpu":
        ways.pop(f"fast, {workers} workers")
    wall, cpu, results = {w: [] for w in ways}, {w: [] for w in ways}, {}
    rss_before = peak_rss_bytes()
    peak = None
    for _ in range(args.repeats):
        for name, fn in ways.items():
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
                base = torch.cuda.memory_allocated()
            out, w, c = timed(fn, device)
            if device.type == "cuda" and name.startswith("fast"):
                peak = torch.cuda.max_memory_allocated() - base
            results[name] = out
            wall[name].append(w)
            cpu[name].append(c)
    if peak is None:
        peak = peak_rss_bytes() - rss_before

    scale = 10000 / len(x)
    ref = "before (model.log_weights, 1 thread)"
    print(f"\nmean log p(x) = {float(results[ref].mean()):.3f} nats; largest |difference| between the ways: "
          f"{max(float((r - results[ref]).abs().max()) for r in results.values()):.2e} nats")
    print(f"\n{'':38s} {'wall s':>8s} {'CPU s':>8s} {'wall, n=10000':>14s} {'ratio (wall)':>13s} {'ratio (CPU)':>12s}")
    for name in ways:
        w, c = statistics.median(wall[name]), statistics.median(cpu[name])
        rw = statistics.median(wall[ref]) / w
        rc = statistics.median(cpu[ref]) / c
        print(f"{name:38s} {w:8.2f} {c:8.2f} {w * scale:14.0f} {rw:12.2f}x {rc:11.2f}x")
    per_sample, per_image = multiply_adds(model)
    flops = 2 * (per_sample * args.k * 10000 + per_image * 10000)
    gflops = matmul_gflops(device)
    print(f"\narithmetic of the full job (n=10000): {flops / 1e12:.1f} TFLOP; the decoder's largest matrix "
          f"product runs at {gflops:.0f} GFLOP/s here (one thread), so one thread needs at least "
          f"{flops / gflops / 1e9:.0f} s, {workers} workers at least {flops / gflops / 1e9 / workers:.0f} s")
    print(f"peak memory ({'CUDA max_memory_allocated growth' if device.type == 'cuda' else 'growth of peak RSS'}): "
          f"{peak / 2**20:.0f} MiB; unblocked, the decoder logits of the full job would need "
          f"{args.k * 10000 * model.data_dim * 4 / 2**30:.0f} GiB")


if __name__ == "__main__":
    main()
