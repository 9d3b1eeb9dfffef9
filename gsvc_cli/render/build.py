"""Just-in-time build of the native kernels in ext/, cached per source, flags and CPU.

`pip install` stays pure Python: the first render that needs a kernel compiles it with
torch.utils.cpp_extension (logging "compiling kernels (once)" on the `gsvc_cli.render` logger; the
core never prints) and later runs import the cached shared object directly.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import logging
import os
import platform
import sys
import threading
from pathlib import Path
from types import ModuleType

import torch

log = logging.getLogger("gsvc_cli.render")

CPU_FLAGS = ["-O3", "-march=native", "-std=c++17", "-fopenmp", "-DNDEBUG"]
CPU_SOURCES = ["cpu/render_cpu.cpp", "cpu/binding.cpp"]
_lock = threading.Lock()
_loaded: dict[str, ModuleType | Exception] = {}


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


def _cpu_fingerprint() -> str:
    """-march=native output depends on the CPU, so the CPU's feature flags are part of the key."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            flags = next((line for line in f if line.startswith("flags")), "")
    except OSError:
        flags = ""
    return f"{platform.machine()} {platform.processor()} {flags}"


def _build_key(source_dir: Path, sources: list[str], flags: list[str]) -> str:
    digest = hashlib.sha256()
    for part in (torch.__version__, sys.version, " ".join(flags), _cpu_fingerprint()):
        digest.update(part.encode())
    files = sorted((source_dir / "include").glob("*.h")) + sorted((source_dir / "cpu").glob("*"))
    for path in files + [source_dir / s for s in sources]:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _import_shared_object(name: str, path: Path) -> ModuleType:
    loader = importlib.machinery.ExtensionFileLoader(name, str(path))
    spec = importlib.util.spec_from_file_location(name, path, loader=loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def _build_cpu() -> ModuleType:
    from torch.utils import cpp_extension

    source_dir = kernel_source_dir()
    name = f"gsvc_render_cpu_{_build_key(source_dir, CPU_SOURCES, CPU_FLAGS)}"
    build_dir = cache_dir() / name
    shared_object = build_dir / f"{name}.so"
    # torch's builder holds build_dir/lock while compiling: a .so seen during that may be half-written,
    # so only take the fast path when no build is in progress (else load() waits for it).
    if shared_object.is_file() and not (build_dir / "lock").exists():
        return _import_shared_object(name, shared_object)
    if not shared_object.is_file():
        log.info("compiling kernels (once)")
    build_dir.mkdir(parents=True, exist_ok=True)
    return cpp_extension.load(
        name=name,
        sources=[str(source_dir / s) for s in CPU_SOURCES],
        extra_cflags=CPU_FLAGS,
        extra_ldflags=["-fopenmp"],
        extra_include_paths=[str(source_dir / "include"), str(source_dir / "cpu")],
        build_directory=str(build_dir),
        verbose=False,
    )


def cpu_kernels() -> ModuleType:
    """The compiled CPU kernel module (built on first use). Raises the build's error on failure,
    and remembers it so a broken toolchain is not retried on every render."""
    with _lock:
        if "cpu" not in _loaded:
            try:
                _loaded["cpu"] = _build_cpu()
            except Exception as error:  # noqa: BLE001 - any build failure means "no native kernel"
                _loaded["cpu"] = error
        result = _loaded["cpu"]
    if isinstance(result, Exception):
        raise result
    return result
