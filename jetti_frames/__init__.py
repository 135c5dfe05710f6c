"""jetti-frames: typed pandas DataFrames and parquet datasets from the Jetti (Onport) API."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
