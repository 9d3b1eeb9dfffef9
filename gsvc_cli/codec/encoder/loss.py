"""The fitting space's distortion: channel-weighted MSE of [3,H,W] images in [0,1] and its PSNR.

The encoder fits YUV 4:4:4 with the codec's 6:1:1 weights (gop.CHANNEL_WEIGHTS); every decision
it takes (fitting, pruning, scene cuts, rate control) measures distortion with these functions.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from gsvc_cli.metrics.psnr import mse_to_psnr


def loss_weights(channel_weights: Sequence[float] | torch.Tensor | None,
                 device: torch.device | str) -> torch.Tensor:
    """Loss weights of the 3 channels as a [3] float32 tensor summing to 1 (equal when None)."""
    if channel_weights is None:
        return torch.full((3,), 1 / 3, device=device)
    w = torch.as_tensor(channel_weights, dtype=torch.float32, device=device).reshape(3)
    if bool((w < 0).any()) or not bool(w.sum() > 0):
        raise ValueError(f"channel weights must be non-negative and not all zero, got {w.tolist()}")
    return w / w.sum()


def weighted_mse(a: torch.Tensor, b: torch.Tensor, channel_weights: torch.Tensor) -> torch.Tensor:
    """Per-channel mean squared error of [3,H,W] images, combined with weights summing to 1."""
    return (((a - b) ** 2).mean(dim=(1, 2)) * channel_weights).sum()


@torch.no_grad()
def weighted_psnr(image_a: torch.Tensor, image_b: torch.Tensor,
                  channel_weights: Sequence[float] | torch.Tensor | None = None) -> float:
    """PSNR in dB between two [3,H,W] images in [0,1] (peak 1), channels weighted (default equal);
    capped as every PSNR of the project (metrics.psnr.PSNR_CAP)."""
    w = loss_weights(channel_weights, image_a.device)
    return mse_to_psnr(float(weighted_mse(image_a.float(), image_b.float(), w)), 1.0)
