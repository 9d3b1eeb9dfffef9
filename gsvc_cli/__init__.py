"""gsvc: a video codec that represents every frame as a set of 2D Gaussian splats."""

import os
from importlib.metadata import PackageNotFoundError, version

# OpenMP threads that spin while waiting make every parallel torch op and kernel crawl when the
# machine is busy with anything else (measured: a 320x192 fit took 118 s with spinning threads and
# 10 s without, on a loaded 2-core machine). Passive waiting costs little when the machine is idle.
# It must be set before the OpenMP runtime starts, i.e. before torch is imported; users can override.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

try:
    __version__ = version("gsvc")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"
