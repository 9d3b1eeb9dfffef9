"""The autograd op shared by the CPU and CUDA backends: both kernel modules expose the same
forward (render + tile binning) and backward (fixed-order reduction) on raw tensors.

Forward bins splats into 16x16 tiles and renders; the binning is kept for backward, which computes
per-(tile, splat) partial sums and reduces them per splat in a fixed order, so gradients are
identical bit for bit whatever the thread count. Backward skips the geometry work when neither
means nor chol needs a gradient (and the colour work when colors does not).
"""

from __future__ import annotations

from types import ModuleType

import torch
from torch.autograd.function import once_differentiable


class NativeRender(torch.autograd.Function):
    """apply(kernels, means, chol, colors, height, width) -> image [3, H, W]."""

    @staticmethod
    def forward(ctx, kernels: ModuleType, means, chol, colors, height: int, width: int):  # type: ignore[override]
        image, *binning = kernels.forward(means, chol, colors, height, width)
        ctx.kernels = kernels
        if any(ctx.needs_input_grad[1:4]):
            ctx.save_for_backward(chol, colors, *binning)
        return image

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_image):  # type: ignore[override]
        need_means, need_chol, need_colors = ctx.needs_input_grad[1:4]
        chol, colors, *binning = ctx.saved_tensors
        grad_means, grad_chol, grad_colors = ctx.kernels.backward(
            grad_image.float(), chol, colors, *binning, need_colors, need_means or need_chol)
        return (None, grad_means if need_means else None, grad_chol if need_chol else None,
                grad_colors if need_colors else None, None, None)
