"""``python -m vae_from_scratch.grading NOTEBOOK``: the same as the ``vae-grade`` command."""

import sys

from .cli import main

sys.exit(main())
