"""The fitting space's distortion: channel-weighted MSE of [3,H,W] images in [0,1] and its PSNR.

The encoder fits YUV 4:4:4 with the codec's 6:1:1 weights (gop.CHANNEL_WEIGHTS); every decision
it takes (fitting, pruning, scene cuts, rate control) measures distortion with these functions.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch

from gsvc_cli.metrics.psnr import mse_to_psnr
from gsvc_cli.render import capi


def loss_weights(channel_weights: Sequence[float] | torch.Tensor | None,
                 device: torch.device | str) -> torch.Tensor:
    """Loss weights of the 3 channels as a [3] float32 tensor summing to 1 (equal when None)."""
    if channel_weights is None:
        return torch.full((3,), 1 / 3, device=device)
    w = torch.as_tensor(channel_weights, dtype=torch.float32, device=device).reshape(3)
    if bool((w < 0).any()) or not bool(w.sum() > 0):
        raise ValueError(f"channel weights must be non-negative and not all zero, got {w.tolist()}")
    return w / w.sum()


class _WeightedMSE(torch.autograd.Function):
    """sum_c w_c mean((a_c - b_c)^2), with the gradient in one pass over the frame.

    The fitting loop pays this on every step over full frames, and autograd's chain (pow, mean,
    expand, their backwards) cost about as much as the render at 1080p. The forward keeps the
    same reductions as the plain expression, and the gradient diff * 2(w_c / n) rounds exactly as
    autograd's (w_c / n) * (2 diff) does (doubling is exact), so fits are bit-identical to the plain
    expression's, only faster.
    """

    @staticmethod
    def forward(ctx, a: torch.Tensor, b: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        diff = a - b
        loss = (diff.square().mean(dim=tuple(range(1, diff.dim()))) * weights).sum()
        if ctx.needs_input_grad[0] or ctx.needs_input_grad[1]:
            ctx.save_for_backward(diff, weights)
        return loss

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None, None]:
        diff, weights = ctx.saved_tensors
        per_channel = (grad * weights) / diff[0].numel()
        grad_a = diff * (2 * per_channel).reshape(-1, *([1] * (diff.dim() - 1)))
        if not ctx.needs_input_grad[1]:
            return grad_a, None, None
        return (grad_a if ctx.needs_input_grad[0] else None), -grad_a, None


class _FitError(torch.autograd.Function):
    """The fitting loop's loss (as _WeightedMSE) and, beside it, the same MSE with the render clamped
    to [0, 1] (the picture the frame will decode to), from the native kernels: one pass over the
    frame for both sums, one for the gradient, no frame-sized temporaries. The gradient is the same
    float32 expression as _WeightedMSE's, value for value; the sums are in double in their own order,
    so the loss and the PSNR differ from torch's by rounding (they steer only the plateau test)."""

    @staticmethod
    def forward(ctx, a: torch.Tensor, b: torch.Tensor, weights: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        raw, clamped = capi.fit_error_sums(a.detach().numpy(), b.detach().numpy())
        n = a[0].numel()
        w = weights.tolist()
        ctx.save_for_backward(a, b, weights)
        loss = torch.tensor(sum(wc * s / n for wc, s in zip(w, raw.tolist(), strict=True)), dtype=a.dtype)
        coded = torch.tensor(sum(wc * s / n for wc, s in zip(w, clamped.tolist(), strict=True)),
                             dtype=torch.float64)
        ctx.mark_non_differentiable(coded)
        return loss, coded

    @staticmethod
    def backward(ctx, grad: torch.Tensor, _unused: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        a, b, weights = ctx.saved_tensors
        scales = 2 * ((grad * weights) / a[0].numel())  # rounded as _WeightedMSE's 2 * per_channel
        out = torch.empty_like(a)
        capi.fit_error_gradient(a.detach().numpy(), b.numpy(), scales.numpy(), out.numpy())
        return out, None, None


def fitting_loss(out: torch.Tensor, image: torch.Tensor, channel_weights: torch.Tensor
                 ) -> tuple[torch.Tensor, float]:
    """(weighted_mse(out, image), its value with `out` clamped to [0, 1] as a float): the fitting
    loop's loss and the MSE its PSNR reports, in two passes over the frame instead of eight on the
    CPU (fit_frame pays them every step; at 1080p they cost a third of a step)."""
    native = (out.device.type == "cpu" and out.dtype == torch.float32 and image.dtype == torch.float32
              and out.dim() == 3 and out.shape == image.shape and out.is_contiguous()
              and image.is_contiguous() and not image.requires_grad and _native_sums())
    if native:
        loss, coded = _FitError.apply(out, image, channel_weights.to(out.dtype))
        return loss, float(coded)
    loss = weighted_mse(out, image, channel_weights)
    with torch.no_grad():
        coded = float(weighted_mse(out.detach().clamp(0, 1), image, channel_weights))
    return loss, coded


def clamped_error_sums(rendered: torch.Tensor, image: torch.Tensor) -> list[float] | None:
    """Per channel, the sum of (clamp(rendered, 0, 1) - image)^2 over [C,H,W] float32 CPU
    tensors, from the native kernel (one pass, double sums); None where it cannot take them."""
    if not (rendered.device.type == "cpu" and image.device.type == "cpu" and rendered.dtype == torch.float32
            and image.dtype == torch.float32 and rendered.dim() == 3 and rendered.shape == image.shape
            and _native_sums()):
        return None
    _, clamped = capi.fit_error_sums(rendered.detach().numpy(), image.detach().numpy())
    return clamped.tolist()


@functools.cache
def _native_sums() -> bool:
    """Whether the C library (render.capi) loads; without it the torch expressions stand in."""
    try:
        capi.library()
    except capi.KernelBuildError:
        return False
    return True


def weighted_mse(a: torch.Tensor, b: torch.Tensor, channel_weights: torch.Tensor) -> torch.Tensor:
    """Per-channel mean squared error of [3,H,W] images, combined with weights summing to 1."""
    return _WeightedMSE.apply(a, b, channel_weights.to(a.dtype))


@torch.no_grad()
def weighted_psnr(image_a: torch.Tensor, image_b: torch.Tensor,
                  channel_weights: Sequence[float] | torch.Tensor | None = None) -> float:
    """PSNR in dB between two [3,H,W] images in [0,1] (peak 1), channels weighted (default equal);
    capped as every PSNR of the project (metrics.psnr.PSNR_CAP)."""
    w = loss_weights(channel_weights, image_a.device)
    return mse_to_psnr(float(weighted_mse(image_a.float(), image_b.float(), w)), 1.0)
