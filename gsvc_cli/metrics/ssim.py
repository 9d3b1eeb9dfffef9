"""SSIM and MS-SSIM in torch (Wang et al. 2004; Wang, Simoncelli & Bovik 2003).

Definition used: 11x11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03, statistics over 'valid'
windows only (no padding). MS-SSIM takes 5 scales with weights 0.0448, 0.2856, 0.3001, 0.2363,
0.1333: contrast-structure at scales 1-4, full SSIM (luminance too) at scale 5, with a 2x2 average
and decimation between scales (odd sizes replicate the last row/column). Images too small for
5 scales (the coarsest must be at least 11 pixels) use as many scales as fit, with the weights
renormalised to sum to 1; `ms_ssim_scales` says how many.

`block_ssim` is the other common single-scale SSIM, the one x264 and ffmpeg's `ssim` filter
report: 8x8 windows on a 4-pixel grid, uniform weights, sample (n-1) variances. gsvc's `ssim_y`
uses it so the figure is directly comparable with `ffmpeg -lavfi ssim`.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
WINDOW = 11
SIGMA = 1.5
K1, K2 = 0.01, 0.03


@functools.cache
def _gaussian_1d(size: int = WINDOW, sigma: float = SIGMA) -> torch.Tensor:
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2.0
    g = torch.exp(-(coords**2) / (2.0 * sigma * sigma))
    return (g / g.sum()).float()


def _filter_valid(x: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian 'valid' filtering of [N, C, H, W] -> [N, C, H-10, W-10].

    Written as 11 shifted multiply-adds per direction: on CPU this is several times faster than
    torch's grouped (depthwise) conv2d, and exactly deterministic.
    """
    g = [float(v) for v in _gaussian_1d()]
    width = x.shape[-1] - (WINDOW - 1)
    rows = x[..., 0:width] * g[0]
    for k in range(1, WINDOW):
        rows.add_(x[..., k : k + width], alpha=g[k])
    height = rows.shape[-2] - (WINDOW - 1)
    out = rows[..., 0:height, :] * g[0]
    for k in range(1, WINDOW):
        out.add_(rows[..., k : k + height, :], alpha=g[k])
    return out


def _ssim_cs(x: torch.Tensor, y: torch.Tensor, data_range: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image-channel means of the SSIM map and the contrast-structure map: two [N, C] tensors."""
    c1 = (K1 * data_range) ** 2
    c2 = (K2 * data_range) ** 2
    n, c = x.shape[:2]
    stats = _filter_valid(torch.cat((x, y, x * x, y * y, x * y), dim=1))
    mu_x, mu_y, xx, yy, xy = stats.split(c, dim=1)
    mu_xx, mu_yy, mu_xy = mu_x * mu_x, mu_y * mu_y, mu_x * mu_y
    sigma_x = xx - mu_xx
    sigma_y = yy - mu_yy
    sigma_xy = xy - mu_xy
    cs_map = (2.0 * sigma_xy + c2) / (sigma_x + sigma_y + c2)
    lum_map = (2.0 * mu_xy + c1) / (mu_xx + mu_yy + c1)
    return (lum_map * cs_map).mean(dim=(2, 3)), cs_map.mean(dim=(2, 3))


def _as_batch(x: torch.Tensor) -> torch.Tensor:
    if x.dim() == 2:
        return x[None, None]
    if x.dim() == 3:
        return x[None]
    return x


def _check(x: torch.Tensor, y: torch.Tensor) -> None:
    if x.shape != y.shape:
        raise ValueError(f"ssim: shapes differ {tuple(x.shape)} vs {tuple(y.shape)}")
    if min(x.shape[-2:]) < WINDOW:
        raise ValueError(f"ssim: image {tuple(x.shape[-2:])} is smaller than the {WINDOW}x{WINDOW} window")


def ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Mean SSIM per image channel. x, y: [H, W], [C, H, W] or [N, C, H, W]; returns [N, C]
    (or a scalar for [H, W]). data_range: peak value (1 for [0, 1] floats, 255 for 8-bit codes)."""
    _check(x, y)
    s, _ = _ssim_cs(_as_batch(x).float(), _as_batch(y).float(), data_range)
    return s.squeeze() if x.dim() == 2 else s


def ms_ssim_scales(height: int, width: int) -> int:
    """How many of the 5 scales fit an image of height x width (coarsest side >= 11 pixels)."""
    scales = 0
    h, w = height, width
    while scales < len(MS_SSIM_WEIGHTS) and min(h, w) >= WINDOW:
        scales += 1
        h, w = (h + 1) // 2, (w + 1) // 2
    return scales


def _downsample(x: torch.Tensor) -> torch.Tensor:
    """2x2 average then keep one pixel in two (odd sizes: replicate the last row/column)."""
    pad_h, pad_w = x.shape[-2] % 2, x.shape[-1] % 2
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
    return F.avg_pool2d(x, 2)


def ms_ssim_with_ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """(MS-SSIM, single-scale SSIM) per image channel, both [N, C]; one pass shares scale 1."""
    _check(x, y)
    x, y = _as_batch(x).float(), _as_batch(y).float()
    scales = ms_ssim_scales(x.shape[-2], x.shape[-1])
    weights = torch.tensor(MS_SSIM_WEIGHTS[:scales], dtype=torch.float64)
    weights = weights / weights.sum()
    factors = []
    first_ssim = None
    for level in range(scales):
        s, cs = _ssim_cs(x, y, data_range)
        if level == 0:
            first_ssim = s
        last = level == scales - 1
        factors.append((s if last else cs).double().clamp_min(0.0) ** float(weights[level]))
        if not last:
            x, y = _downsample(x), _downsample(y)
    result = torch.stack(factors).prod(dim=0).float()
    assert first_ssim is not None
    return result, first_ssim


def ms_ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """MS-SSIM per image channel. x, y: [C, H, W] or [N, C, H, W] -> [N, C]; [H, W] -> scalar."""
    result, _ = ms_ssim_with_ssim(x, y, data_range)
    return result.squeeze() if x.dim() == 2 else result


def block_ssim(x: torch.Tensor, y: torch.Tensor, peak: float = 255.0) -> float:
    """Mean SSIM of two [H, W] planes of code values over 8x8 windows stepping 4 pixels.

    Statistics come from 4x4 block sums; each window joins 2x2 neighbouring blocks. Constants
    are (0.01 peak)^2 and (0.03 peak)^2 on per-pixel moments, with the n-1 variance estimate.
    """
    if x.shape != y.shape or x.dim() != 2:
        raise ValueError(f"block_ssim: need two equal [H, W] planes, got {tuple(x.shape)}, {tuple(y.shape)}")
    bh, bw = x.shape[0] // 4, x.shape[1] // 4
    if bh < 2 or bw < 2:
        raise ValueError(f"block_ssim: plane {tuple(x.shape)} is smaller than one 8x8 window")
    x = x[: bh * 4, : bw * 4].double()
    y = y[: bh * 4, : bw * 4].double()

    def block_sums(t: torch.Tensor) -> torch.Tensor:
        return t.reshape(bh, 4, bw, 4).sum(dim=(1, 3))

    def window_sums(t: torch.Tensor) -> torch.Tensor:
        return t[:-1, :-1] + t[1:, :-1] + t[:-1, 1:] + t[1:, 1:]

    s1 = window_sums(block_sums(x))
    s2 = window_sums(block_sums(y))
    ss = window_sums(block_sums(x * x + y * y))
    s12 = window_sums(block_sums(x * y))
    n = 64.0
    c1 = (K1 * peak) ** 2 * n * n
    c2 = (K2 * peak) ** 2 * n * (n - 1.0)
    variances = ss * n - s1 * s1 - s2 * s2
    covariance = s12 * n - s1 * s2
    num = (2.0 * s1 * s2 + c1) * (2.0 * covariance + c2)
    den = (s1 * s1 + s2 * s2 + c1) * (variances + c2)
    return float((num / den).mean())
