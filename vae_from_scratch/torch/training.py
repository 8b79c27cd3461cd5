r"""Training a :class:`~vae_from_scratch.torch.vae.VAE`: a fast loop, atomic resumable checkpoints, metrics.

What makes the loop fast and safe (the CLI ``python -m vae_from_scratch train`` calls :func:`train`):

* the whole training set lives on the device as **one tensor**; each epoch draws one permutation
  (on the CPU, from a seeded generator) and minibatches are ``index_select`` s of it: no
  ``DataLoader``, no per-example Python, no host-to-device copies per step;
* **no host synchronization per step**: each step's summed objective is kept on the device and read
  once per epoch (``.item()`` forces the host to wait for the device; once per epoch is free);
* **little besides arithmetic per step**: Adam is the fused implementation (one kernel for all
  parameters instead of about ten element-wise operations per parameter tensor, see
  :func:`make_optimizer`), the bookkeeping is one operation per step, the default VAE's ELBO step
  has its backward pass written out (:mod:`vae_from_scratch.torch.fused_step`, checked against
  autograd; other parts and objectives use autograd), and ``compile=True`` hands the objective's
  forward and backward to ``torch.compile`` (optional: it costs seconds to compile and helps little
  on a CPU; see ``benchmarks/README.md``);
* **NaN and inf are caught**: a device-side flag records the first non-finite step; at the end of the
  epoch :class:`TrainingDiverged` is raised with the epoch, the step and advice; the last good
  checkpoint is left untouched;
* **checkpoints are atomic**: written to a temporary file in the same folder, flushed, then renamed
  with ``os.replace`` (atomic on POSIX and Windows), so a crash never leaves a half-written checkpoint;
* **resumable, bit for bit**: a checkpoint holds the model, Adam's state, both random generators and the
  history; resuming from epoch ``e`` gives the same parameters as an uninterrupted run (on a CPU;
  GPU kernels may be nondeterministic);
* **learning-rate schedules by epoch**: ``schedule="burda"`` is Burda et al.'s (2016, section 5):
  learning rate :math:`10^{-3}\cdot 10^{-i/7}` for :math:`3^i` epochs, :math:`i = 0,\dots,7`
  (3,280 epochs), with their Adam settings (:math:`\beta_1 = 0.9`, :math:`\beta_2 = 0.999`,
  :math:`\epsilon = 10^{-4}`); the rate is a function of the epoch alone, so a run resumes
  mid-schedule.
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
from .collapse import active_units
from .objectives import OBJECTIVES, make_objective
from .vae import DECODERS, POSTERIORS, build_vae

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.json"
DATASETS = ("mnist", "digits")
DIGITS_SPLIT = {"train": slice(0, 1297), "valid": slice(1297, 1547), "test": slice(1547, 1797)}
SCHEDULES = ("constant", "burda")
#: Burda et al. (2016), section 5: 3^i epochs at 10^(-i/7) times the base rate, i = 0..7.
BURDA_STAGES = 8
BURDA_EPOCHS = sum(3**i for i in range(BURDA_STAGES))  # 3,280
#: Adam's epsilon per schedule (Burda et al. used 1e-4; torch's default is 1e-8).
ADAM_EPS = {"constant": 1e-8, "burda": 1e-4}


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
    kl_warmup: float = 0.0       # the ELBO's KL weight rises from 0 to 1 over this fraction of training
    free_bits: float = None      # free bits: lambda, nats per group of latent dimensions (None: off)
    free_bits_groups: int = None  # groups of consecutive latent dimensions (None: one per dimension)
    schedule: str = "constant"   # "constant" (lr throughout) or "burda" (lr * 10^(-i/7) for 3^i epochs)
    compile: bool = False        # torch.compile the objective (optional; see benchmarks/README.md)
    fused_step: object = "auto"  # hand-written backward of the default VAE's ELBO (torch/fused_step.py):
                                 # "auto" (where it applies and compile is off), True, or False
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
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.objective == "elbo" and self.k != 1:
            raise ValueError("k > 1 needs --objective iwae (the ELBO here uses one sample)")
        make_objective(self)  # checks kl_warmup, free_bits and free_bits_groups
        if self.free_bits is not None and not POSTERIORS[self.posterior].kl_splits_over_dims:
            raise ValueError(f"free bits need a posterior whose KL is a sum over dimensions; the "
                             f"{self.posterior!r} posterior's is not (use diagonal or iaf)")
        return self

    def model_spec(self):
        """The part of the config that fixes the network (must not change on resume)."""
        return {"dataset": self.dataset, "arch": self.arch, "hidden": self.hidden,
                "latent_dim": self.latent_dim, "activation": self.activation,
                "posterior": self.posterior, "decoder": self.decoder,
                "posterior_options": self.posterior_options,
                "decoder_options": self.decoder_options}


def learning_rate(config, epoch):
    r"""The learning rate of epoch ``epoch`` (counted from 0) under ``config.schedule``.

    ``"burda"``: :math:`\text{lr}\cdot 10^{-i/7}` during the :math:`3^i` epochs of stage :math:`i`
    (stage 0 is epoch 0, stage 1 epochs 1-3, stage 2 epochs 4-12, ...; Burda et al. 2016, section 5);
    epochs past the 3,280 of the schedule stay at the last rate.
    """
    if config.schedule == "constant":
        return config.lr
    if config.schedule == "burda":
        stage, end = 0, 1
        while epoch >= end and stage < BURDA_STAGES - 1:
            stage += 1
            end += 3**stage
        return config.lr * 10 ** (-stage / 7)
    raise ValueError(f"schedule must be one of {SCHEDULES}, got {config.schedule!r}")


def make_optimizer(parameters, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
    """Adam (Kingma & Ba 2015), the fused implementation where this torch has one.

    The fused kernel updates every parameter tensor in one pass (torch >= 2.4 on CPU and CUDA); the
    default implementation runs about ten element-wise operations per parameter tensor, which on a
    CPU cost about a quarter of a training step of Burda et al.'s model (``benchmarks/README.md``). Same
    update rule, same ``state_dict`` (checkpoints move between the two).
    """
    parameters = list(parameters)
    try:
        return torch.optim.Adam(parameters, lr=lr, betas=betas, eps=eps, fused=True)
    except (RuntimeError, TypeError, ValueError):  # a device or torch without the fused kernel
        return torch.optim.Adam(parameters, lr=lr, betas=betas, eps=eps)


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
              noise_generator=None, on_step=None, progress=(0.0, 1.0), step=None):
    """One pass over ``data`` (a device tensor) in shuffled minibatches; returns device tensors
    ``(mean bound per data point, index of the first non-finite step or -1)``.

    ``objective``: a training objective of :mod:`vae_from_scratch.torch.objectives` (a callable
    ``objective(model, x, generator, progress) -> (surrogate, bound)``, possibly compiled, see
    :func:`compile_objective`), or its name (with ``k`` samples for ``"iwae"``). ``progress``: the
    fraction of training done at the start and at the end of this epoch (for schedules such as KL
    warm-up). Nothing here waits for the device: each step's summed bound stays on it (one operation
    per step), and ``on_step`` (e.g. a progress bar's ``update``) receives no tensor.
    ``step``: a whole training step ``step(model, optimizer, x, generator) -> bound`` that replaces
    the objective, backward and optimizer step (:func:`vae_from_scratch.torch.fused_step.elbo_step`).
    """
    if isinstance(objective, str):
        objective = make_objective(TrainConfig(objective=objective, k=k))
    n = data.shape[0]
    steps = max(1, math.ceil(n / batch_size))
    perm = torch.randperm(n, generator=perm_generator).to(data.device, non_blocking=True)
    sums = []
    for i, start in enumerate(range(0, n, batch_size)):
        batch = data.index_select(0, perm[start:start + batch_size])
        done = progress[0] + (progress[1] - progress[0]) * i / steps
        if step is not None:
            bound = step(model, optimizer, batch, noise_generator)
        else:
            surrogate, bound = objective(model, batch, noise_generator, done)
            optimizer.zero_grad(set_to_none=True)
            (-surrogate).backward()
            optimizer.step()
        sums.append(bound.detach().sum())
        if on_step is not None:
            on_step()
    if not sums:
        raise ValueError("run_epoch: the data has no rows")
    sums = torch.stack(sums).to(_accumulator_dtype(data.device))
    bad = ~torch.isfinite(sums)
    index = torch.arange(len(sums), device=sums.device)
    first = torch.where(bad, index, len(sums)).min()
    first_bad = torch.where(first < len(sums), first, -1)
    return sums.sum() / n, first_bad


def training_step(model, config):
    """The whole-step function for :func:`run_epoch`, or None for the objective + autograd path.

    ``config.fused_step``: ``"auto"`` uses :func:`vae_from_scratch.torch.fused_step.elbo_step` where it
    applies (the plain single-sample ELBO, without KL warm-up or free bits, of a tanh MLP VAE with the
    diagonal posterior and the Bernoulli decoder) and ``config.compile`` is off; ``True`` requires it; ``False`` never uses it.
    """
    from . import fused_step

    if config.fused_step not in ("auto", True, False):
        raise ValueError(f"fused_step must be 'auto', True or False, got {config.fused_step!r}")
    plain_elbo = not getattr(config, "kl_warmup", 0.0) and getattr(config, "free_bits", None) is None
    applies = plain_elbo and fused_step.supports(model, config.objective)
    if config.fused_step is True and not applies:
        raise ValueError("fused_step=True needs the ELBO objective, a tanh MLP, the diagonal posterior "
                         "and the Bernoulli decoder")
    if config.fused_step is True or (config.fused_step == "auto" and applies and not config.compile):
        return fused_step.elbo_step
    return None


def compile_objective(objective, mode=None):
    """``objective`` through ``torch.compile``: its forward and backward become generated kernels
    (the noise is still drawn eagerly with the generator, where dynamo breaks the graph).

    Optional (``TrainConfig.compile``, CLI ``--compile``): compiling costs seconds on the first steps,
    needs a C compiler on a CPU, and on a CPU helps little (``benchmarks/README.md``). ``mode`` is
    ``torch.compile``'s (e.g. ``"reduce-overhead"``: CUDA graphs on a GPU).
    """
    return torch.compile(objective, dynamic=False, mode=mode)


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


@torch.no_grad()
def latent_usage(model, data, batch_size=1000):
    r"""How much of the latent code the model uses on ``data`` (chapter 6): ``kl`` (mean KL per data
    point, nats), ``kl_per_dim`` (its split over the latent dimensions, a list) and ``active_units``
    (Burda et al. 2016: units whose exact posterior mean varies over the data by more than 0.01).
    Empty for a posterior without a closed-form KL per dimension or mean."""
    was_training = model.training
    model.eval()
    means, kls = [], []
    try:
        for start in range(0, data.shape[0], batch_size):
            params = model.encode(data[start:start + batch_size])
            mean, kl_dims = model.posterior.mean(params), model.posterior.kl_per_dim(params)
            if mean is None or kl_dims is None:
                return {}
            means.append(mean)
            kls.append(kl_dims.sum(0))
    finally:
        model.train(was_training)
    kl_dims = torch.stack(kls).sum(0) / data.shape[0]
    return {"kl": float(kl_dims.sum()), "kl_per_dim": [round(v, 5) for v in kl_dims.tolist()],
            "active_units": active_units(torch.cat(means))}


def _accumulator_dtype(device):
    return torch.float32 if device.type == "mps" else torch.float64  # MPS has no float64


def train(config, out_dir=None, resume=False, device=None, progress=False, train_data=None,
          valid_data=None, log=print, overwrite=False):
    """Train a VAE as ``config`` says; returns ``(model, metrics)``.

    With ``out_dir``, a checkpoint (``checkpoint.pt``) and ``metrics.json`` are written atomically
    after every epoch; with ``resume=True`` training continues from that checkpoint up to
    ``config.epochs`` epochs in total. ``train_data`` / ``valid_data`` (uint8 arrays) override the
    data set's splits. Raises :class:`TrainingDiverged` on NaN/inf. A fresh run (no ``resume``) into
    an ``out_dir`` that already holds a checkpoint raises :class:`CheckpointExists` before anything
    is written, unless ``overwrite=True``.
    """
    config.check()
    device = torch.device(device) if device is not None else default_device()
    out_dir = Path(out_dir) if out_dir is not None else None
    _refuse_to_overwrite(out_dir, resume, overwrite)
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
    if config.compile:
        objective = compile_objective(objective)
    step = training_step(model, config)
    if config.init_output_bias:
        init_output_bias(model, data)
    optimizer = make_optimizer(model.parameters(), lr=learning_rate(config, 0),
                               eps=ADAM_EPS[config.schedule])
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
            group["eps"] = ADAM_EPS[config.schedule]
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
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(config, epoch)
            mean_objective, first_bad = run_epoch(
                model, optimizer, data, config.batch_size, objective=objective,
                perm_generator=perm_generator, noise_generator=noise_generator,
                on_step=bar.update if bar else None,
                progress=(epoch / max(config.epochs, 1), (epoch + 1) / max(config.epochs, 1)),
                step=step)
            value, bad_step = float(mean_objective), int(first_bad)  # the one sync of the epoch
            if bad_step >= 0 or not math.isfinite(value):
                metrics["status"] = "diverged"
                if out_dir is not None:
                    atomic_write_json(metrics, out_dir / METRICS)
                raise TrainingDiverged(_diverged_message(epoch + 1, bad_step, config, checkpoint_path))
            record = {"epoch": epoch + 1, f"train_{config.objective}": value,
                      "lr": optimizer.param_groups[0]["lr"], "seconds": time.perf_counter() - t0}
            if valid is not None:
                record["valid_elbo"] = float(evaluate_elbo(model, valid, seed=config.seed + epoch))
                record.update(latent_usage(model, valid))
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


class CheckpointExists(ValueError):
    """A fresh training run would overwrite the checkpoint of an earlier run."""


def _refuse_to_overwrite(out_dir, resume, overwrite):
    if resume and overwrite:
        raise ValueError("--resume and --overwrite contradict each other: --resume continues the run "
                         "in --out, --overwrite replaces it")
    if out_dir is not None and not resume and not overwrite and (out_dir / CHECKPOINT).exists():
        raise CheckpointExists(
            f"{out_dir} already holds a checkpoint ({CHECKPOINT}) from an earlier run, and a fresh run "
            f"would overwrite it. Continue that run with --resume (same command, more --epochs), or "
            f"replace it on purpose with --overwrite, or choose another --out.")


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


def fixed_subset(images, n):
    """A fixed random subset of ``n`` rows (the same for every run and model), in their original order;
    all rows when ``n`` is None or not smaller. The first ``n`` would not do: MNIST's test split is
    sorted by digit class."""
    if n is None or n >= len(images):
        return images
    if n < 1:
        raise ValueError(f"n must be a positive number of images, got {n}")
    return images[np.sort(np.random.default_rng(0).permutation(len(images))[:n])]


def evaluate_model(model, images, k=5000, seed=0, batch_size=100, workers=None, progress=False):
    """Importance-sampled log-likelihood (``k`` samples per image) of ``model`` on binary ``images``
    ``(N, D)``, on the model's device. Returns ``(result, log_px)``: a dict with ``log_likelihood``
    (mean over the images, nats), ``log_likelihood_sem`` (its standard error over the images),
    ``nll`` = minus the mean, ``elbo`` (one seeded sample per image), ``k``, ``n``, the KL and active
    units where the posterior has them, ``seconds`` and ``workers``; and the per-image estimates
    ``(N,)`` (for paired comparisons of two models on the same images).
    ``workers``: CPU threads of the estimator (default :func:`vae_from_scratch.threads.evaluation_workers`:
    every usable core unless the user chose a number); the result does not depend on it.
    """
    from ..threads import evaluation_workers

    device = next(model.parameters()).device
    x = to_device_tensor(images, device)
    workers = evaluation_workers() if workers is None else int(workers)
    generator = torch.Generator(device=device).manual_seed(seed)
    t0 = time.perf_counter()
    bar = _progress_bar(progress, total=len(x), initial=0)
    log_px = []
    for lo in range(0, len(x), batch_size):
        log_px.append(vae_log_likelihood(model, x[lo:lo + batch_size], k=k, generator=generator,
                                         batch_size=batch_size, workers=workers))
        if bar:
            bar.update(min(batch_size, len(x) - lo))
    if bar:
        bar.close()
    log_px = torch.cat(log_px)
    elbo = evaluate_elbo(model, x, seed=seed)
    usage = latent_usage(model, x)
    result = {"n": len(x), "k": k, "log_likelihood": float(log_px.mean()),
              "nll": -float(log_px.mean()), "log_likelihood_sem": float(log_px.std() / math.sqrt(len(x))),
              "elbo": float(elbo), **usage, "seconds": time.perf_counter() - t0, "device": str(device),
              "workers": workers}
    return result, log_px


def evaluate_run(out_dir, k=5000, split="test", n=None, device=None, seed=0, batch_size=100,
                 progress=False, log=print, workers=None):
    """Importance-sampled log-likelihood (``k`` samples) of the checkpoint in ``out_dir`` on a split
    (:func:`evaluate_model`). With ``n``, a fixed random subset of ``n`` images is used
    (:func:`fixed_subset`). Returns the result dict with ``split`` added, and merges it into
    ``metrics.json`` under ``"evaluation"``.
    """
    out_dir = Path(out_dir)
    if not (out_dir / CHECKPOINT).is_file():
        raise FileNotFoundError(f"no checkpoint at {out_dir / CHECKPOINT}: train first with "
                                f"`python -m vae_from_scratch train --out {out_dir} ...`")
    device = torch.device(device) if device is not None else default_device()
    model, config, _ = load_model(out_dir / CHECKPOINT, device)
    images = fixed_subset(load_dataset(config.dataset, split), n)
    result, _ = evaluate_model(model, images, k=k, seed=seed, batch_size=batch_size, workers=workers,
                               progress=progress)
    result = {"split": split, **result}
    metrics_path = out_dir / METRICS
    metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
    metrics.setdefault("evaluation", {})[f"{split}_k{k}" + (f"_n{n}" if n is not None else "")] = result
    atomic_write_json(metrics, metrics_path)
    return result
