"""autograd.numpy reference implementations: small pure functions, float64, explicit randomness.

Import the submodules directly, e.g. ``from vae_from_scratch.numpy import distributions``.
Importing this package applies the BLAS part of the thread policy of :mod:`vae_from_scratch.threads`.
"""

from ..threads import configure_threads as _configure_threads

_configure_threads(torch=False)
