"""Training speed: the package's loop against a plain ``DataLoader`` loop of the same model, one run.

    .venv/bin/python benchmarks/bench_training_speed.py                 # binarized MNIST, 10k images, CPU
    .venv/bin/python benchmarks/bench_training_speed.py --compile       # + the torch.compile'd objective
    .venv/bin/python benchmarks/bench_training_speed.py --profile       # + where a step's time goes
    .venv/bin/python benchmarks/bench_training_speed.py --n 50000 --device cuda --epochs 3

All loops train the same architecture (Burda et al.'s 784-200-200-50 tanh VAE, or ``--arch small``;
single-sample ELBO, Adam with lr 1e-3, batch 100) from the same initial weights for the same number of
whole epochs:

* **package**: what :func:`vae_from_scratch.torch.training.train` (and the CLI) run:
  :func:`~vae_from_scratch.torch.training.run_epoch` with
  :func:`~vae_from_scratch.torch.training.make_optimizer` (Adam, fused) and, for this model and
  objective, the step with the hand-written backward of :mod:`vae_from_scratch.torch.fused_step`:
  the data is one tensor on the device, minibatches are ``index_select`` s of a permutation, each
  step's objective stays on the device and is read once per epoch;
* **package, autograd step**: the same loop with autograd's backward of the objective (what every
  other posterior, decoder and objective uses);
* **package, compiled** (``--compile``): the autograd loop with the objective through ``torch.compile``
  (compiled once before timing; the compile time is printed separately);
* **DataLoader** (the peer; the ratio the issue asks for is against it): the way most tutorials
  train: ``DataLoader(TensorDataset(x), shuffle=True)``, a host-to-device copy per minibatch,
  ``torch.optim.Adam(model.parameters())`` with its defaults, and ``loss.item()`` after every step;
* **DataLoader, no .item()**: the same without the per-step synchronization, to separate the two costs;
* **DataLoader, per-item Dataset**: a ``Dataset`` whose ``__getitem__`` returns one image (as
  ``torchvision.datasets.MNIST`` does), collated by the ``DataLoader`` 100 items at a time.

The loops alternate ``--repeats`` times (package, peer, ..., package, peer, ...), so a change in the
machine's load hits all of them alike. Prints the median epochs per second of each with the spread
(min-max) and the ratios package / peer: the ratio of the medians and the median of the per-repeat
ratios (each from adjacent runs); on a CPU both per second of wall-clock time and per second of the
process's CPU time (which, on a machine shared with other jobs, counts the work and not the waiting;
with one thread it is the better measure of what the loop costs). A benchmark, not a test: the numbers depend on the machine and on
what else runs on it.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a clone
from vae_from_scratch.torch import training  # noqa: E402
from vae_from_scratch.torch.device import default_device  # noqa: E402
from vae_from_scratch.torch.objectives import make_objective  # noqa: E402
from vae_from_scratch.torch.vae import build_vae  # noqa: E402

ARCH = "burda"
MATMULS = {"aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::matmul", "aten::linear"}


def make_model(data, device, seed=0):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_vae(data.shape[1], ARCH).to(device)
    return training.init_output_bias(model, data)


class PackageLoop:
    """The package's loop; the model and the (compiled) objective are built once, the weights reset
    before every timing, so that ``torch.compile`` compiles once."""

    def __init__(self, data, batch_size, device, compile=False, compile_mode=None, fused_step="auto"):
        self.data, self.batch_size, self.device = data, batch_size, device
        self.model = make_model(data, device)
        # the step train() takes: the hand-written backward where it applies, unless compiling
        self.step = training.training_step(
            self.model, training.TrainConfig(objective="elbo", compile=compile, fused_step=fused_step))
        self.initial = {k: v.clone() for k, v in self.model.state_dict().items()}
        self.objective = make_objective("elbo")
        if compile:
            self.objective = training.compile_objective(self.objective, mode=compile_mode)
        self.compile_seconds = None
        if compile:  # compile (forward and backward) outside the timings
            t0 = time.perf_counter()
            self.run(1, limit=2 * batch_size)
            self.compile_seconds = time.perf_counter() - t0

    def run(self, epochs, limit=None):
        self.model.load_state_dict(self.initial)
        optimizer = training.make_optimizer(self.model.parameters(), lr=1e-3)
        perm_gen = torch.Generator().manual_seed(0)
        noise_gen = torch.Generator(device=self.device).manual_seed(1)
        data = self.data if limit is None else self.data[:limit]
        _sync(self.device)
        t0 = _clocks()
        for _ in range(epochs):
            value, _ = training.run_epoch(self.model, optimizer, data, self.batch_size, self.objective,
                                          perm_generator=perm_gen, noise_generator=noise_gen,
                                          step=self.step)
            float(value)  # once per epoch
        _sync(self.device)
        return _rates(epochs, t0)


def dataloader_loop(data_cpu, epochs, batch_size, device, item_every_step=True):
    model = make_model(data_cpu.to(device), device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = DataLoader(TensorDataset(data_cpu), batch_size=batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(0))
    _sync(device)
    t0 = _clocks()
    for _ in range(epochs):
        total, count = 0.0, 0
        for (x,) in loader:
            x = x.to(device)
            loss = -model.elbo(x).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if item_every_step:
                total += loss.item() * len(x)
            count += len(x)
    _sync(device)
    return _rates(epochs, t0)


class PerItem(Dataset):
    """One image per ``__getitem__``, converted on the fly, like the torchvision data sets."""

    def __init__(self, images):
        self.images = images

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return (torch.from_numpy(self.images[i]).float(),)


def dataloader_loop_per_item(images, epochs, batch_size, device):
    model = make_model(torch.as_tensor(images).float().to(device), device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = DataLoader(PerItem(images), batch_size=batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(0))
    _sync(device)
    t0 = _clocks()
    for _ in range(epochs):
        for (x,) in loader:
            loss = -model.elbo(x.to(device)).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            loss.item()
    _sync(device)
    return _rates(epochs, t0)


def _clocks():
    return time.perf_counter(), time.process_time()


def _rates(epochs, start):
    """Epochs per second of wall time, and per second of this process's CPU time (all its threads):
    on a machine shared with other jobs the CPU time counts only the work done, not the waiting."""
    wall, cpu = _clocks()
    return {"wall": epochs / (wall - start[0]), "cpu": epochs / max(cpu - start[1], 1e-9)}


def _sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


# --- profile ------------------------------------------------------------------------------------------


def profile_breakdown(run, steps):
    """Where the time of ``run()`` goes, per training step, from ``torch.profiler`` (CPU).

    Each profiled event's *self* time goes to one category: matrix products (``mm``, ``addmm``, ...),
    the optimizer (anything inside ``Optimizer.step`` / ``zero_grad``, the fused kernel included),
    autograd's engine (its per-node bookkeeping: ``evaluate_function`` and ``...Backward`` nodes),
    data loading (inside the ``DataLoader`` iterator, or ``index_select`` of the minibatch),
    element-wise and other tensor operations (every other ``aten::`` op: tanh, softplus, their
    backward, sums, views, copies). "Python" is the rest of the wall time: the interpreter between
    operations (the profiler's own overhead lands there too, so it is an upper bound).
    """
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        t0 = time.perf_counter()
        run()
        wall = time.perf_counter() - t0
    events = prof.events()
    totals = {"matrix products": 0.0, "element-wise and other ops": 0.0, "autograd engine": 0.0,
              "optimizer": 0.0, "data loading": 0.0}

    def category(event):
        chain, e = [], event
        while e is not None:
            chain.append(e.name)
            e = e.cpu_parent
        if any(n.startswith("Optimizer.") for n in chain):
            return "optimizer"
        if any("DataLoader" in n for n in chain) or event.name == "aten::index_select":
            return "data loading"
        if event.name in MATMULS:
            return "matrix products"
        if "Compiled" in event.name or "inductor" in event.name.lower() or "cpp_fused" in event.name:
            return "element-wise and other ops"  # torch.compile's generated (fused) kernels
        if event.name.startswith("autograd::") or "Backward" in event.name:
            return "autograd engine"
        if event.name.startswith("aten::"):
            return "element-wise and other ops"
        return None  # record_function ranges of the loops themselves: their self time is Python

    for event in events:
        cat = category(event)
        if cat is not None:
            totals[cat] += event.self_cpu_time_total / 1e6
    totals["Python (and profiler overhead)"] = max(wall - sum(totals.values()), 0.0)
    return {k: v / steps * 1e3 for k, v in totals.items()}, wall / steps * 1e3


def print_profiles(loops, steps_per_epoch):
    profiles = {name: profile_breakdown(run, steps_per_epoch) for name, run in loops.items()}
    names = list(profiles)
    print(f"\nprofile, ms per training step (one epoch under torch.profiler, {steps_per_epoch} steps):")
    width = max(24, max(len(n) for n in names) + 2)
    print(f"{'':32s}" + "".join(f"{n:>{width}s}" for n in names))
    for cat in profiles[names[0]][0]:
        print(f"{cat:32s}" + "".join(
            f"{profiles[n][0][cat]:{width - 7}.3f} ({profiles[n][0][cat] / profiles[n][1]:4.0%})" for n in names))
    print(f"{'total (wall, profiled)':32s}" + "".join(f"{profiles[n][1]:{width}.3f}" for n in names))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", choices=["mnist", "digits"], default="mnist")
    parser.add_argument("--n", type=int, default=10000, help="training images (first n)")
    parser.add_argument("--epochs", type=int, default=2, help="whole epochs per timing")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5, help="alternate the loops this many times")
    parser.add_argument("--arch", choices=["burda", "small"], default="burda",
                        help="burda: 784-200-200-50 (default); small: 784-256-16, where loop overhead matters more")
    parser.add_argument("--compile", action="store_true", help="also time the torch.compile'd objective")
    parser.add_argument("--no-autograd-variant", action="store_true",
                        help="skip the package loop with autograd's backward (shown by default)")
    parser.add_argument("--compile-mode", default=None,
                        help="torch.compile mode, e.g. reduce-overhead (CUDA graphs on a GPU)")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    parser.add_argument("--peers", choices=["one", "all"], default="all",
                        help="one: only the DataLoader peer; all: also its two variants")
    parser.add_argument("--profile", action="store_true", help="print where a step's time goes (CPU)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: as set)")
    parser.add_argument("--device", default=None)
    args = parser.parse_args()
    global ARCH
    ARCH = args.arch
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    device = torch.device(args.device) if args.device else default_device()
    images = training.load_dataset(args.dataset, "train")[:args.n]
    data_cpu = training.to_device_tensor(images, "cpu")
    data_dev = data_cpu.to(device)
    print(f"device={device}  torch={torch.__version__}  threads={torch.get_num_threads()}  arch={args.arch}  "
          f"n={len(images)}  epochs={args.epochs}  batch={args.batch_size}  repeats={args.repeats}")

    package = PackageLoop(data_dev, args.batch_size, device)
    loops = {"package": lambda: package.run(args.epochs)}
    if args.compile:
        compiled = PackageLoop(data_dev, args.batch_size, device, compile=True, compile_mode=args.compile_mode)
        print(f"compile time (first two steps, forward and backward): {compiled.compile_seconds:.1f} s")
        loops["package, compiled"] = lambda: compiled.run(args.epochs)
    if not args.no_autograd_variant:
        autograd_loop = PackageLoop(data_dev, args.batch_size, device, fused_step=False)
        loops["package, autograd step"] = lambda: autograd_loop.run(args.epochs)
    loops["DataLoader"] = lambda: dataloader_loop(data_cpu, args.epochs, args.batch_size, device)
    if args.peers == "all":
        loops["DataLoader, no .item()"] = lambda: dataloader_loop(
            data_cpu, args.epochs, args.batch_size, device, item_every_step=False)
        loops["DataLoader, per-item Dataset"] = lambda: dataloader_loop_per_item(
            images, args.epochs, args.batch_size, device)

    runs = {name: [] for name in loops}
    for _ in range(args.repeats):
        for name, run in loops.items():
            runs[name].append(run())
    packages = [n for n in runs if n.startswith("package")]
    peers = [n for n in runs if not n.startswith("package")]
    clocks = ["wall", "cpu"] if device.type == "cpu" else ["wall"]
    for clock in clocks:
        rates = {name: [r[clock] for r in values] for name, values in runs.items()}
        print(f"\nepochs per second of {'wall-clock' if clock == 'wall' else 'CPU'} time "
              f"(median of {args.repeats}, spread min-max):")
        for name, values in rates.items():
            med = statistics.median(values)
            print(f"{name:<30s} {med:8.3f} epochs/s  ({med * len(images):9.0f} images/s)  "
                  f"spread {min(values):.3f}-{max(values):.3f}")
        for mine in packages:
            for other in peers:
                paired = [a / b for a, b in zip(rates[mine], rates[other])]
                print(f"ratio {mine} / {other + ':':<30s} "
                      f"{statistics.median(rates[mine]) / statistics.median(rates[other]):.2f}x"
                      f"  (per repeat: median {statistics.median(paired):.2f}x, {min(paired):.2f}-{max(paired):.2f}x)")

    if args.json:
        import json
        import platform

        report = {"device": str(device), "device_name": (torch.cuda.get_device_name(device)
                                                         if device.type == "cuda" else platform.processor()),
                  "torch": torch.__version__, "threads": torch.get_num_threads(), "arch": args.arch,
                  "n": len(images), "epochs": args.epochs, "batch_size": args.batch_size,
                  "repeats": args.repeats, "compile_mode": args.compile_mode,
                  "compile_seconds": compiled.compile_seconds if args.compile else None,
                  "epochs_per_second": runs}
        for clock in clocks:
            rates = {name: [r[clock] for r in values] for name, values in runs.items()}
            report[f"median_epochs_per_{clock}_second"] = {k: statistics.median(v) for k, v in rates.items()}
            report[f"ratios_of_medians_{clock}"] = {
                f"{a} / {b}": statistics.median(rates[a]) / statistics.median(rates[b])
                for a in packages for b in peers}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")

    if args.profile:
        steps = -(-len(images) // args.batch_size)
        profiled = {"package": lambda: package.run(1)}
        if args.compile:
            profiled["package, compiled"] = lambda: compiled.run(1)
        if not args.no_autograd_variant:
            profiled["package, autograd step"] = lambda: autograd_loop.run(1)
        profiled["DataLoader"] = lambda: dataloader_loop(data_cpu, 1, args.batch_size, device)
        print_profiles(profiled, steps)


if __name__ == "__main__":
    main()
