"""The torch reference renderer: plain tensor code, any device, no native code.

It is the oracle the native kernels are tested against, so it favours clarity over speed
(it processes splats in chunks to bound memory, nothing more).
"""

from __future__ import annotations

import torch

# Conventions shared with ext/include (keep in sync).
WEIGHT_MAX = 0.999
WEIGHT_MIN = 1.0 / 255.0


def render_reference(means: torch.Tensor, chol: torch.Tensor, colors: torch.Tensor, height: int,
                     width: int, chunk: int = 256) -> torch.Tensor:
    """Dense render: every splat against every pixel. Shapes as in `gsvc_cli.render.render`."""
    device, dtype = means.device, means.dtype
    ys = torch.arange(height, device=device, dtype=dtype) + 0.5
    xs = torch.arange(width, device=device, dtype=dtype) + 0.5
    image = torch.zeros(3, height * width, device=device, dtype=dtype)
    py, px = torch.meshgrid(ys, xs, indexing="ij")
    px, py = px.reshape(1, -1), py.reshape(1, -1)
    for start in range(0, means.shape[0], chunk):
        m = means[start:start + chunk]
        l1, l2, l3 = chol[start:start + chunk].unbind(-1)
        # Sigma = [[a, b], [b, c]] with a = l1^2, b = l1 l2, c = l2^2 + l3^2.
        a = l1 * l1
        b = l1 * l2
        c = l2 * l2 + l3 * l3
        det = a * c - b * b
        ia, ib, ic = c / det, -b / det, a / det
        dx = px - m[:, :1]
        dy = py - m[:, 1:]
        power = -0.5 * (ia[:, None] * dx * dx + 2 * ib[:, None] * dx * dy + ic[:, None] * dy * dy)
        w = torch.exp(power).clamp(max=WEIGHT_MAX)
        w = torch.where(w >= WEIGHT_MIN, w, torch.zeros_like(w))
        image = image + colors[start:start + chunk].t() @ w
    return image.reshape(3, height, width)
