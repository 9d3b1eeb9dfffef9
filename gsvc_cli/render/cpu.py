"""The native CPU backend: the ext/cpu kernels (C++, OpenMP, SIMD) through the autograd op that
the CUDA backend shares (gsvc_cli/render/native.py)."""

from __future__ import annotations

import torch

from gsvc_cli.render.build import cpu_kernels
from gsvc_cli.render.native import NativeRender


def render_cpu(means: torch.Tensor, chol: torch.Tensor, colors: torch.Tensor, height: int,
               width: int) -> torch.Tensor:
    """Render with the C++ kernels: float32 CPU tensors, shapes as in `gsvc_cli.render.render`."""
    return NativeRender.apply(cpu_kernels(), means.contiguous(), chol.contiguous(), colors.contiguous(),
                              height, width)
