"""gsvc: a video codec that represents every frame as a set of 2D Gaussian splats."""

import os

# OpenMP threads that spin while waiting make every parallel torch op and kernel crawl when the
# machine is busy with anything else (measured: a 320x192 fit took 118 s with spinning threads and
# 10 s without, on a loaded 2-core machine). Passive waiting costs little when the machine is idle.
# It must be set before the OpenMP runtime starts, i.e. before torch is imported; users can override.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# The same for numpy's OpenBLAS: its pool thread spins ~2^28 cycles (~0.1 s) once numpy is imported,
# on the core a decode's render wants (measured: 0.83x the CPU of `gsvc decode --frames 1`). 2^4
# cycles makes it sleep at once (the thread count, and so every result, stays as it was).
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")


def __getattr__(name: str) -> str:
    """`__version__`, read from the installed metadata on first use, so that importing gsvc_cli
    does not import importlib.metadata (~20 ms) for commands that never print it."""
    if name != "__version__":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        value = version("gsvc")
    except PackageNotFoundError:  # running from a source tree that was never installed
        value = "0.0.0+source"
    globals()["__version__"] = value
    return value
