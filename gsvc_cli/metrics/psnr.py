"""PSNR on tensors and on frames (per plane Y/U/V, 6:1:1 weighted YUV, and RGB).

Per-plane PSNR uses the integer code values and the format's peak (255 or 1023), like ffmpeg's
`psnr` filter, so the figures are comparable with codec literature. Identical planes would give
an infinite PSNR; it is capped at PSNR_CAP dB so means and JSON stay finite.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from gsvc_cli.video.frame import Frame

PSNR_CAP = 100.0


def mse_to_psnr(mse: float, peak: float) -> float:
    """10 log10(peak^2 / mse), capped at PSNR_CAP dB (and for mse == 0)."""
    if mse <= 0.0:
        return PSNR_CAP
    return min(PSNR_CAP, 20.0 * math.log10(peak) - 10.0 * math.log10(mse))


def psnr(reference: torch.Tensor, distorted: torch.Tensor, peak: float = 1.0) -> float:
    """PSNR in dB of two same-shape tensors (any shape, e.g. [3, H, W] in [0, 1] with peak 1)."""
    if reference.shape != distorted.shape:
        raise ValueError(f"psnr: shapes differ {tuple(reference.shape)} vs {tuple(distorted.shape)}")
    a, b = reference.detach(), distorted.detach()
    if not (a.dtype == b.dtype and a.dtype in (torch.float32, torch.float64)):
        a, b = a.double(), b.double()
    diff = a - b  # float32 stays float32: torch's cascaded sums keep the mean accurate to ~1e-7
    return mse_to_psnr(float(diff.square_().mean()), peak)


def plane_mse(reference: np.ndarray, distorted: np.ndarray) -> float:
    """Exact mean squared error of two integer planes (code values).

    Squared differences are summed per row in int32 (SIMD; a row of 8-bit codes cannot reach
    2^31 below 33025 pixels), falling back to int64 rows for wider rows or deeper samples.
    """
    diff = np.subtract(reference, distorted, dtype=np.int32)
    rows = diff.reshape(diff.shape[0], -1) if diff.ndim > 1 else diff.reshape(1, -1)
    largest = int(np.iinfo(reference.dtype).max) ** 2 * rows.shape[1]
    if largest >= 2**31:
        rows = rows.astype(np.int64)
    total = int(np.einsum("ij,ij->i", rows, rows).sum(dtype=np.int64))
    return total / diff.size


def frame_psnr(reference: Frame, distorted: Frame, rgb: tuple[torch.Tensor, torch.Tensor] | None = None,
               with_rgb: bool = True) -> dict[str, float]:
    """PSNR of one frame pair: psnr_y/u/v (dB, code values), psnr_yuv = (6Y + U + V) / 8, psnr_rgb.

    Both frames must share pix_fmt and size. `rgb` may pass already-converted [3, H, W] RGB
    tensors in [0, 1] (the evaluation loop reuses them for MS-SSIM); psnr_rgb uses those floats
    unrounded with peak 1. with_rgb False leaves psnr_rgb out (two colour conversions of the frame:
    most of the time at 1080p, where the encoder's per-frame report needs the YUV figures alone).
    """
    fmt = reference.fmt
    out: dict[str, float] = {}
    if fmt.rgb:
        ref_yuv = reference.to_yuv444_float() * 255.0
        dist_yuv = distorted.to_yuv444_float() * 255.0
        mses = [float((ref_yuv[i].double() - dist_yuv[i].double()).square().mean()) for i in range(3)]
        peak = 255.0
    else:
        mses = [plane_mse(a, b) for a, b in zip(reference.planes, distorted.planes, strict=True)]
        peak = float(fmt.peak)
    names = ("psnr_y", "psnr_u", "psnr_v")
    for name, mse in zip(names, mses, strict=False):
        out[name] = mse_to_psnr(mse, peak)
    if len(mses) == 3:
        out["psnr_yuv"] = (6.0 * out["psnr_y"] + out["psnr_u"] + out["psnr_v"]) / 8.0
    if not with_rgb:
        return out
    if rgb is None:
        rgb = (reference.to_rgb_float(), distorted.to_rgb_float())
    out["psnr_rgb"] = psnr(rgb[0], rgb[1], 1.0)
    return out
