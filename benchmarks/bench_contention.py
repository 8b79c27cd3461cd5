"""Contention: how much slower a chapter-sized workload and the training CLI get when one other busy
process shares the machine, per torch thread setting; one run, whole processes.

    .venv/bin/python benchmarks/bench_contention.py                  # both workloads, ~3-5 minutes
    .venv/bin/python benchmarks/bench_contention.py --workloads chapter --scale 0.5

Every timing is a fresh Python process (as a reader's kernel or a CLI call is): it imports the package,
sets its threads and runs the workload; the wall time of the whole process is measured.

* **chapter**: a miniature of chapter 5: AEVB steps of the NumPy/autograd VAE on the 8x8 digits,
  a few hundred training steps of Burda et al.'s 784-200-200-50 VAE on binarized MNIST (the 8x8
  digits when MNIST is missing) with the package's loop, the chapter's small IWAE-trained VAE on the
  digits, and an importance-sampled log-likelihood (k = 1000 on 100 images);
* **cli**: ``python -m vae_from_scratch train`` for a few epochs on 5,000 MNIST images (digits without
  MNIST), no evaluation.

Thread settings: **policy** (the package's default, :mod:`vae_from_scratch.threads`: nothing set by
the user; the children get no ``OMP_NUM_THREADS`` & co. from this process either), **torch default**
(``VAE_FROM_SCRATCH_THREADS=off``: torch's and BLAS's own defaults, one thread per core, what the
package did before the policy), plus any ``--threads N`` (``VAE_FROM_SCRATCH_THREADS=N``). "under load" runs the same with one busy pure-Python process (``while True: pass``)
started beside it.

Prints per workload and setting the quiet and loaded times, the ratio loaded / quiet (target <= 1.5)
and the ratio quiet / best quiet over the settings (target <= 1.10 for the policy). A benchmark, not a
test: on a machine where other jobs run, "quiet" means "without the extra busy process".
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
              "NUMEXPR_NUM_THREADS", "VAE_FROM_SCRATCH_THREADS")


# --- the workloads (run in a child process) -------------------------------------------------------------


def apply_threads(setting):
    """In the child: the setting is in the environment (``VAE_FROM_SCRATCH_THREADS``), which the
    package's thread policy reads on import; packages without the policy get ``torch.set_num_threads``."""
    import torch

    import vae_from_scratch.torch  # noqa: F401  (applies the thread policy, where there is one)

    try:
        import vae_from_scratch.threads  # noqa: F401
    except ImportError:
        if setting == "torch-default":
            torch.set_num_threads(os.cpu_count() or 1)
        elif setting != "policy":
            torch.set_num_threads(int(setting))
        elif (os.cpu_count() or 1) > 1:
            torch.set_num_threads((os.cpu_count() or 1) - 1)
    return torch.get_num_threads()


def chapter_workload(scale):
    import numpy.random as npr
    import torch

    from vae_from_scratch.numpy import vae as nvae
    from vae_from_scratch.torch import evaluation, training
    from vae_from_scratch.torch.vae import VAE, build_vae

    digits = training.load_dataset("digits", "train").astype(float)
    rng = npr.default_rng(0)
    # 1. NumPy/autograd: AEVB steps on the digits (chapter 5's first half)
    params = nvae.init_vae(rng, 64, (64,), 8)
    state = nvae.adam_init(params)
    for step in range(int(150 * scale)):
        x = digits[(step * 100) % 1200:(step * 100) % 1200 + 100]
        params, state, _ = nvae.aevb_step(params, state, x, rng.standard_normal((100, 8)))
    # 2. torch: Burda et al.'s VAE on MNIST with the package's loop (chapter 5's MNIST training)
    try:
        images = training.load_dataset("mnist", "train")[:int(20000 * scale)]
    except FileNotFoundError:
        images = training.load_dataset("digits", "train")
    data = training.to_device_tensor(images, "cpu")
    torch.manual_seed(0)
    model = training.init_output_bias(build_vae(data.shape[1], "burda"), data)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    training.run_epoch(model, optimizer, data, 100, "elbo", 1, torch.Generator().manual_seed(0),
                       torch.Generator().manual_seed(1))
    # 3. the chapter's small VAE on the digits, trained with IWAE (k = 10)
    digits_t = training.to_device_tensor(training.load_dataset("digits", "train"), "cpu")
    small = training.init_output_bias(VAE(64, (64,), 8), digits_t)
    opt = torch.optim.Adam(small.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    for epoch in range(int(15 * scale)):
        training.run_epoch(small, opt, digits_t, 50, "iwae", 10, torch.Generator().manual_seed(epoch), gen)
    # 4. importance-sampled log-likelihood (k = 1000) of the MNIST model on 100 images
    with torch.no_grad():
        evaluation.vae_log_likelihood(model, data[:100], k=1000, generator=gen)


def child_main(args):
    t0 = time.perf_counter()
    threads = apply_threads(args.setting)
    if args.child == "chapter":
        chapter_workload(args.scale)
    else:
        from vae_from_scratch import cli

        code = cli.main(json.loads(args.cli_args))
        if code:
            raise SystemExit(code)
    print(json.dumps({"threads": threads, "seconds_inside": time.perf_counter() - t0}))


# --- the driver -------------------------------------------------------------------------------------------


def child_env(setting):
    env = {k: v for k, v in os.environ.items() if k not in THREAD_ENV}
    if setting == "torch-default":
        env["VAE_FROM_SCRATCH_THREADS"] = "off"  # the libraries' own defaults: torch takes every core
    elif setting != "policy":
        env["VAE_FROM_SCRATCH_THREADS"] = setting
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("VAE_FROM_SCRATCH_DEVICE", "cpu")
    return env


def cli_args(scale, out):
    try:
        sys.path.insert(0, str(ROOT))
        from vae_from_scratch.torch import training

        training.load_dataset("mnist", "valid")
        data = ["--dataset", "mnist", "--limit", str(int(5000 * scale))]
    except FileNotFoundError:
        data = ["--dataset", "digits"]
    return ["train", *data, "--epochs", "3", "--eval-k", "0", "--no-progress", "--device", "cpu",
            "--out", out]


def run_once(workload, setting, scale, loaded, timeout, out):
    command = [sys.executable, __file__, "--child", workload, "--setting", setting, "--scale", str(scale),
               "--cli-args", json.dumps(cli_args(scale, out))]
    busy = None
    if loaded:
        busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        time.sleep(0.5)
    try:
        t0 = time.perf_counter()
        try:
            done = subprocess.run(command, env=child_env(setting), capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return None, None
        seconds = time.perf_counter() - t0
    finally:
        if busy is not None:
            busy.kill()
            busy.wait()
    if done.returncode != 0:
        raise RuntimeError(f"{workload} ({setting}) failed:\n{done.stderr[-3000:]}")
    info = json.loads(done.stdout.strip().splitlines()[-1])
    return seconds, info["threads"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workloads", nargs="+", choices=["chapter", "cli"], default=["chapter", "cli"])
    parser.add_argument("--threads", type=int, nargs="*", default=[],
                        help="extra settings: fixed thread counts (besides policy and torch default)")
    parser.add_argument("--scale", type=float, default=1.0, help="size of the workloads (1: ~20-40 s chapter)")
    parser.add_argument("--repeats", type=int, default=1, help="quiet/loaded pairs per setting (medians)")
    parser.add_argument("--timeout-factor", type=float, default=6.0,
                        help="stop a loaded run after this many times its quiet time")
    parser.add_argument("--child", choices=["chapter", "cli"], help=argparse.SUPPRESS)
    parser.add_argument("--setting", default="policy", help=argparse.SUPPRESS)
    parser.add_argument("--cli-args", default="[]", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child_main(args)

    settings = ["policy", "torch-default"] + [str(n) for n in args.threads]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"cores={os.cpu_count()}  load average at start={load:.2f}  scale={args.scale}  "
          f"repeats={args.repeats}  python={sys.version.split()[0]}")
    with tempfile.TemporaryDirectory() as tmp:
        for workload in args.workloads:
            results = {}
            for setting in settings:
                quiet, loaded, threads = [], [], None
                for r in range(args.repeats):
                    q, threads = run_once(workload, setting, args.scale, False, None, f"{tmp}/{setting}{r}q")
                    quiet.append(q)
                    lo, _ = run_once(workload, setting, args.scale, True, args.timeout_factor * q + 30,
                                     f"{tmp}/{setting}{r}l")
                    loaded.append(lo)
                results[setting] = (threads, sorted(quiet)[len(quiet) // 2], loaded)
            best = min(q for _, q, _ in results.values())
            print(f"\n{workload}:")
            print(f"  {'setting':<16s}{'threads':>8s}{'quiet s':>10s}{'loaded s':>11s}"
                  f"{'loaded/quiet':>14s}{'quiet/best':>12s}")
            for setting, (threads, quiet, loaded) in results.items():
                stopped = any(x is None for x in loaded)
                if stopped:
                    lo_text = f">{args.timeout_factor * quiet + 30:.0f}"
                    ratio = f">{(args.timeout_factor * quiet + 30) / quiet:.1f}x"
                else:
                    lo = sorted(loaded)[len(loaded) // 2]
                    lo_text, ratio = f"{lo:.1f}", f"{lo / quiet:.2f}x"
                print(f"  {setting:<16s}{threads:>8d}{quiet:>10.1f}{lo_text:>11s}{ratio:>14s}"
                      f"{quiet / best:>11.2f}x" + ("  (loaded run stopped)" if stopped else ""))
    print("\ntargets: loaded/quiet <= 1.5x for the policy; policy quiet/best <= 1.10x")


if __name__ == "__main__":
    main()
