"""Initial splat placement: the published random start, and our content-aware start.

Content-aware: splats are drawn with a probability that mixes a uniform floor with the local
gradient magnitude (detail), so flat regions get few large splats and edges and texture get many
small ones; each splat's size follows from the local density (area per splat), and colours start
from the image divided by the expected overlap (a colour refit then makes them exact).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from gsvc_cli.codec.splats import Splats


def random_splats(n: int, height: int, width: int, generator: torch.Generator,
                  device: torch.device) -> Splats:
    """The GaussianImage start: centres uniform over the frame, Cholesky U[0,1)^3 + (0.5, 0, 0.5),
    colours U[0,1)^3. Returns pixel-space Splats (chol already offset)."""
    u = torch.rand(n, 2, generator=generator, device=device)
    means = u * torch.tensor([width, height], device=device, dtype=u.dtype)
    chol = torch.rand(n, 3, generator=generator, device=device)
    chol = chol + torch.tensor([0.5, 0.0, 0.5], device=device)
    colors = torch.rand(n, 3, generator=generator, device=device)
    return Splats(means, chol, colors)


def blur(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Box blur of a [H, W] map with edge clamping (cheap smoothing of importance/error maps)."""
    if radius <= 0:
        return x
    k = 2 * radius + 1
    padded = F.pad(x[None, None], (radius, radius, radius, radius), mode="replicate")
    return F.avg_pool2d(padded, k, stride=1)[0, 0]


def detail_map(image: torch.Tensor, channel_weights: torch.Tensor) -> torch.Tensor:
    """Gradient magnitude [H, W] of the channel-weighted image (central differences)."""
    gray = (image * channel_weights[:, None, None]).sum(0)
    padded = F.pad(gray[None, None], (1, 1, 1, 1), mode="replicate")[0, 0]
    gx = 0.5 * (padded[1:-1, 2:] - padded[1:-1, :-2])
    gy = 0.5 * (padded[2:, 1:-1] - padded[:-2, 1:-1])
    return (gx * gx + gy * gy).sqrt()


def sample_pixels(prob: torch.Tensor, n: int,
                  generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw n pixel positions from a [H, W] probability map; returns (means [n,2] px with sub-pixel
    jitter, probability of the drawn pixels [n])."""
    height, width = prob.shape
    flat = prob.reshape(-1)
    idx = torch.multinomial(flat, n, replacement=n > flat.numel(), generator=generator)
    jitter = torch.rand(n, 2, generator=generator, device=prob.device, dtype=prob.dtype)
    xs = (idx % width).to(prob.dtype) + jitter[:, 0]
    ys = (idx // width).to(prob.dtype) + jitter[:, 1]
    return torch.stack([xs, ys], dim=1), flat[idx]


def content_aware_splats(image: torch.Tensor, n: int, generator: torch.Generator,
                         channel_weights: torch.Tensor, *, uniform_mix: float = 0.3,
                         size_scale: float = 0.6, min_sigma: float = 0.5) -> Splats:
    """n isotropic splats placed by detail, sized by local density, coloured from the image.

    image [3,H,W] in [0,1]. A splat drawn where the per-pixel probability is p covers about
    1 / (n p) pixels; its sigma is size_scale * sqrt(that area).
    """
    _, height, width = image.shape
    detail = blur(detail_map(image, channel_weights), 2)
    detail = detail / detail.mean().clamp(min=1e-8)
    importance = uniform_mix + (1 - uniform_mix) * detail
    prob = importance / importance.sum()
    means, p = sample_pixels(prob, n, generator)
    area = 1.0 / (n * p)
    sigma = (size_scale * area.sqrt()).clamp(min=min_sigma, max=0.25 * max(height, width))
    zeros = torch.zeros_like(sigma)
    chol = torch.stack([sigma, zeros, sigma], dim=1)
    # Each pixel is covered by about 2 pi size_scale^2 splats' worth of weight.
    overlap = 2 * math.pi * size_scale**2
    ix = means[:, 0].long().clamp(0, width - 1)
    iy = means[:, 1].long().clamp(0, height - 1)
    colors = image[:, iy, ix].t() / overlap
    return Splats(means, chol, colors.contiguous())
