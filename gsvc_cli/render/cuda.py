"""The CUDA backend: the ext/cuda kernels as a differentiable torch op (CUDA tensors only).

Built just in time like the CPU kernels (gsvc_cli/render/build.py, same cache key function), and only
when torch itself has CUDA. Same binning, same per-(tile, splat) partials reduced in a fixed order as
the CPU backend.
"""

from __future__ import annotations

from types import ModuleType

import torch

from gsvc_cli.render.build import CUDA_SPEC, load_kernels
from gsvc_cli.render.native import NativeRender


def cuda_kernels() -> ModuleType:
    """The compiled CUDA kernel module; raises if torch was built without CUDA or the build fails.

    Building needs nvcc and a CUDA build of torch, not a GPU: a Docker image compiles the kernels
    at build time (no GPU is visible then) with TORCH_CUDA_ARCH_LIST naming the target GPUs."""
    return load_kernels(CUDA_SPEC)


def render_cuda(means: torch.Tensor, chol: torch.Tensor, colors: torch.Tensor, height: int,
                width: int) -> torch.Tensor:
    """Render with the CUDA kernels: float32 CUDA tensors, shapes as in `gsvc_cli.render.render`."""
    inputs = (t.float().contiguous() for t in (means, chol, colors))
    return NativeRender.apply(cuda_kernels(), *inputs, height, width)
