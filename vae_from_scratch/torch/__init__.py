"""PyTorch implementations: batched, device-agnostic, the same names as ``vae_from_scratch.numpy``.

Import the submodules directly, e.g. ``from vae_from_scratch.torch import distributions``.
Importing this package applies the thread policy of :mod:`vae_from_scratch.threads` once.
"""

from ..threads import configure_threads as _configure_threads

_configure_threads()
