"""VAE from Scratch: the package behind the executable textbook.

Every concept lives twice, under the same name:

* ``vae_from_scratch.numpy`` -- a small, readable autograd.numpy reference (float64, pure functions);
* ``vae_from_scratch.torch`` -- the batched, device-agnostic PyTorch version used for real training.

Parity tests feed both the same float64 inputs and compare the results.

Docstrings cite equations with their source: "K&W eq. 2.40" is the equation numbered 2.40 in
Kingma & Welling (2019), *An Introduction to Variational Autoencoders*; papers are cited by author
and year ("Burda et al. 2016, eq. 8").
"""

__version__ = "0.1.0"
