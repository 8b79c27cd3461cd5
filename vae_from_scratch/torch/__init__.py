"""PyTorch implementations: batched, device-agnostic, the same names as ``vae_from_scratch.numpy``.

Import the submodules directly, e.g. ``from vae_from_scratch.torch import distributions``.
Importing this package applies the thread policy of :mod:`vae_from_scratch.threads` once.
The models that ship with the package load with one call, :func:`load_pretrained`
(:mod:`vae_from_scratch.torch.pretrained`).
"""

from ..threads import configure_threads as _configure_threads

_configure_threads()


def load_pretrained(name, device=None):
    """A shipped model by name, in eval mode (:func:`vae_from_scratch.torch.pretrained.load_pretrained`)."""
    from .pretrained import load_pretrained as load

    return load(name, device=device)


def available_pretrained():
    """``{name: description}`` of the shipped models (:mod:`vae_from_scratch.torch.pretrained`)."""
    from .pretrained import available_pretrained as available

    return available()
