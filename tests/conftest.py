"""Shared pytest fixtures. Keep this file small; add fixtures other test files need."""

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def shared_data_dir():
    """The folder named by ``$VAE_FROM_SCRATCH_DATA`` (``.ci/test`` sets it to ``../shared/data``).

    Tests that need the real binarized MNIST use this fixture. They are skipped only when the variable
    is unset; when it is set, a folder that does not exist is an error, never a skip.
    """
    value = os.environ.get("VAE_FROM_SCRATCH_DATA", "").strip()
    if not value:
        pytest.skip("VAE_FROM_SCRATCH_DATA is not set (point it at the folder holding binarized_mnist.npz)")
    path = Path(value)
    assert path.is_dir(), f"VAE_FROM_SCRATCH_DATA={value!r} is not a folder"
    return path
