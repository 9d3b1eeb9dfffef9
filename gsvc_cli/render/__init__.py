"""Splats -> image. One differentiable entry point; the backend is chosen per call.

Backends: "cpu" (our C++ kernels in ext/cpu, float32 CPU tensors), "cuda" (our CUDA kernels in
ext/cuda, for CUDA tensors) and "reference" (plain torch, any device and dtype: the oracle the
tests compare against). "auto" picks cuda for CUDA tensors, cpu for float32 CPU tensors when the
kernels build, and the reference otherwise (logging a warning if a native build failed). The
GSVC_RENDER_BACKEND environment variable replaces "auto" with a fixed choice.

Importing this package does not import torch (the torch-free decoder uses `gsvc_cli.render.capi`);
the functions here import it when called.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

from gsvc_cli.errors import GsvcError

if TYPE_CHECKING:
    import torch

BACKENDS = ("auto", "cpu", "cuda", "reference")
ENV_BACKEND = "GSVC_RENDER_BACKEND"

log = logging.getLogger("gsvc_cli.render")
_warned: set[str] = set()


class RenderError(GsvcError, ValueError):
    """Inputs the renderer cannot draw (wrong shapes, NaN/Inf) or a backend that is unavailable."""


def check_inputs(means: torch.Tensor, chol: torch.Tensor, colors: torch.Tensor, height: int,
                  width: int) -> None:
    import torch

    if not (isinstance(height, int) and isinstance(width, int)) or height < 1 or width < 1:
        raise RenderError(f"render: image size must be positive integers, got {height}x{width}")
    n = means.shape[0] if means.dim() == 2 else -1
    for name, tensor, cols in (("means", means, 2), ("chol", chol, 3), ("colors", colors, 3)):
        if tensor.dim() != 2 or tensor.shape[1] != cols or tensor.shape[0] != n:
            raise RenderError(f"render: {name} must have shape [N,{cols}] with N = {n}, "
                              f"got {list(tensor.shape)}")
        if not tensor.is_floating_point():
            raise RenderError(f"render: {name} must be floating point, got {tensor.dtype}")
        if tensor.device != means.device:
            raise RenderError(f"render: {name} is on {tensor.device} but means is on {means.device}")
        bad = ~torch.isfinite(tensor.detach()).all(dim=1)
        if bool(bad.any()):
            first = int(bad.nonzero()[0, 0])
            raise RenderError(f"render: {name} holds NaN or Inf ({int(bad.sum())} splats, first is "
                              f"splat {first})")


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        log.warning(message)


def resolve_backend(backend: str, device: torch.device, dtype: torch.dtype) -> str:
    """The concrete backend ("cpu", "cuda" or "reference") for a request and the inputs' device/dtype."""
    import torch

    choice = backend
    if choice == "auto":
        choice = os.environ.get(ENV_BACKEND, "").strip() or "auto"
    if choice not in BACKENDS:
        source = f"${ENV_BACKEND}" if backend == "auto" else "backend"
        raise RenderError(f"render: unknown {source} {choice!r}; choose one of {', '.join(BACKENDS)}")
    if choice == "auto":
        if device.type == "cuda":
            return "cuda" if _native_available("cuda") else "reference"
        if device.type == "cpu" and dtype == torch.float32 and _native_available("cpu"):
            return "cpu"
        return "reference"
    if choice == "cpu" and (device.type != "cpu" or dtype != torch.float32):
        raise RenderError(f"render: the cpu backend takes float32 CPU tensors, got {dtype} on {device}")
    if choice == "cuda" and device.type != "cuda":
        raise RenderError(f"render: the cuda backend takes CUDA tensors, got tensors on {device}")
    return choice


def _native_available(kind: str) -> bool:
    try:
        if kind == "cpu":
            from gsvc_cli.render.build import cpu_kernels

            cpu_kernels()
        else:
            from gsvc_cli.render.cuda import cuda_kernels

            cuda_kernels()
        return True
    except Exception as error:  # noqa: BLE001 - a failed build means falling back, with a warning
        _warn_once(f"native {kind} render kernels unavailable ({type(error).__name__}: "
                   f"{str(error).splitlines()[0] if str(error) else ''}); using the slow torch reference")
        return False


def render(means: torch.Tensor, chol: torch.Tensor, colors: torch.Tensor, height: int, width: int,
           backend: str = "auto") -> torch.Tensor:
    """Render N splats into a [3, H, W] image (not clamped), differentiable in all three inputs.

    means [N,2] pixels (x right, y down, pixel centres at +0.5); chol [N,3] = (l1, l2, l3) of
    L = [[l1,0],[l2,l3]], Sigma = L L^T, in pixels; colors [N,3] (any range; the image is their
    weighted sum). Returns the dtype of the inputs (float32 for the native backends).
    Raises RenderError (a ValueError) for bad shapes, NaN/Inf inputs or an unavailable backend.
    """
    check_inputs(means, chol, colors, height, width)
    chosen = resolve_backend(backend, means.device, means.dtype)
    if chosen == "cpu":
        from gsvc_cli.render.build import cpu_kernels
        from gsvc_cli.render.cpu import render_cpu

        try:
            cpu_kernels()
        except Exception as error:  # noqa: BLE001
            raise RenderError(f"render: the cpu backend failed to build ({type(error).__name__})") from error
        return render_cpu(means, chol.to(means.dtype), colors.to(means.dtype), height, width)
    if chosen == "cuda":
        from gsvc_cli.render.cuda import render_cuda

        return render_cuda(means, chol.to(means.dtype), colors.to(means.dtype), height, width)
    from gsvc_cli.render.reference import render_reference

    return render_reference(means, chol.to(means.dtype), colors.to(means.dtype), height, width)
