"""The installed package's version (pyproject.toml is the one place it is written)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("easel-client")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"
