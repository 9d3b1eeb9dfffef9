"""Error-driven densification and contribution-based pruning.

Pruning scores a splat by what it adds to the image: the increase of the loss if it were removed.
With residual r = render - target and splat i contributing c_i w_i, removing it changes the summed
squared error by  -2 c_i . (W^T r)_i + |c_i|^2 |w_i|^2.  W^T r is (up to the loss scale) the colour
gradient the fitting loop already has, and |w_i|^2 is the splat's energy, so the score is free.

Densification puts new splats where the (smoothed) residual error is largest, sized from the local
spacing of splats, with the residual as their starting colour (a colour refit follows).
"""

from __future__ import annotations

import math

import torch

from gsvc_cli.codec.colour_refit import splat_energy
from gsvc_cli.codec.init import blur
from gsvc_cli.codec.splats import Splats


def removal_cost(colors: torch.Tensor, chol: torch.Tensor, wt_residual: torch.Tensor,
                 channel_weights: torch.Tensor) -> torch.Tensor:
    """Loss increase (summed over pixels, channel-weighted) if each splat were removed, [N].

    colors [N,3], chol [N,3], wt_residual [N,3] = W^T (render - target) per channel. Negative
    values mean the splat hurts: removing it would lower the error.
    """
    energy = splat_energy(chol).unsqueeze(1)
    per_channel = -2 * colors * wt_residual + colors * colors * energy
    return (per_channel * channel_weights).sum(1)


def error_map(rendered: torch.Tensor, target: torch.Tensor, channel_weights: torch.Tensor,
              radius: int = 1) -> torch.Tensor:
    """Channel-weighted squared error [H, W], box-blurred so that isolated noisy pixels count less."""
    err = ((rendered - target) ** 2 * channel_weights[:, None, None]).sum(0)
    return blur(err, radius)


def place_at_residual(rendered: torch.Tensor, target: torch.Tensor, n: int, n_total: int,
                      channel_weights: torch.Tensor, generator: torch.Generator, *,
                      size_scale: float = 0.5, min_sigma: float = 0.5, sharpness: float = 2.0) -> Splats:
    """n new splats drawn where the residual error is large.

    rendered/target [3,H,W]; n_total the splat count after adding (sets the typical size).
    Positions are drawn without replacement with probability proportional to error^sharpness/2
    (sharpness 2 = proportional to the squared error), so the worst areas are covered first but
    not all new splats pile onto one pixel. Colour = residual (target - render) at that pixel,
    scaled by the splat's peak-normalised footprint.
    """
    _, height, width = target.shape
    device, dtype = target.device, target.dtype
    if n <= 0:
        return Splats.empty(device)
    err = error_map(rendered, target, channel_weights)
    weight = err.clamp(min=0) ** (sharpness / 2)
    total = weight.sum()
    if not bool(total > 0):
        weight = torch.ones_like(err)
    flat = weight.reshape(-1)
    flat = flat / flat.sum()
    idx = torch.multinomial(flat, n, replacement=n > int((flat > 0).sum()), generator=generator)
    jitter = torch.rand(n, 2, generator=generator, device=device, dtype=dtype)
    xs = (idx % width).to(dtype) + jitter[:, 0]
    ys = (idx // width).to(dtype) + jitter[:, 1]
    means = torch.stack([xs, ys], dim=1)
    spacing = math.sqrt(height * width / max(n_total, 1))
    sigma = torch.full((n,), max(min_sigma, size_scale * spacing), device=device, dtype=dtype)
    zeros = torch.zeros_like(sigma)
    chol = torch.stack([sigma, zeros, sigma], dim=1)
    residual = (target - rendered).reshape(3, -1)[:, idx].t()
    return Splats(means, chol, residual.contiguous())
