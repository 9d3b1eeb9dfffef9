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


class BinnedSplats:
    """Splats of fixed centres and shapes, binned into tiles once: `render(colors)` is W c and
    `transpose(pixels)` W^T x, the products a colour refit alternates (render_cpu bins the splats
    again on every call). The same kernels in the same order: the same bits as render_cpu and its
    gradient with respect to the colours."""

    def __init__(self, means: torch.Tensor, chol: torch.Tensor, height: int, width: int) -> None:
        self.kernels = cpu_kernels()
        self.chol = chol.contiguous()
        self.binning = self.kernels.bin_splats(means.contiguous(), self.chol, height, width)
        self.height, self.width = height, width
        self.unused_colors = torch.zeros_like(self.binning[0][:, :3])  # backward reads them for geometry only

    def render(self, colors: torch.Tensor) -> torch.Tensor:
        conics, boxes, _, tile_offsets, tile_splats, _ = self.binning
        return self.kernels.forward_binned(colors.contiguous(), conics, boxes, tile_offsets, tile_splats,
                                           self.height, self.width)

    def transpose(self, pixels: torch.Tensor) -> torch.Tensor:
        """W^T pixels [N, 3] for pixels [3, H, W]."""
        return self.kernels.backward(pixels.float().contiguous(), self.chol, self.unused_colors,
                                     *self.binning, True, False)[2]
