"""gsvc: a video codec that represents every frame as a set of 2D Gaussian splats."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("gsvc")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"
