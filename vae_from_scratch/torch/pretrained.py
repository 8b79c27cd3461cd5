"""Pretrained models that ship with the book: evaluate, sample and visualize without training.

    from vae_from_scratch.torch import load_pretrained, available_pretrained
    available_pretrained()                      # {name: description}
    model = load_pretrained("burda_vae")        # a VAE in eval mode, on the CPU (or device=...)
    x, probs = model.sample(16)

    python -m vae_from_scratch pretrained                              # list them, with their numbers
    python -m vae_from_scratch evaluate --pretrained burda_vae --eval-k 5000

Each model is one file in ``vae_from_scratch/pretrained_models/`` holding the network's weights and
constructor arguments only (no optimizer state), listed in ``index.json`` with its description, the
command that trained it, where its recorded results are, and a **recorded check**: the test ELBO on a
fixed random subset of test images with a fixed noise seed, measured when the model was exported.
``tests/test_pretrained.py`` loads every listed model and compares that number, so a file that does
not match its entry, or a change to the model code that changes what a file means, fails a test.

Files are written atomically (:func:`export_pretrained`), like training checkpoints.
"""

import io
import json
from pathlib import Path

import torch

from .training import (_atomic_write, atomic_write_json, evaluate_elbo, fixed_subset, load_checkpoint,
                       load_dataset, to_device_tensor)
from .vae import VAE

#: Where the shipped models and their index live (package data).
PRETRAINED_DIR = Path(__file__).resolve().parent.parent / "pretrained_models"
INDEX = "index.json"
FORMAT = "vae_from_scratch.pretrained/1"
#: The recorded check: test ELBO on this many fixed test images (fixed_subset), noise seed CHECK_SEED.
CHECK_N = 500
CHECK_SEED = 0


def _index(folder=None):
    path = Path(folder or PRETRAINED_DIR) / INDEX
    return json.loads(path.read_text()) if path.is_file() else {}


def available_pretrained(folder=None):
    """``{name: description}`` of the shipped models."""
    return {name: entry["description"] for name, entry in _index(folder).items()}


def pretrained_info(name, folder=None):
    """The index entry of ``name``: description, file, training command, results, recorded check."""
    index = _index(folder)
    if name not in index:
        known = ", ".join(sorted(index)) or "none"
        raise ValueError(f"no pretrained model named {name!r}; available: {known}")
    return index[name]


def load_pretrained(name, device=None, folder=None):
    """The shipped model ``name`` (see :func:`available_pretrained`) as a
    :class:`~vae_from_scratch.torch.vae.VAE` in eval mode on ``device`` (default: the CPU).
    Its index entry is attached as ``model.pretrained_info``."""
    info = pretrained_info(name, folder)
    path = Path(folder or PRETRAINED_DIR) / info["file"]
    if not path.is_file():
        raise FileNotFoundError(f"pretrained model {name!r}: file {path} is missing from this installation")
    device = torch.device(device) if device is not None else torch.device("cpu")
    state = torch.load(path, map_location=device, weights_only=True)
    if state.get("format") != FORMAT:
        raise ValueError(f"{path} is not a pretrained-model file of format {FORMAT}")
    model = VAE(**state["model_config"]).to(device)
    model.load_state_dict(state["model"])
    model.eval()
    model.pretrained_info = info
    return model


def check_images(dataset="mnist", n=CHECK_N):
    """The test images of the recorded check (a fixed random subset of the test split)."""
    return fixed_subset(load_dataset(dataset, "test"), n)


def recorded_check_value(model, images, seed=CHECK_SEED):
    """Mean single-sample ELBO of ``model`` on ``images`` with noise seed ``seed`` (nats)."""
    x = to_device_tensor(images, next(model.parameters()).device)
    return float(evaluate_elbo(model, x, seed=seed))


def export_pretrained(checkpoint, name, description, results=None, folder=None, dataset="mnist"):
    """Ship the model of a training checkpoint (``DIR/checkpoint.pt``) as pretrained model ``name``.

    Writes ``name.pt`` (weights and constructor arguments only) and its entry in the index: the
    description, the training command and epochs from the checkpoint, ``results`` (where the model's
    recorded numbers are, e.g. ``book/results/ch05_burda_schedule.json``) and the recorded check
    (:func:`recorded_check_value` on :func:`check_images`). Returns the entry.
    """
    folder = Path(folder or PRETRAINED_DIR)
    folder.mkdir(parents=True, exist_ok=True)
    state = load_checkpoint(checkpoint)
    model = VAE(**state["model_config"])
    model.load_state_dict(state["model"])
    model.eval()
    payload = {"format": FORMAT, "model_config": state["model_config"], "model": model.state_dict()}
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    _atomic_write(folder / f"{name}.pt", lambda f: f.write(buffer.getvalue()))
    config = state.get("config", {})
    entry = {"description": description, "file": f"{name}.pt",
             "command": config.get("extra", {}).get("command"), "epochs": state.get("epoch"),
             "results": results,
             "check": {"what": "mean single-sample test ELBO (nats) on a fixed random subset of "
                               "test images, noise seed as given",
                       "dataset": dataset, "n": CHECK_N, "seed": CHECK_SEED,
                       "elbo": round(recorded_check_value(model, check_images(dataset)), 4)}}
    index = _index(folder)
    index[name] = entry
    atomic_write_json(dict(sorted(index.items())), folder / INDEX)
    return entry
