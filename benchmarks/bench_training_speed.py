"""Training speed: the package's loop against a plain ``DataLoader`` loop of the same model, one run.

    .venv/bin/python benchmarks/bench_training_speed.py                 # binarized MNIST, 10k images, CPU
    .venv/bin/python benchmarks/bench_training_speed.py --n 50000 --device cuda --epochs 3

All loops train the same architecture (Burda et al.'s 784-200-200-50 tanh VAE, or ``--arch small``;
single-sample ELBO, Adam, batch 100) from the same initial weights for the same number of epochs:

* **package**: :func:`vae_from_scratch.torch.training.run_epoch`: the data is one tensor on the device,
  minibatches are ``index_select`` s of a permutation, the objective is summed on the device and read
  once per epoch;
* **DataLoader**: the way most tutorials train: ``DataLoader(TensorDataset(x), shuffle=True)``, which
  collates every minibatch example by example on the host and copies it to the device, and
  ``loss.item()`` after every step (a host-device synchronization);
* **DataLoader, no .item()**: the same without the per-step synchronization, to separate the two costs;
* **DataLoader, per-item Dataset**: a ``Dataset`` whose ``__getitem__`` returns one image (as
  ``torchvision.datasets.MNIST`` does), collated by the ``DataLoader`` 100 items at a time. (Recent
  torch fetches a whole minibatch from a ``TensorDataset`` in one call, which the first loop benefits from.)

Prints epochs per second of each and the ratio package / DataLoader. A benchmark, not a test: the
numbers depend on the machine and on what else runs on it (repeat with ``--repeats``).
"""

import argparse
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a clone
from vae_from_scratch.torch import training
from vae_from_scratch.torch.device import default_device
from vae_from_scratch.torch.vae import build_vae


ARCH = "burda"


def make_model(data, device, seed=0):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_vae(data.shape[1], ARCH).to(device)
    return training.init_output_bias(model, data)


def package_loop(data, epochs, batch_size, device):
    model = make_model(data, device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    perm_gen, noise_gen = torch.Generator().manual_seed(0), torch.Generator(device=device).manual_seed(1)
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(epochs):
        value, _ = training.run_epoch(model, optimizer, data, batch_size, perm_generator=perm_gen,
                                      noise_generator=noise_gen)
        float(value)  # once per epoch
    _sync(device)
    return epochs / (time.perf_counter() - t0), float(value)


def dataloader_loop(data_cpu, epochs, batch_size, device, item_every_step=True):
    model = make_model(data_cpu.to(device), device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = DataLoader(TensorDataset(data_cpu), batch_size=batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(0))
    _sync(device)
    t0 = time.perf_counter()
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
    return epochs / (time.perf_counter() - t0), -total / max(count, 1)


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
    t0 = time.perf_counter()
    for _ in range(epochs):
        for (x,) in loader:
            loss = -model.elbo(x.to(device)).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            loss.item()
    _sync(device)
    return epochs / (time.perf_counter() - t0), None


def _sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", choices=["mnist", "digits"], default="mnist")
    parser.add_argument("--n", type=int, default=10000, help="training images (first n)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=1, help="alternate the loops this many times, keep the best")
    parser.add_argument("--arch", choices=["burda", "small"], default="burda",
                        help="burda: 784-200-200-50 (default); small: 784-256-16, where loop overhead matters more")
    parser.add_argument("--device", default=None)
    args = parser.parse_args()
    global ARCH
    ARCH = args.arch

    device = torch.device(args.device) if args.device else default_device()
    images = training.load_dataset(args.dataset, "train")[:args.n]
    data_cpu = training.to_device_tensor(images, "cpu")
    data_dev = data_cpu.to(device)
    print(f"device={device}  torch={torch.__version__}  threads={torch.get_num_threads()}  arch={args.arch}  "
          f"n={len(images)}  epochs={args.epochs}  batch={args.batch_size}")

    best = {"package": 0.0, "DataLoader": 0.0, "DataLoader, no .item()": 0.0,
            "DataLoader, per-item Dataset": 0.0}
    for _ in range(args.repeats):
        best["package"] = max(best["package"], package_loop(data_dev, args.epochs, args.batch_size, device)[0])
        best["DataLoader"] = max(best["DataLoader"],
                                 dataloader_loop(data_cpu, args.epochs, args.batch_size, device)[0])
        best["DataLoader, no .item()"] = max(
            best["DataLoader, no .item()"],
            dataloader_loop(data_cpu, args.epochs, args.batch_size, device, item_every_step=False)[0])
        best["DataLoader, per-item Dataset"] = max(
            best["DataLoader, per-item Dataset"],
            dataloader_loop_per_item(images, args.epochs, args.batch_size, device)[0])
    for name, eps in best.items():
        print(f"{name:<30s} {eps:8.3f} epochs/s  ({eps * len(images):9.0f} images/s)")
    for other in list(best)[1:]:
        print(f"ratio package / {other + ':':<30s} {best['package'] / best[other]:.2f}x")


if __name__ == "__main__":
    main()
