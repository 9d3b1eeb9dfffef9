"""The CPU kernels' tile binning (which splats each 16x16 tile draws) against two independent oracles.

- gsplat's torch implementation of tile intersection (`gsplat.cuda._torch_impl._isect_tiles` and
  `_isect_offset_encode`, written by others for 3DGS) bounds it from above. gsplat bins by an
  axis-aligned radius per splat; fed the radius at which our image model's weight reaches 1/255,
  rounded up to whole pixels as gsplat's own projection rounds its radii, its tile set is a
  conservative superset of what any correct binning needs, so our tiles must be a subset of it.
  (gsplat's own default, 3 sigma and opacity-aware, is narrower than our 1/255 cut-off at
  sqrt(2 ln 255) = 3.33 sigma, so it is not what we compare against.) Its depth sort, fed the splat
  index as depth, also gives the order our tiles must list their splats in.
- The dense reference (every splat at every pixel, float64) bounds it from below: every tile holding
  a pixel where a splat's weight is at least 1/255 must list that splat, or the render loses it.

gsplat is a dev dependency for this reason alone (docs/ARCHITECTURE.md).
"""

from __future__ import annotations

import math

import pytest
import torch
from helpers import kodak_crop, random_splats

from gsvc_cli.render.build import cpu_kernels
from gsvc_cli.render.reference import WEIGHT_MIN, inverse_covariance

isect = pytest.importorskip("gsplat.cuda._torch_impl", reason="gsplat (dev extra) is not installed")

TILE = 16
CUTOFF = math.sqrt(2 * math.log(255))  # Mahalanobis radius where exp(-r^2 / 2) = 1/255


def our_tiles(means: torch.Tensor, chol: torch.Tensor, height: int, width: int) -> list[list[int]]:
    """Per tile (row-major), the splats the CPU kernels bin into it, in their order."""
    colors = torch.zeros(len(means), 3)
    _, _, _, _, tile_offsets, tile_splats, _ = cpu_kernels().forward(means, chol, colors, height, width)
    return [tile_splats[int(tile_offsets[t]):int(tile_offsets[t + 1])].tolist()
            for t in range(len(tile_offsets) - 1)]


def gsplat_tiles(means: torch.Tensor, chol: torch.Tensor, height: int, width: int) -> list[list[int]]:
    """Per tile, the splats gsplat's intersection puts there, sorted by depth = splat index."""
    l1, l2, l3 = chol.double().unbind(1)
    sigma_x, sigma_y = l1.abs(), torch.sqrt(l2 * l2 + l3 * l3)  # sqrt of the covariance's diagonal
    radii = torch.ceil(CUTOFF * torch.stack([sigma_x, sigma_y], 1))
    invisible = ~inverse_covariance(chol.double())[3]  # degenerate factors draw nothing
    radii[invisible] = 0
    tiles_x, tiles_y = math.ceil(width / TILE), math.ceil(height / TILE)
    depths = torch.arange(len(means), dtype=torch.float32) + 1.0  # positive: float order is bit order
    _, isect_ids, flatten_ids = isect._isect_tiles(means[None].float(), radii[None].int(), depths[None], TILE,
                                                   tiles_x, tiles_y, sort=True)
    offsets = isect._isect_offset_encode(isect_ids, 1, tiles_x, tiles_y).flatten().tolist()
    ends = [*offsets[1:], len(flatten_ids)]
    return [flatten_ids[a:b].tolist() for a, b in zip(offsets, ends, strict=True)]


def needed_tiles(means: torch.Tensor, chol: torch.Tensor, height: int, width: int) -> list[set[int]]:
    """Per tile, the splats whose weight (float64, dense) reaches 1/255 at one of its pixels."""
    ia, ib, ic, valid = inverse_covariance(chol.double())
    ys = torch.arange(height, dtype=torch.float64) + 0.5
    xs = torch.arange(width, dtype=torch.float64) + 0.5
    dx = xs[None, None, :] - means[:, 0, None, None].double()
    dy = ys[None, :, None] - means[:, 1, None, None].double()
    ia, ib, ic = ia[:, None, None], ib[:, None, None], ic[:, None, None]
    power = -0.5 * (ia * dx * dx + 2 * ib * dx * dy + ic * dy * dy)
    touches = (torch.exp(power) >= WEIGHT_MIN) & valid[:, None, None]  # [N, H, W]
    tiles_x = math.ceil(width / TILE)
    needed: list[set[int]] = [set() for _ in range(math.ceil(height / TILE) * tiles_x)]
    for s, y, x in touches.nonzero().tolist():
        needed[(y // TILE) * tiles_x + x // TILE].add(s)
    return needed


def fitted_like(height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Small dense splats over a real photo's detail, as a fit places them."""
    image = kodak_crop(200, 100, width, height)
    g = torch.Generator().manual_seed(31)
    detail = (image[:, 1:, 1:] - image[:, :-1, :-1]).abs().sum(0).flatten() + 0.05
    idx = torch.multinomial(detail / detail.sum(), 400, replacement=True, generator=g)
    pixel = torch.stack([(idx % (width - 1)).float(), (idx // (width - 1)).float()], 1)
    means = pixel + torch.rand(400, 2, generator=g)
    sigma = 0.6 + 2.5 * torch.rand(400, generator=g)
    shear = 0.4 * sigma * torch.randn(400, generator=g)
    chol = torch.stack([sigma, shear, sigma * (0.5 + torch.rand(400, generator=g))], 1)
    return means, chol


def edge_cases() -> tuple[torch.Tensor, torch.Tensor]:
    """On a tile corner, thin and tilted across one, centred off the frame, wholly off it, degenerate."""
    means = torch.tensor([[16.0, 16.0], [15.99, 16.01], [-20.0, 5.0], [40.0, 40.0], [3.0, 30.0]])
    chol = torch.tensor([[2.0, 0.0, 2.0], [4.0, 3.0, 0.5], [6.0, 0.0, 6.0], [1.0, 0.0, 1.0], [0.0, 1.0, 2.0]])
    return means, chol


CASES = {
    "random": lambda: (*random_splats(500, 53, 70, seed=41, max_sigma=9.0)[:2], 53, 70),
    "fitted": lambda: (*fitted_like(64, 96), 64, 96),
    "edge-cases": lambda: (*edge_cases(), 33, 35),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_tile_binning_lies_between_the_dense_need_and_gsplats_bound(case):
    means, chol, height, width = CASES[case]()
    ours = our_tiles(means, chol, height, width)
    theirs = gsplat_tiles(means, chol, height, width)
    needed = needed_tiles(means, chol, height, width)
    assert len(ours) == len(theirs) == len(needed) == math.ceil(height / TILE) * math.ceil(width / TILE)
    for tile, (mine, bound, need) in enumerate(zip(ours, theirs, needed, strict=True)):
        assert need <= set(mine), f"tile {tile} misses splats {sorted(need - set(mine))}"
        extra = sorted(set(mine) - set(bound))
        assert not extra, f"tile {tile} has splats {extra} beyond gsplat's bound"
        # Same order as gsplat's depth sort: splat index order, whatever the thread count.
        assert mine == [s for s in bound if s in set(mine)], f"tile {tile} out of order"
    pairs = sum(map(len, ours))
    # Not vacuous: real work is binned, and the upper bound is not everything.
    assert sum(map(len, needed)) >= 0.5 * pairs > 0
    assert sum(map(len, theirs)) < len(means) * len(ours)
