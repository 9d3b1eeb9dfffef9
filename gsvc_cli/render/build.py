"""Just-in-time build of the native kernels in ext/ (CPU and CUDA), cached under one key function.

`pip install` stays pure Python: the first render that needs a kernel compiles it with
torch.utils.cpp_extension (logging "compiling kernels (once)" on the `gsvc_cli.render` logger; the
core never prints) and later runs import the cached shared object directly. `build_key` decides
when a cached object is stale, for both backends.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import logging
import os
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import torch

from gsvc_cli.render.kernel_cache import cache_dir, kernel_source_dir
from gsvc_cli.render.kernel_cache import cpu_fingerprint as _cpu_fingerprint

log = logging.getLogger("gsvc_cli.render")


@dataclass(frozen=True)
class KernelSpec:
    """What one kernel module is built from: its sources (relative to ext/) and compiler flags.
    `kind` is "cpu" or "cuda": the folder of ext/ its sources live in and part of its name."""

    kind: str
    sources: tuple[str, ...]
    cflags: tuple[str, ...]
    cuda_cflags: tuple[str, ...] = ()
    ldflags: tuple[str, ...] = ()


CPU_SPEC = KernelSpec("cpu", ("cpu/render_cpu.cpp", "cpu/binding.cpp"),
                      ("-O3", "-march=native", "-std=c++17", "-fopenmp", "-DNDEBUG"), ldflags=("-fopenmp",))
CUDA_SPEC = KernelSpec("cuda", ("cuda/render_cuda.cu", "cuda/binding_cuda.cpp"), ("-O3", "-std=c++17"),
                       cuda_cflags=("-O3", "-std=c++17"))
_lock = threading.Lock()
_loaded: dict[str, ModuleType | Exception] = {}


def build_key(spec: KernelSpec, source_dir: Path | None = None) -> str:
    """The cache key of a kernel module: everything that changes the compiled object.

    One function for both backends, so a cache can never hand a stale .so to either: the Python
    version (the extension's ABI), torch's version and CUDA version, the flags, every header in
    ext/include and every file in the kernel's own folder (name and bytes). CPU kernels add the
    CPU's feature flags (-march=native); CUDA kernels add TORCH_CUDA_ARCH_LIST (the GPUs compiled
    for) but not the CPU, so a Docker image built on one machine keeps its kernels on another.
    """
    source_dir = source_dir or kernel_source_dir()
    parts = [sys.version, torch.__version__, str(torch.version.cuda), spec.kind, " ".join(spec.cflags),
             " ".join(spec.cuda_cflags), " ".join(spec.ldflags)]
    if spec.kind == "cpu":
        parts.append(_cpu_fingerprint())
    else:
        parts.append(os.environ.get("TORCH_CUDA_ARCH_LIST", ""))
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode())
        digest.update(b"\0")
    files = sorted((source_dir / "include").glob("*.h")) + sorted((source_dir / spec.kind).glob("*"))
    for path in files + [source_dir / s for s in spec.sources]:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def build_name(spec: KernelSpec, source_dir: Path | None = None) -> str:
    """The module's name and its build folder's name in the cache: gsvc_render_<kind>_<key>."""
    return f"gsvc_render_{spec.kind}_{build_key(spec, source_dir)}"


def _import_shared_object(name: str, path: Path) -> ModuleType:
    loader = importlib.machinery.ExtensionFileLoader(name, str(path))
    spec = importlib.util.spec_from_file_location(name, path, loader=loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def _build(spec: KernelSpec) -> ModuleType:
    from torch.utils import cpp_extension

    source_dir = kernel_source_dir()
    name = build_name(spec, source_dir)
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
        sources=[str(source_dir / s) for s in spec.sources],
        extra_cflags=list(spec.cflags),
        extra_cuda_cflags=list(spec.cuda_cflags) or None,
        extra_ldflags=list(spec.ldflags) or None,
        extra_include_paths=[str(source_dir / "include"), str(source_dir / spec.kind)],
        build_directory=str(build_dir),
        verbose=False,
    )


def load_kernels(spec: KernelSpec) -> ModuleType:
    """The compiled kernel module of `spec` (built on first use). Raises the build's error on
    failure, and remembers it so a broken toolchain is not retried on every render."""
    with _lock:
        if spec.kind not in _loaded:
            try:
                if spec.kind == "cuda" and torch.version.cuda is None:
                    raise RuntimeError("this torch was built without CUDA")
                _loaded[spec.kind] = _build(spec)
            except Exception as error:  # noqa: BLE001 - any build failure means "no native kernel"
                _loaded[spec.kind] = error
        result = _loaded[spec.kind]
    if isinstance(result, Exception):
        raise result
    return result


def cpu_kernels() -> ModuleType:
    """The compiled CPU kernel module (see `load_kernels`)."""
    return load_kernels(CPU_SPEC)
