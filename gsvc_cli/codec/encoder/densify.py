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
from collections.abc import Callable

import torch

from gsvc_cli.codec.encoder.colour_refit import splat_energy
from gsvc_cli.codec.encoder.init import blur
from gsvc_cli.codec.splats import Splats
from gsvc_cli.render import render


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


def colour_gradient(splats: Splats, image: torch.Tensor,
                    transform: Callable[[Splats], Splats] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(render [3,H,W], W^T (render - image) [N,3]) of fixed splats, without touching any .grad.

    The second term is the colour gradient of half the summed squared error: what `removal_cost`
    needs. `transform` (e.g. straight-through quantisation) is applied before rendering.
    """
    probe = splats.colors.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        s = Splats(splats.means.detach(), splats.chol.detach(), probe)
        if transform is not None:
            s = transform(s)
        out = render(s.means, s.chol, s.colors, image.shape[1], image.shape[2])
        (g,) = torch.autograd.grad(out, probe, grad_outputs=(out - image).detach())
    return out.detach(), g


def prune_and_place(splats: Splats, rendered: torch.Tensor, wt_residual: torch.Tensor, image: torch.Tensor,
                    n_prune: int, n_add: int, channel_weights: torch.Tensor, generator: torch.Generator,
                    min_sigma: float) -> tuple[torch.Tensor, torch.Tensor, Splats]:
    """Prune the n_prune least useful splats (at least one always stays), then place n_add new ones
    where the residual of what is left is largest.

    rendered [3,H,W] and wt_residual [N,3] are `colour_gradient`'s of `splats`. Returns (keep [K]
    increasing indices of the survivors, the render without the pruned splats, the new splats).
    """
    n = len(splats)
    n_prune = max(0, min(n_prune, n - 1))
    keep = torch.arange(n, device=image.device)
    if n_prune:
        cost = removal_cost(splats.colors, splats.chol, wt_residual, channel_weights)
        worst = torch.topk(cost, n_prune, largest=False).indices
        mask = torch.ones(n, dtype=torch.bool, device=image.device)
        mask[worst] = False
        keep = keep[mask]
        with torch.no_grad():  # take the pruned splats out of the render before choosing where to add
            gone = splats.select(worst)
            rendered = rendered - render(gone.means, gone.chol, gone.colors, image.shape[1], image.shape[2])
    fresh = place_at_residual(rendered, image, n_add, len(keep) + n_add, channel_weights, generator,
                              min_sigma=min_sigma)
    return keep, rendered, fresh
