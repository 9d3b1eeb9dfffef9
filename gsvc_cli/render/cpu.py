"""The native CPU backend: the ext/cpu kernels as a differentiable torch op.

Forward bins splats into 16x16 tiles and renders; the binning is kept for backward, which computes
per-(tile, splat) partial sums and reduces them per splat in a fixed order, so gradients are
identical bit for bit whatever the thread count. Backward skips the geometry work when neither
means nor chol needs a gradient (and the colour work when colors does not).
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from gsvc_cli.render.build import cpu_kernels


class _CpuRender(torch.autograd.Function):
    @staticmethod
    def forward(ctx, means, chol, colors, height: int, width: int):  # type: ignore[override]
        kernels = cpu_kernels()
        image, *binning = kernels.forward(means, chol, colors, height, width)
        if any(ctx.needs_input_grad[:3]):
            ctx.save_for_backward(chol, colors, *binning)
        return image

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_image):  # type: ignore[override]
        need_means, need_chol, need_colors = ctx.needs_input_grad[:3]
        chol, colors, *binning = ctx.saved_tensors
        grad_means, grad_chol, grad_colors = cpu_kernels().backward(
            grad_image.float(), chol, colors, *binning, need_colors, need_means or need_chol)
        return (grad_means if need_means else None, grad_chol if need_chol else None,
                grad_colors if need_colors else None, None, None)


def render_cpu(means: torch.Tensor, chol: torch.Tensor, colors: torch.Tensor, height: int,
               width: int) -> torch.Tensor:
    """Render with the C++ kernels: float32 CPU tensors, shapes as in `gsvc_cli.render.render`."""
    return _CpuRender.apply(means.contiguous(), chol.contiguous(), colors.contiguous(), height, width)
