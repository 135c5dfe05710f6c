"""``python -m jetti_frames``: the ``jetti-frames`` command (see :mod:`jetti_frames.cli`)."""

from .cli import main

raise SystemExit(main())
