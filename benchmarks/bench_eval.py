"""Time and peak memory of the importance-sampled test log-likelihood (k = 5000 over 10k test images).

    .venv/bin/python benchmarks/bench_eval.py                          # the full job: k=5000, n=10000
    .venv/bin/python benchmarks/bench_eval.py --k 5000 --n 100         # bounded, for a CPU
    .venv/bin/python benchmarks/bench_eval.py --checkpoint runs/vae/checkpoint.pt

:func:`vae_from_scratch.torch.evaluation.vae_log_likelihood` works in blocks of ``batch`` data points
times ``s`` samples (``s`` chosen so a block's largest activation has at most 2^24 numbers), so memory
does not grow with ``k`` or ``n``; the unblocked computation would need the decoder logits of all
``k * n`` samples at once. Prints the time (and the time extrapolated to n = 10,000 when ``--n`` is
smaller), the peak memory during the evaluation (CUDA: ``max_memory_allocated``; CPU: growth of the
process's peak resident set), and the memory the unblocked logits alone would need.
"""

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a clone
from vae_from_scratch.torch import training
from vae_from_scratch.torch.device import default_device
from vae_from_scratch.torch.evaluation import vae_log_likelihood
from vae_from_scratch.torch.vae import build_vae


def peak_rss_bytes():
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--k", type=int, default=5000)
    parser.add_argument("--n", type=int, default=10000, help="test images (a fixed random subset of n)")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--checkpoint", default=None, help="a trained run's checkpoint.pt (default: random weights)")
    parser.add_argument("--device", default=None)
    args = parser.parse_args()

    device = torch.device(args.device) if args.device else default_device()
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
    width = max(model.data_dim, *model.hidden, 2 * model.latent_dim)
    block_samples = max(1, min(args.k, 2**24 // (min(args.batch_size, len(x)) * width)))
    print(f"device={device}  torch={torch.__version__}  threads={torch.get_num_threads()}  "
          f"k={args.k}  n={len(x)}  data block={args.batch_size}  sample block={block_samples}")

    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    rss_before = peak_rss_bytes()
    generator = torch.Generator(device=device).manual_seed(0)
    t0 = time.perf_counter()
    log_px = vae_log_likelihood(model, x, k=args.k, generator=generator, batch_size=args.batch_size)
    mean = float(log_px.mean())  # waits for the device
    seconds = time.perf_counter() - t0
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated() - base
        what = "CUDA max_memory_allocated growth"
    else:
        peak = peak_rss_bytes() - rss_before
        what = "growth of peak RSS"
    naive = args.k * len(x) * model.data_dim * 4
    print(f"mean log p(x) = {mean:.3f} nats (k={args.k}, n={len(x)})")
    print(f"time: {seconds:.1f} s  ({len(x) * args.k / seconds:,.0f} samples/s)")
    if len(x) < 10000:
        print(f"extrapolated to n=10000: {seconds * 10000 / len(x):.0f} s")
    print(f"peak memory ({what}): {peak / 2**20:.0f} MiB")
    full = args.k * 10000 * model.data_dim * 4
    print(f"unblocked, the decoder logits alone would need {naive / 2**30:.1f} GiB for this n, "
          f"{full / 2**30:.0f} GiB for n=10000 (ratio to the measured peak: {full / max(peak, 1):.0f}x)")


if __name__ == "__main__":
    main()
