"""Where compiled kernels come from and where they are kept, without torch: the ext/ source tree,
the cache folder and the CPU fingerprint that `-march=native` objects are keyed by. Shared by the
torch extension build (build.py) and the torch-free C library build (capi_build.py)."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def kernel_source_dir() -> Path:
    """The ext/ tree: bundled in the package (gsvc_cli/render/ext) or beside it in a checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "ext", here.parents[1] / "ext"):
        if (candidate / "include" / "gsvc_splat.h").is_file():
            return candidate
    raise FileNotFoundError(f"kernel sources not found under {here / 'ext'} or {here.parents[1] / 'ext'}")


def cache_dir() -> Path:
    """Where built kernels live: $GSVC_KERNEL_CACHE, else $XDG_CACHE_HOME/gsvc/kernels."""
    if os.environ.get("GSVC_KERNEL_CACHE"):
        return Path(os.environ["GSVC_KERNEL_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "gsvc" / "kernels"


def cpu_fingerprint() -> str:
    """-march=native output depends on the CPU, so the CPU's feature flags are part of the key."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            flags = next((line for line in f if line.startswith("flags")), "")
    except OSError:
        flags = ""
    return f"{platform.machine()} {platform.processor()} {flags}"
