"""Pick the device torch code runs on: CUDA, then Apple's MPS, then the CPU.

The environment variable ``VAE_FROM_SCRATCH_DEVICE`` (e.g. ``cpu``, ``cuda``, ``cuda:1``) overrides
the choice; the book's stored notebook outputs are produced with ``VAE_FROM_SCRATCH_DEVICE=cpu``.
"""

import os

import torch

ENV_VAR = "VAE_FROM_SCRATCH_DEVICE"


def default_device(prefer=None):
    """Return the ``torch.device`` to use.

    Order: the argument ``prefer``, then ``$VAE_FROM_SCRATCH_DEVICE``, then cuda, mps, cpu.
    An explicit request for a device that is not available raises ``ValueError``.
    """
    name = prefer or os.environ.get(ENV_VAR, "").strip()
    if name:
        source = "argument prefer" if prefer else f"${ENV_VAR}"
        try:
            device = torch.device(name)
        except (RuntimeError, TypeError, ValueError):
            raise ValueError(f"unknown device {name!r} (from {source}); use e.g. 'cpu', 'cuda', 'cuda:1' "
                             "or 'mps'") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {name!r} requested (from {source}) but CUDA is not available; "
                             "ask for 'cpu' instead, or install a CUDA build of torch (see the README)")
        if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device {name!r} requested (from {source}) but only "
                             f"{torch.cuda.device_count()} CUDA device(s) are visible")
        if device.type == "mps" and not _mps_available():
            raise ValueError(f"device {name!r} requested (from {source}) but MPS is not available")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def _mps_available():
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())
