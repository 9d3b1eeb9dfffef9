"""The CUDA backend: the ext/cuda kernels as a differentiable torch op (CUDA tensors only).

Built just in time like the CPU kernels, and only when torch itself has CUDA. Same binning, same
per-(tile, splat) partials reduced in a fixed order as the CPU backend.
"""

from __future__ import annotations

import hashlib
import threading
from types import ModuleType

import torch

from gsvc_cli.render.build import cache_dir, kernel_source_dir, log
from gsvc_cli.render.native import NativeRender

CUDA_SOURCES = ["cuda/render_cuda.cu", "cuda/binding_cuda.cpp"]
CUDA_FLAGS = ["-O3", "-std=c++17"]
_lock = threading.Lock()
_module: list[ModuleType | Exception] = []


def cuda_kernels() -> ModuleType:
    """The compiled CUDA kernel module; raises if torch was built without CUDA or the build fails.

    Building needs nvcc and a CUDA build of torch, not a GPU: a Docker image compiles the kernels
    at build time (no GPU is visible then) with TORCH_CUDA_ARCH_LIST naming the target GPUs."""
    with _lock:
        if not _module:
            try:
                if torch.version.cuda is None:
                    raise RuntimeError("this torch was built without CUDA")
                from torch.utils import cpp_extension

                source_dir = kernel_source_dir()
                digest = hashlib.sha256(torch.__version__.encode() + " ".join(CUDA_FLAGS).encode())
                files = sorted((source_dir / "include").glob("*.h")) + sorted((source_dir / "cuda").glob("*"))
                for path in files:
                    digest.update(path.read_bytes())
                name = f"gsvc_render_cuda_{digest.hexdigest()[:16]}"
                build_dir = cache_dir() / name
                build_dir.mkdir(parents=True, exist_ok=True)
                if not (build_dir / f"{name}.so").is_file():
                    log.info("compiling kernels (once)")
                _module.append(cpp_extension.load(
                    name=name, sources=[str(source_dir / s) for s in CUDA_SOURCES],
                    extra_cflags=["-O3", "-std=c++17"], extra_cuda_cflags=CUDA_FLAGS,
                    extra_include_paths=[str(source_dir / "include"), str(source_dir / "cuda")],
                    build_directory=str(build_dir), verbose=False))
            except Exception as error:  # noqa: BLE001 - remembered so a failed build is not retried
                _module.append(error)
        result = _module[0]
    if isinstance(result, Exception):
        raise result
    return result


def render_cuda(means: torch.Tensor, chol: torch.Tensor, colors: torch.Tensor, height: int,
                width: int) -> torch.Tensor:
    """Render with the CUDA kernels: float32 CUDA tensors, shapes as in `gsvc_cli.render.render`."""
    inputs = (t.float().contiguous() for t in (means, chol, colors))
    return NativeRender.apply(cuda_kernels(), *inputs, height, width)
