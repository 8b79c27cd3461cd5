"""autograd.numpy reference implementations: small pure functions, float64, explicit randomness.

Import the submodules directly, e.g. ``from vae_from_scratch.numpy import distributions``.
"""
