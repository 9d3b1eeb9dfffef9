"""The splat set of one frame (exactly the inputs of `gsvc_cli.render.render`) and the image it
decodes to; shared by the encoder and the decoder."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Self

import torch

from gsvc_cli.render import render


def check_splat_shapes(means: torch.Tensor, chol: torch.Tensor, colors: torch.Tensor, what: str) -> None:
    """Raise ValueError unless means [N,2], chol [N,3] and colors [N,3] agree (`what` names them)."""
    n = means.shape[0]
    if means.shape != (n, 2) or chol.shape != (n, 3) or colors.shape != (n, 3):
        raise ValueError(f"inconsistent {what} shapes: means {tuple(means.shape)}, "
                         f"chol {tuple(chol.shape)}, colors {tuple(colors.shape)}")


class SplatArrays:
    """What Splats (floats) and QuantisedSplats (integers) share: three row-aligned tensors
    means [N,2], chol [N,3], colors [N,3], selected and concatenated row-wise together."""

    DTYPE = torch.float32
    means: torch.Tensor
    chol: torch.Tensor
    colors: torch.Tensor

    def __len__(self) -> int:
        return int(self.means.shape[0])

    def select(self, index: torch.Tensor) -> Self:
        """The splats at `index` (a bool mask or integer indices), in that order."""
        return type(self)(self.means[index], self.chol[index], self.colors[index])

    @classmethod
    def cat(cls, parts: list[Self]) -> Self:
        return cls(torch.cat([p.means for p in parts]), torch.cat([p.chol for p in parts]),
                   torch.cat([p.colors for p in parts]))

    @classmethod
    def empty(cls, device: torch.device | str = "cpu") -> Self:
        return cls(torch.zeros(0, 2, dtype=cls.DTYPE, device=device),
                   torch.zeros(0, 3, dtype=cls.DTYPE, device=device),
                   torch.zeros(0, 3, dtype=cls.DTYPE, device=device))


@dataclass
class Splats(SplatArrays):
    """N 2D Gaussian splats of one frame.

    means:  [N, 2] float32, centres in pixels (x right, y down; pixel centres at integer + 0.5).
    chol:   [N, 3] float32, (l1, l2, l3) of the lower Cholesky factor L = [[l1, 0], [l2, l3]],
            Sigma = L L^T in pixel^2.
    colors: [N, 3] float32, unbounded per-channel amplitudes (the rendered sum is clamped later).
    """

    means: torch.Tensor
    chol: torch.Tensor
    colors: torch.Tensor

    def __post_init__(self) -> None:
        check_splat_shapes(self.means, self.chol, self.colors, "splat")

    @property
    def device(self) -> torch.device:
        return self.means.device

    def detach(self) -> Splats:
        return Splats(self.means.detach(), self.chol.detach(), self.colors.detach())

    def clone(self) -> Splats:
        return Splats(self.means.clone(), self.chol.clone(), self.colors.clone())

    def to(self, device: torch.device | str) -> Splats:
        return Splats(self.means.to(device), self.chol.to(device), self.colors.to(device))



@torch.no_grad()
def render_splats(splats: Splats, height: int, width: int, backend: str = "auto") -> torch.Tensor:
    """The image the splats decode to: [3,H,W] float32 clamped to [0,1]."""
    return render(splats.means, splats.chol, splats.colors, height, width, backend=backend).clamp(0, 1)
