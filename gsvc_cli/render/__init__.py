"""Splats -> image. One differentiable entry point; the backend is chosen per call.

Backends: "cpu" (our C++ kernels in ext/), "cuda" (our CUDA kernels, for CUDA tensors) and
"reference" (plain torch, any device: the oracle the tests compare against).
"""

from __future__ import annotations

import torch

from gsvc_cli.render.reference import render_reference

BACKENDS = ("auto", "reference")


def render(means: torch.Tensor, chol: torch.Tensor, colors: torch.Tensor, height: int, width: int,
           backend: str = "auto") -> torch.Tensor:
    """Render N splats into a [3, H, W] float32 image (not clamped).

    means [N,2] pixels (x right, y down, pixel centres at +0.5); chol [N,3] = (l1, l2, l3) of
    L = [[l1,0],[l2,l3]], Sigma = L L^T; colors [N,3]. Differentiable in all three.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown render backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    return render_reference(means, chol, colors, height, width)
