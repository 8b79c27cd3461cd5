"""PyTorch implementations: batched, device-agnostic, the same names as ``vae_from_scratch.numpy``.

Import the submodules directly, e.g. ``from vae_from_scratch.torch import distributions``.
"""
