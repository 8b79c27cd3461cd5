"""``python -m vae_from_scratch train|evaluate ...``: see :mod:`vae_from_scratch.cli`."""

from .cli import main

raise SystemExit(main())
