"""The torch reference renderer: plain tensor code, any device, no native code.

It is the oracle the native kernels are tested against, so it favours clarity over speed: every
splat is evaluated at every pixel (in chunks, to bound memory). It follows ext/include/gsvc_splat.h
formula for formula, except that it uses torch.exp where the kernels use their fast exp.
"""

from __future__ import annotations

import torch

# Conventions shared with ext/include/gsvc_splat.h (keep in sync).
WEIGHT_MAX = 0.999
WEIGHT_MIN = 1.0 / 255.0

# Elements of the [chunk, H*W] weight matrix processed at once (~64 MiB per float32 temporary).
_CHUNK_ELEMENTS = 1 << 24


def inverse_covariance(chol: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(ia, ib, ic, valid) with Sigma^-1 = [[ia, ib], [ib, ic]] for Sigma = L L^T, chol [N,3].

    Written as L^-T L^-1 with k = l2 / (l1 l3): ia = 1/l1^2 + k^2, ib = -k/l3, ic = 1/l3^2, which
    avoids the cancellation of (a c - b^2). A factor with l1 or l3 zero is degenerate: valid is
    False and the splat is invisible (its entries are replaced by a harmless identity).
    """
    l1, l2, l3 = chol.unbind(-1)
    with torch.no_grad():
        valid = torch.isfinite(1.0 / l1) & torch.isfinite(1.0 / l3) & (l1 != 0) & (l3 != 0)
        ok = torch.isfinite(l2 / l1 / l3) & valid
    l1 = torch.where(ok, l1, torch.ones_like(l1))
    l2 = torch.where(ok, l2, torch.zeros_like(l2))
    l3 = torch.where(ok, l3, torch.ones_like(l3))
    r1, r3 = 1.0 / l1, 1.0 / l3
    k = l2 * r1 * r3
    return r1 * r1 + k * k, -k * r3, r3 * r3, ok


def render_reference(means: torch.Tensor, chol: torch.Tensor, colors: torch.Tensor, height: int,
                     width: int) -> torch.Tensor:
    """Dense render of N splats into [3,H,W] (dtype of means): shapes as in `gsvc_cli.render.render`.

    w = exp(-0.5 d^T Sigma^-1 d) with d = pixel centre (x + 0.5, y + 0.5) - mean, capped at
    WEIGHT_MAX and set to 0 below WEIGHT_MIN; image = sum_i colors_i w_i.
    """
    device, dtype = means.device, means.dtype
    ys = torch.arange(height, device=device, dtype=dtype) + 0.5
    xs = torch.arange(width, device=device, dtype=dtype) + 0.5
    py, px = torch.meshgrid(ys, xs, indexing="ij")
    px, py = px.reshape(1, -1), py.reshape(1, -1)
    ia, ib, ic, valid = inverse_covariance(chol)
    image = torch.zeros(3, height * width, device=device, dtype=dtype)
    chunk = max(1, _CHUNK_ELEMENTS // max(1, height * width))
    for start in range(0, means.shape[0], chunk):
        part = slice(start, start + chunk)
        dx = px - means[part, :1]
        dy = py - means[part, 1:]
        power = -0.5 * (ia[part, None] * dx * dx + 2 * ib[part, None] * dx * dy + ic[part, None] * dy * dy)
        w = torch.exp(power).clamp(max=WEIGHT_MAX)
        keep = (w >= WEIGHT_MIN) & valid[part, None]
        w = torch.where(keep, w, torch.zeros_like(w))
        image = image + colors[part].t() @ w
    return image.reshape(3, height, width)
