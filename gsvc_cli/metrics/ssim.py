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
    """Separable Gaussian 'valid' filtering of [..., H, W] -> [..., H-10, W-10] (autograd-safe).

    Written as 11 shifted multiply-adds per direction: on CPU this is several times faster than
    torch's grouped (depthwise) conv2d, and exactly deterministic.
    """
    g = [float(v) for v in _gaussian_1d()]
    width = x.shape[-1] - (WINDOW - 1)
    rows = x[..., 0:width] * g[0]
    for k in range(1, WINDOW):
        rows = rows + x[..., k : k + width] * g[k]
    height = rows.shape[-2] - (WINDOW - 1)
    out = rows[..., 0:height, :] * g[0]
    for k in range(1, WINDOW):
        out = out + rows[..., k : k + height, :] * g[k]
    return out


def _ssim_cs_autograd(x: torch.Tensor, y: torch.Tensor, data_range: float
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """_ssim_cs on whole tensors without in-place ops, for inputs that need gradients."""
    c1 = (K1 * data_range) ** 2
    c2 = (K2 * data_range) ** 2
    c = x.shape[1]
    stats = _filter_valid(torch.cat((x, y, x * x + y * y, x * y), dim=1))
    mu_x, mu_y, sq, xy = stats.split(c, dim=1)
    mu_xy = mu_x * mu_y
    mu_sq = mu_x * mu_x + mu_y * mu_y
    cs_map = (2.0 * (xy - mu_xy) + c2) / (sq - mu_sq + c2)
    lum_map = (2.0 * mu_xy + c1) / (mu_sq + c1)
    return (lum_map * cs_map).mean(dim=(2, 3)), cs_map.mean(dim=(2, 3))


# Strip height (output rows) so that one strip holds about this many pixels per channel: the
# strip's ~10 intermediate maps then stay in cache instead of streaming whole frames through RAM.
_STRIP_PIXELS = 32 * 1920


@torch.no_grad()
def _ssim_cs(x: torch.Tensor, y: torch.Tensor, data_range: float, with_ssim: bool = True
             ) -> tuple[torch.Tensor | None, torch.Tensor]:
    """Per-image-channel means of the SSIM map and of the contrast-structure map: two [N, C]
    tensors (the first None when not `with_ssim`). x, y: [N, C, H, W] float32.

    Works in horizontal strips of output rows, each with its 10-row margin. Per strip the four
    statistics x, y, x^2 + y^2 and xy are filtered together (two 11-tap passes of in-place
    multiply-adds), then reduced to the strip's sums; sums accumulate in float64.
    """
    if x.requires_grad or y.requires_grad:
        with torch.enable_grad():
            return _ssim_cs_autograd(x, y, data_range)
    c1 = (K1 * data_range) ** 2
    c2 = (K2 * data_range) ** 2
    g = [float(v) for v in _gaussian_1d()]
    n, c, height, width = x.shape
    x = x.reshape(n * c, height, width)
    y = y.reshape(n * c, height, width)
    out_h, out_w = height - (WINDOW - 1), width - (WINDOW - 1)
    rows = max(8, min(out_h, _STRIP_PIXELS // width))
    channels = n * c
    stats = torch.empty(4, channels, rows + WINDOW - 1, width)
    across = torch.empty(4, channels, rows + WINDOW - 1, out_w)  # after the horizontal pass
    filtered = torch.empty(4, channels, rows, out_w)
    mu_xy = torch.empty(channels, rows, out_w)
    mu_sq = torch.empty(channels, rows, out_w)
    ssim_sum = torch.zeros(channels, dtype=torch.float64)
    cs_sum = torch.zeros(channels, dtype=torch.float64)
    for top in range(0, out_h, rows):
        m = min(rows, out_h - top)
        s = stats[:, :, : m + WINDOW - 1]
        s[0].copy_(x[:, top : top + m + WINDOW - 1])
        s[1].copy_(y[:, top : top + m + WINDOW - 1])
        torch.mul(s[0], s[0], out=s[2]).addcmul_(s[1], s[1])
        torch.mul(s[0], s[1], out=s[3])
        h = across[:, :, : m + WINDOW - 1]
        torch.mul(s[..., 0:out_w], g[0], out=h)
        for k in range(1, WINDOW):
            h.add_(s[..., k : k + out_w], alpha=g[k])
        f = filtered[:, :, :m]
        torch.mul(h[:, :, 0:m], g[0], out=f)
        for k in range(1, WINDOW):
            f.add_(h[:, :, k : k + m], alpha=g[k])
        mu_x, mu_y, sq, xy = f
        mxy = torch.mul(mu_x, mu_y, out=mu_xy[:, :m])
        msq = torch.mul(mu_x, mu_x, out=mu_sq[:, :m]).addcmul_(mu_y, mu_y)
        # cs = (2 (E[xy] - mu_x mu_y) + c2) / (E[x^2 + y^2] - mu_x^2 - mu_y^2 + c2)
        cs = xy.sub_(mxy).mul_(2.0).add_(c2).div_(sq.sub_(msq).add_(c2))
        cs_sum += cs.sum(dim=(1, 2))
        if with_ssim:
            # luminance = (2 mu_x mu_y + c1) / (mu_x^2 + mu_y^2 + c1)
            lum = mxy.mul_(2.0).add_(c1).div_(msq.add_(c1))
            ssim_sum += lum.mul_(cs).sum(dim=(1, 2))
    count = float(out_h * out_w)
    ssim_mean = (ssim_sum / count).float().reshape(n, c) if with_ssim else None
    return ssim_mean, (cs_sum / count).float().reshape(n, c)


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
    pairs = x[..., 0::2, :] + x[..., 1::2, :]  # strided adds: ~2x faster than avg_pool2d on CPU
    return (pairs[..., 0::2] + pairs[..., 1::2]).mul_(0.25)


def _ms_ssim(x: torch.Tensor, y: torch.Tensor, data_range: float, with_ssim: bool
             ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(MS-SSIM, single-scale SSIM or None) per image channel, both [N, C]."""
    _check(x, y)
    x, y = _as_batch(x).float(), _as_batch(y).float()
    scales = ms_ssim_scales(x.shape[-2], x.shape[-1])
    weights = torch.tensor(MS_SSIM_WEIGHTS[:scales], dtype=torch.float64)
    weights = weights / weights.sum()
    factors = []
    first_ssim = None
    for level in range(scales):
        last = level == scales - 1
        s, cs = _ssim_cs(x, y, data_range, with_ssim=last or (with_ssim and level == 0))
        if level == 0:
            first_ssim = s
        factors.append((s if last else cs).double().clamp_min(0.0) ** float(weights[level]))
        if not last:
            x, y = _downsample(x), _downsample(y)
    return torch.stack(factors).prod(dim=0).float(), first_ssim


def ms_ssim_with_ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """(MS-SSIM, single-scale SSIM) per image channel, both [N, C]; one pass shares scale 1."""
    result, first_ssim = _ms_ssim(x, y, data_range, with_ssim=True)
    assert first_ssim is not None
    return result, first_ssim


def ms_ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """MS-SSIM per image channel. x, y: [C, H, W] or [N, C, H, W] -> [N, C]; [H, W] -> scalar."""
    result, _ = _ms_ssim(x, y, data_range, with_ssim=False)
    return result.squeeze() if x.dim() == 2 else result


def block_ssim(x: torch.Tensor, y: torch.Tensor, peak: float = 255.0) -> float:
    """Mean SSIM of two [H, W] planes of code values over 8x8 windows stepping 4 pixels.

    Statistics come from 4x4 block sums; each window joins 2x2 neighbouring blocks. Constants
    are (0.01 peak)^2 and (0.03 peak)^2 on per-pixel moments, with the n-1 variance estimate.
    Integer planes of up to 8 bits (e.g. uint8 tensors) take a float32 path that is still exact:
    products and 4x4 block sums stay below 2^24. Anything else is summed in float64.
    """
    if x.shape != y.shape or x.dim() != 2:
        raise ValueError(f"block_ssim: need two equal [H, W] planes, got {tuple(x.shape)}, {tuple(y.shape)}")
    bh, bw = x.shape[0] // 4, x.shape[1] // 4
    if bh < 2 or bw < 2:
        raise ValueError(f"block_ssim: plane {tuple(x.shape)} is smaller than one 8x8 window")
    exact32 = not x.is_floating_point() and not y.is_floating_point() and peak <= 255
    dtype = torch.float32 if exact32 else torch.float64
    x = x[: bh * 4, : bw * 4].to(dtype)
    y = y[: bh * 4, : bw * 4].to(dtype)

    def block_sums(t: torch.Tensor) -> torch.Tensor:  # rows of 4 first: contiguous, fast reductions
        return t.reshape(bh, 4, bw * 4).sum(dim=1).reshape(bh, bw, 4).sum(dim=2).double()

    def window_sums(t: torch.Tensor) -> torch.Tensor:
        return t[:-1, :-1] + t[1:, :-1] + t[:-1, 1:] + t[1:, 1:]

    s1 = window_sums(block_sums(x))
    s2 = window_sums(block_sums(y))
    ss = window_sums(block_sums(torch.addcmul(x * x, y, y)))
    s12 = window_sums(block_sums(x * y))
    n = 64.0
    # The constants scaled to window sums as ffmpeg's ssim filter (x264's) scales them: c1 by n,
    # c2 by n (n - 1). c1 * n * n (as before) gave SSIM-Y 0.005-0.008 off ffmpeg's per frame.
    c1 = (K1 * peak) ** 2 * n
    c2 = (K2 * peak) ** 2 * n * (n - 1.0)
    variances = ss * n - s1 * s1 - s2 * s2
    covariance = s12 * n - s1 * s2
    num = (2.0 * s1 * s2 + c1) * (2.0 * covariance + c2)
    den = (s1 * s1 + s2 * s2 + c1) * (variances + c2)
    return float((num / den).mean())
