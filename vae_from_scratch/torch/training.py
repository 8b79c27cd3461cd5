"""Training a :class:`~vae_from_scratch.torch.vae.VAE`: a fast loop, atomic resumable checkpoints, metrics.

What makes the loop fast and safe (the CLI ``python -m vae_from_scratch train`` calls :func:`train`):

* the whole training set lives on the device as **one tensor**; each epoch draws one permutation
  (on the CPU, from a seeded generator) and minibatches are ``index_select`` s of it: no
  ``DataLoader``, no per-example Python, no host-to-device copies per step;
* **no host synchronization per step**: the objective is summed into a device tensor and read once per
  epoch (``.item()`` forces the host to wait for the device; once per epoch is free);
* **NaN and inf are caught**: a device-side flag records the first non-finite step; at the end of the
  epoch :class:`TrainingDiverged` is raised with the epoch, the step and advice; the last good
  checkpoint is left untouched;
* **checkpoints are atomic**: written to a temporary file in the same folder, flushed, then renamed
  with ``os.replace`` (atomic on POSIX and Windows), so a crash never leaves a half-written checkpoint;
* **resumable, bit for bit**: a checkpoint holds the model, Adam's state, both random generators and the
  history; resuming from epoch ``e`` gives the same parameters as an uninterrupted run (on a CPU;
  GPU kernels may be nondeterministic).
"""

import json
import math
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from .device import default_device
from .evaluation import vae_log_likelihood
from .objectives import OBJECTIVES, make_objective
from .vae import DECODERS, POSTERIORS, build_vae

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.json"
DATASETS = ("mnist", "digits")
DIGITS_SPLIT = {"train": slice(0, 1297), "valid": slice(1297, 1547), "test": slice(1547, 1797)}


class TrainingDiverged(FloatingPointError):
    """The training objective became NaN or infinite."""


@dataclass
class TrainConfig:
    """Everything that defines a training run (stored in the checkpoint and in ``metrics.json``)."""

    dataset: str = "mnist"
    arch: str = "burda"
    hidden: list = None          # None: the architecture's default
    latent_dim: int = None
    activation: str = None
    posterior: str = "diagonal"  # a name in vae.POSTERIORS
    decoder: str = "bernoulli"   # a name in vae.DECODERS
    posterior_options: dict = field(default_factory=dict)
    decoder_options: dict = field(default_factory=dict)
    objective: str = "elbo"      # a name in objectives.OBJECTIVES
    k: int = 1                   # importance samples for "iwae"
    epochs: int = 10
    batch_size: int = 100
    lr: float = 1e-3
    seed: int = 0
    limit: int = None            # use only the first `limit` training images
    validate: bool = True        # ELBO on the validation split after every epoch
    init_output_bias: bool = True  # decoder output bias = logit of the mean training image
    extra: dict = field(default_factory=dict)

    def check(self):
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {DATASETS}, got {self.dataset!r}")
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {sorted(OBJECTIVES)}, got {self.objective!r}")
        if self.posterior not in POSTERIORS:
            raise ValueError(f"posterior must be one of {sorted(POSTERIORS)}, got {self.posterior!r}")
        if self.decoder not in DECODERS:
            raise ValueError(f"decoder must be one of {sorted(DECODERS)}, got {self.decoder!r}")
        if self.k < 1 or self.epochs < 0 or self.batch_size < 1 or not self.lr > 0:
            raise ValueError(f"need k >= 1, epochs >= 0, batch_size >= 1, lr > 0; got k={self.k}, "
                             f"epochs={self.epochs}, batch_size={self.batch_size}, lr={self.lr}")
        if self.objective == "elbo" and self.k != 1:
            raise ValueError("k > 1 needs --objective iwae (the ELBO here uses one sample)")
        return self

    def model_spec(self):
        """The part of the config that fixes the network (must not change on resume)."""
        return {"dataset": self.dataset, "arch": self.arch, "hidden": self.hidden,
                "latent_dim": self.latent_dim, "activation": self.activation,
                "posterior": self.posterior, "decoder": self.decoder,
                "posterior_options": self.posterior_options,
                "decoder_options": self.decoder_options}


# --- data -------------------------------------------------------------------------------------------


def load_dataset(name, split="train"):
    """A binary data set as ``uint8`` ``(N, D)``: ``"mnist"`` (statically binarized, 784 pixels, via
    :func:`vae_from_scratch.data.load_binarized_mnist`) or ``"digits"`` (scikit-learn's 8x8 digits,
    binarized, 64 pixels; a fixed shuffle split 1297 / 250 / 250 into train / valid / test)."""
    from .. import data

    if name == "mnist":
        return data.load_binarized_mnist(split)
    if name == "digits":
        if split not in DIGITS_SPLIT:
            raise ValueError(f"split must be one of {tuple(DIGITS_SPLIT)}, got {split!r}")
        images = data.load_binarized_digits()
        order = np.random.default_rng(0).permutation(len(images))
        return images[order[DIGITS_SPLIT[split]]]
    raise ValueError(f"dataset must be one of {DATASETS}, got {name!r}")


def to_device_tensor(array, device, dtype=torch.float32):
    """Binary data ``(N, D)`` as one float tensor on ``device``; checks once that it holds only 0 and 1."""
    array = np.asarray(array)
    if array.ndim != 2:
        raise ValueError(f"data must be (N, D), got shape {array.shape}")
    if not np.all((array == 0) | (array == 1)):
        raise ValueError("the Bernoulli VAE needs binary data (only 0 and 1)")
    return torch.as_tensor(array).to(device=device, dtype=dtype)


def init_output_bias(model, data, clip=1e-3):
    r"""Set the decoder's output bias to the logit of the mean training image, so that a freshly
    initialized decoder already predicts every pixel's marginal frequency (a common initialization,
    e.g. in NADE-style models): training starts from the independent-pixel model (about 206 nats on
    MNIST) instead of from coin flips (543 nats)."""
    model.decoder.init_output_bias(data.mean(0), clip=clip)
    return model


# --- the loop ---------------------------------------------------------------------------------------


def run_epoch(model, optimizer, data, batch_size, objective="elbo", k=1, perm_generator=None,
              noise_generator=None, on_step=None, progress=(0.0, 1.0)):
    """One pass over ``data`` (a device tensor) in shuffled minibatches; returns device tensors
    ``(mean bound per data point, index of the first non-finite step or -1)``.

    ``objective``: a training objective of :mod:`vae_from_scratch.torch.objectives` (a callable), or
    its name (with ``k`` samples for ``"iwae"``). ``progress``: the fraction of training done at the
    start and at the end of this epoch (for schedules such as KL warm-up).
    Nothing here waits for the device: the bound is accumulated on it and ``on_step`` (e.g. a
    progress bar's ``update``) receives no tensor.
    """
    if isinstance(objective, str):
        objective = make_objective(TrainConfig(objective=objective, k=k))
    n = data.shape[0]
    steps = max(1, math.ceil(n / batch_size))
    perm = torch.randperm(n, generator=perm_generator).to(data.device, non_blocking=True)
    total = torch.zeros((), device=data.device, dtype=_accumulator_dtype(data.device))
    first_bad = torch.full((), -1, device=data.device, dtype=torch.long)
    for step, start in enumerate(range(0, n, batch_size)):
        batch = data.index_select(0, perm[start:start + batch_size])
        done = progress[0] + (progress[1] - progress[0]) * step / steps
        surrogate, bound = objective(model, batch, noise_generator, done)
        optimizer.zero_grad(set_to_none=True)
        (-surrogate).backward()
        optimizer.step()
        detached = bound.detach().sum()
        total += detached
        bad = ~torch.isfinite(detached) & (first_bad < 0)
        first_bad = torch.where(bad, torch.full_like(first_bad, step), first_bad)
        if on_step is not None:
            on_step()
    return total / n, first_bad


@torch.no_grad()
def evaluate_elbo(model, data, batch_size=1000, seed=0):
    """Mean single-sample ELBO over ``data`` with a fixed noise seed (a device tensor, no sync)."""
    was_training = model.training
    model.eval()
    generator = torch.Generator(device=data.device).manual_seed(seed)
    total = torch.zeros((), device=data.device, dtype=_accumulator_dtype(data.device))
    for start in range(0, data.shape[0], batch_size):
        total += model.elbo(data[start:start + batch_size], generator=generator).sum()
    model.train(was_training)
    return total / data.shape[0]


def _accumulator_dtype(device):
    return torch.float32 if device.type == "mps" else torch.float64  # MPS has no float64


def train(config, out_dir=None, resume=False, device=None, progress=False, train_data=None,
          valid_data=None, log=print):
    """Train a VAE as ``config`` says; returns ``(model, metrics)``.

    With ``out_dir``, a checkpoint (``checkpoint.pt``) and ``metrics.json`` are written atomically
    after every epoch; with ``resume=True`` training continues from that checkpoint up to
    ``config.epochs`` epochs in total. ``train_data`` / ``valid_data`` (uint8 arrays) override the
    data set's splits. Raises :class:`TrainingDiverged` on NaN/inf.
    """
    config.check()
    device = torch.device(device) if device is not None else default_device()
    out_dir = Path(out_dir) if out_dir is not None else None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)

    train_np = load_dataset(config.dataset, "train") if train_data is None else train_data
    if config.limit is not None:
        train_np = train_np[:config.limit]
    data = to_device_tensor(train_np, device)
    valid = None
    if config.validate:
        valid_np = load_dataset(config.dataset, "valid") if valid_data is None else valid_data
        valid = to_device_tensor(valid_np, device)

    with torch.random.fork_rng(devices=[]):  # seeded initialization, global RNG left as it was
        torch.manual_seed(config.seed)
        model = build_vae(data.shape[1], config.arch, config.hidden, config.latent_dim,
                          config.activation, posterior=config.posterior, decoder=config.decoder,
                          posterior_options=config.posterior_options,
                          decoder_options=config.decoder_options).to(device)
    objective = make_objective(config)
    if config.init_output_bias:
        init_output_bias(model, data)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    perm_generator = torch.Generator().manual_seed(config.seed)
    noise_generator = torch.Generator(device=device).manual_seed(config.seed + 1)
    metrics = {"config": asdict(config), "model": model.config(), "device": str(device),
               "epochs": [], "status": "running"}

    start_epoch = 0
    checkpoint_path = out_dir / CHECKPOINT if out_dir is not None else None
    if resume:
        if checkpoint_path is None or not checkpoint_path.is_file():
            raise FileNotFoundError(f"--resume: no checkpoint at {checkpoint_path}")
        state = load_checkpoint(checkpoint_path)  # on the CPU: generator states must stay there
        saved = TrainConfig(**state["config"])
        if saved.model_spec() != config.model_spec():
            raise ValueError(f"--resume: the checkpoint was trained with {saved.model_spec()}, "
                             f"not {config.model_spec()}")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        for group in optimizer.param_groups:
            group["lr"] = config.lr
        perm_generator.set_state(state["perm_rng"])
        noise_generator.set_state(state["noise_rng"])
        start_epoch = state["epoch"]
        metrics["epochs"] = state["history"]
        log(f"resuming from {checkpoint_path} after epoch {start_epoch}")

    steps_per_epoch = math.ceil(data.shape[0] / config.batch_size)
    bar = _progress_bar(progress, total=steps_per_epoch * config.epochs,
                        initial=steps_per_epoch * min(start_epoch, config.epochs))
    try:
        for epoch in range(start_epoch, config.epochs):
            t0 = time.perf_counter()
            mean_objective, first_bad = run_epoch(
                model, optimizer, data, config.batch_size, objective=objective,
                perm_generator=perm_generator, noise_generator=noise_generator,
                on_step=bar.update if bar else None,
                progress=(epoch / max(config.epochs, 1), (epoch + 1) / max(config.epochs, 1)))
            value, bad_step = float(mean_objective), int(first_bad)  # the one sync of the epoch
            if bad_step >= 0 or not math.isfinite(value):
                metrics["status"] = "diverged"
                if out_dir is not None:
                    atomic_write_json(metrics, out_dir / METRICS)
                raise TrainingDiverged(_diverged_message(epoch + 1, bad_step, config, checkpoint_path))
            record = {"epoch": epoch + 1, f"train_{config.objective}": value,
                      "seconds": time.perf_counter() - t0}
            if valid is not None:
                record["valid_elbo"] = float(evaluate_elbo(model, valid, seed=config.seed + epoch))
            metrics["epochs"].append(record)
            if bar:
                bar.set_postfix({f"train {config.objective}": f"{value:.2f}",
                                 **({"valid elbo": f"{record['valid_elbo']:.2f}"} if valid is not None else {})})
            if out_dir is not None:
                save_checkpoint(checkpoint_path, model, optimizer, config, epoch + 1, metrics["epochs"],
                                perm_generator, noise_generator)
                atomic_write_json(metrics, out_dir / METRICS)
    finally:
        if bar:
            bar.close()
    metrics["status"] = "trained"
    if out_dir is not None:
        atomic_write_json(metrics, out_dir / METRICS)
    return model, metrics


def _diverged_message(epoch, step, config, checkpoint_path):
    where = f"step {step + 1} of epoch {epoch}" if step >= 0 else f"epoch {epoch}"
    kept = (f" The last good checkpoint (end of epoch {epoch - 1}) is kept at {checkpoint_path}."
            if checkpoint_path is not None and epoch > 1 else "")
    return (f"training stopped: the {config.objective} objective became NaN or infinite at {where}."
            f"{kept} Try a smaller learning rate (now --lr {config.lr:g}), check the data for "
            f"non-binary values, or resume from the checkpoint with --resume --lr <smaller>.")


def _progress_bar(enabled, total, initial):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True, leave=True)


# --- checkpoints ------------------------------------------------------------------------------------


def save_checkpoint(path, model, optimizer, config, epoch, history, perm_generator, noise_generator):
    """Write a checkpoint atomically (temporary file in the same folder, then ``os.replace``)."""
    state = {"format": 1, "config": asdict(config), "model_config": model.config(),
             "model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch,
             "history": history, "perm_rng": perm_generator.get_state(),
             "noise_rng": noise_generator.get_state().cpu()}
    _atomic_write(Path(path), lambda f: torch.save(state, f))


def load_checkpoint(path, device="cpu"):
    """Read a checkpoint written by :func:`save_checkpoint` (tensors only, ``weights_only=True``)."""
    return torch.load(path, map_location=device, weights_only=True)


def load_model(path, device="cpu"):
    """The trained :class:`~vae_from_scratch.torch.vae.VAE` and the config from a checkpoint."""
    from .vae import VAE

    state = load_checkpoint(path, device)
    model = VAE(**state["model_config"]).to(device)
    model.load_state_dict(state["model"])
    return model, TrainConfig(**state["config"]), state


def atomic_write_json(obj, path):
    """Write ``obj`` as indented JSON atomically."""
    _atomic_write(Path(path), lambda f: f.write(json.dumps(obj, indent=2).encode() + b"\n"))


def _atomic_write(path, write):
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the file the usual mode
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


# --- evaluation of a run ----------------------------------------------------------------------------


def evaluate_run(out_dir, k=5000, split="test", n=None, device=None, seed=0, batch_size=100,
                 progress=False, log=print):
    """Importance-sampled log-likelihood (``k`` samples) of the checkpoint in ``out_dir`` on a split.

    With ``n``, a fixed random subset of ``n`` images is used (the same for every run; the first ``n``
    would not do: the MNIST test split is sorted by digit class). Returns a dict (also merged into
    ``metrics.json`` under ``"evaluation"``): ``log_likelihood``
    (mean over the data points, nats), ``nll`` = its negative, ``elbo``, ``k``, ``n``, ``split``.
    """
    out_dir = Path(out_dir)
    if not (out_dir / CHECKPOINT).is_file():
        raise FileNotFoundError(f"no checkpoint at {out_dir / CHECKPOINT}: train first with "
                                f"`python -m vae_from_scratch train --out {out_dir} ...`")
    device = torch.device(device) if device is not None else default_device()
    model, config, _ = load_model(out_dir / CHECKPOINT, device)
    images = load_dataset(config.dataset, split)
    if n is not None and n < len(images):  # a fixed random subset: MNIST's test split is sorted by class
        images = images[np.sort(np.random.default_rng(0).permutation(len(images))[:n])]
    x = to_device_tensor(images, device)
    generator = torch.Generator(device=device).manual_seed(seed)
    t0 = time.perf_counter()
    bar = _progress_bar(progress, total=len(x), initial=0)
    log_px = []
    for lo in range(0, len(x), batch_size):
        log_px.append(vae_log_likelihood(model, x[lo:lo + batch_size], k=k, generator=generator,
                                         batch_size=batch_size))
        if bar:
            bar.update(min(batch_size, len(x) - lo))
    if bar:
        bar.close()
    log_px = torch.cat(log_px)
    elbo = evaluate_elbo(model, x, seed=seed)
    result = {"split": split, "n": len(x), "k": k, "log_likelihood": float(log_px.mean()),
              "nll": -float(log_px.mean()), "log_likelihood_sem": float(log_px.std() / math.sqrt(len(x))),
              "elbo": float(elbo), "seconds": time.perf_counter() - t0, "device": str(device)}
    metrics_path = out_dir / METRICS
    metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
    metrics.setdefault("evaluation", {})[f"{split}_k{k}" + (f"_n{n}" if n is not None else "")] = result
    atomic_write_json(metrics, metrics_path)
    return result
