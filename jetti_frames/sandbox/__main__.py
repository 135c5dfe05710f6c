"""``python -m jetti_frames.sandbox``: see :mod:`jetti_frames.sandbox.cli`."""

from .cli import main

raise SystemExit(main())
