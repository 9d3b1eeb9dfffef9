"""Colour conversions between normalised YUV code values and RGB, for a given matrix and range.

"Normalised YUV" here means code value / peak (255 or 1023), so [0, 1] maps exactly back to the
integer codes a file holds; the range (limited/full) and matrix (BT.601/709/2020) only matter when
converting to or from RGB. Chroma resampling for 4:2:0/4:2:2 lives here too (centre siting, as
in ffmpeg's default and the clips' C420jpeg).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# (Kr, Kb) luma coefficients.
_KR_KB = {"bt601": (0.299, 0.114), "bt709": (0.2126, 0.0722), "bt2020": (0.2627, 0.0593)}


def _range_scale(color_range: str, bits: int) -> tuple[float, float, float, float]:
    """(luma offset, luma span, chroma offset, chroma span) in code values."""
    peak = float((1 << bits) - 1)
    half = float(1 << (bits - 1))
    if color_range == "full":
        return 0.0, peak, half, peak
    scale = float(1 << (bits - 8))
    return 16.0 * scale, 219.0 * scale, half, 224.0 * scale


def _matrix(color_matrix: str, dtype: torch.dtype) -> torch.Tensor:
    """RGB <- Y'CbCr 3x3 matrix for analog-normalised Y' in [0,1], Cb/Cr in [-0.5, 0.5]."""
    kr, kb = _KR_KB[color_matrix]
    kg = 1.0 - kr - kb
    return torch.tensor(
        [
            [1.0, 0.0, 2.0 * (1.0 - kr)],
            [1.0, -2.0 * (1.0 - kb) * kb / kg, -2.0 * (1.0 - kr) * kr / kg],
            [1.0, 2.0 * (1.0 - kb), 0.0],
        ],
        dtype=dtype,
    )


def yuv_to_rgb(yuv: torch.Tensor, color_matrix: str, color_range: str, bits: int) -> torch.Tensor:
    """[3, H, W] normalised YUV code values -> [3, H, W] RGB in [0, 1] (clamped)."""
    peak = float((1 << bits) - 1)
    y_off, y_span, c_off, c_span = _range_scale(color_range, bits)
    codes = yuv * peak
    y = (codes[0] - y_off) / y_span
    cb = (codes[1] - c_off) / c_span
    cr = (codes[2] - c_off) / c_span
    m = _matrix(color_matrix, yuv.dtype)
    stacked = torch.stack((y, cb, cr))
    rgb = torch.einsum("ij,jhw->ihw", m, stacked)
    return rgb.clamp_(0.0, 1.0)


def rgb_to_yuv(rgb: torch.Tensor, color_matrix: str, color_range: str, bits: int) -> torch.Tensor:
    """[3, H, W] RGB in [0, 1] -> [3, H, W] normalised YUV code values (not rounded)."""
    peak = float((1 << bits) - 1)
    y_off, y_span, c_off, c_span = _range_scale(color_range, bits)
    m = torch.linalg.inv(_matrix(color_matrix, torch.float64)).to(rgb.dtype)
    ycc = torch.einsum("ij,jhw->ihw", m, rgb)
    y = (ycc[0] * y_span + y_off) / peak
    cb = (ycc[1] * c_span + c_off) / peak
    cr = (ycc[2] * c_span + c_off) / peak
    return torch.stack((y, cb, cr)).clamp_(0.0, 1.0)


def upsample_chroma(plane: torch.Tensor, shift_x: int, shift_y: int, height: int, width: int,
                    mode: str = "bilinear", match_steps: int = 0) -> torch.Tensor:
    """[h, w] subsampled chroma -> [height, width] (centre-sited bilinear, or nearest).

    match_steps: that many times, add the upsampling of what the box average of the result
    (downsample_chroma, as a decoded picture is written) misses of `plane`. The encoder's target:
    a bilinear plane box-averaged comes back blurred by [1, 6, 1] / 8 each way (mobile CIF's
    chroma 42.9 dB from its source; one step 51.4 dB, two 57.8), and so does a fit to it, however
    exact. The result may leave [0, 1] by a little.
    """
    if shift_x == 0 and shift_y == 0:
        return plane
    if mode not in ("bilinear", "nearest"):
        raise ValueError(f"unknown chroma upsampling {mode!r}")
    factor = (1 << shift_y, 1 << shift_x)
    x = plane[None, None]
    if mode == "nearest":
        up = x.repeat_interleave(factor[0], dim=2).repeat_interleave(factor[1], dim=3)
    else:
        up = F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)
    up = up[0, 0, :height, :width]
    for _ in range(match_steps):
        missed = plane - downsample_chroma(up, shift_x, shift_y)
        up = up + upsample_chroma(missed, shift_x, shift_y, height, width, mode)
    return up


def downsample_chroma_pair(planes: torch.Tensor, shift_x: int, shift_y: int) -> torch.Tensor:
    """[2, H, W] -> [2, ceil(H/2^sy), ceil(W/2^sx)]: `downsample_chroma` of both planes at once."""
    fy, fx = 1 << shift_y, 1 << shift_x
    _, h, w = planes.shape
    pad_h, pad_w = (-h) % fy, (-w) % fx
    x = planes[None]
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
    return F.avg_pool2d(x, kernel_size=(fy, fx), stride=(fy, fx))[0]


def downsample_chroma(plane: torch.Tensor, shift_x: int, shift_y: int) -> torch.Tensor:
    """[H, W] full-resolution chroma -> box-averaged [ceil(H/2^sy), ceil(W/2^sx)] (edges replicated)."""
    if shift_x == 0 and shift_y == 0:
        return plane
    fy, fx = 1 << shift_y, 1 << shift_x
    h, w = plane.shape
    pad_h, pad_w = (-h) % fy, (-w) % fx
    x = plane[None, None]
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
    return F.avg_pool2d(x, kernel_size=(fy, fx), stride=(fy, fx))[0, 0]
