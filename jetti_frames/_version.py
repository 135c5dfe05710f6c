"""The toolkit's version, written once (pyproject.toml) and read from the installed metadata."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("jetti-frames")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"
