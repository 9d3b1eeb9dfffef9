"""Frame: one decoded picture as numpy planes, plus float tensor views for fitting and metrics.

Importing this module does not import torch: the decoder writes frames without it. The float views
and conversions import torch (and gsvc_cli.video.colour) when called, except the common
`from_yuv444_float` into 8/10-bit YUV, which runs on the C kernels (gsvc_cli.render.capi).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from gsvc_cli.video.info import VideoInfo
from gsvc_cli.video.pixfmt import PixFmt, get_pix_fmt

if TYPE_CHECKING:
    import torch

log = logging.getLogger("gsvc_cli.video")


@dataclass
class Frame:
    """One picture.

    planes: for YUV formats (Y [H, W], U [h, w], V [h, w]) at native resolution, for gray (Y,),
    for rgb24 a single [H, W, 3] array; dtype uint8 (8-bit) or uint16 (10-bit codes).
    pix_fmt: ffmpeg name; color_matrix/color_range as in VideoInfo. index: 0-based frame number.
    """

    planes: tuple[np.ndarray, ...]
    pix_fmt: str
    color_matrix: str = "bt601"
    color_range: str = "limited"
    index: int = 0

    @property
    def fmt(self) -> PixFmt:
        return get_pix_fmt(self.pix_fmt)

    @property
    def height(self) -> int:
        return int(self.planes[0].shape[0])

    @property
    def width(self) -> int:
        return int(self.planes[0].shape[1])

    @property
    def y(self) -> np.ndarray:
        return self.planes[0]

    @property
    def u(self) -> np.ndarray:
        return self.planes[1]

    @property
    def v(self) -> np.ndarray:
        return self.planes[2]

    @property
    def rgb(self) -> np.ndarray:
        return self.planes[0]

    def tobytes(self) -> bytes:
        """Planar raw bytes, as in a .yuv file or a Y4M frame payload (little-endian for 10-bit)."""
        return b"".join(p.tobytes() for p in self.raw_planes())

    def raw_planes(self) -> list[np.ndarray]:
        """The planes as contiguous arrays of the file's sample type: `tobytes()` without joining
        them, for writers that hand each to the file as it is (one copy less per frame)."""
        return [np.ascontiguousarray(p, dtype=self.fmt.dtype) for p in self.planes]

    def plane_tensors(self) -> list[torch.Tensor]:
        """Each plane as float32 code values (0..peak), native resolution; rgb24 gives [3, H, W]."""
        import torch

        if self.fmt.rgb:
            return [torch.from_numpy(np.ascontiguousarray(self.planes[0])).permute(2, 0, 1).float()]
        return [torch.from_numpy(p.astype(np.float32, copy=False)) for p in self.planes]

    def to_yuv444_float(self, chroma: str = "bilinear", match_steps: int = 0) -> torch.Tensor:
        """[3, H, W] float32 YUV in [0, 1] as code value / peak, chroma upsampled to full size
        (colour.upsample_chroma's `chroma` mode and match_steps).

        Range is not expanded: a tv-range Y of 16 stays 16/255. rgb24 frames are converted with
        the frame's matrix and range. Gray frames get neutral chroma.
        """
        import torch

        from gsvc_cli.video.colour import rgb_to_yuv, upsample_chroma

        fmt = self.fmt
        peak = float(fmt.peak)
        if fmt.rgb:
            return rgb_to_yuv(self.to_rgb_float(), self.color_matrix, self.color_range, 8)
        planes = self.plane_tensors()
        y = planes[0] / peak
        if fmt.planes == 1:
            neutral = float(1 << (fmt.bits - 1)) / peak
            return torch.stack((y, torch.full_like(y, neutral), torch.full_like(y, neutral)))
        h, w = self.height, self.width
        u = upsample_chroma(planes[1] / peak, fmt.shift_x, fmt.shift_y, h, w, chroma, match_steps)
        v = upsample_chroma(planes[2] / peak, fmt.shift_x, fmt.shift_y, h, w, chroma, match_steps)
        return torch.stack((y, u, v))

    def to_rgb_float(self, chroma: str = "bilinear") -> torch.Tensor:
        """[3, H, W] float32 RGB in [0, 1] using the frame's colour matrix and range."""
        from gsvc_cli.video.colour import yuv_to_rgb

        fmt = self.fmt
        if fmt.rgb:
            return self.plane_tensors()[0] / 255.0
        return yuv_to_rgb(self.to_yuv444_float(chroma), self.color_matrix, self.color_range, fmt.bits)

    @classmethod
    def from_yuv444_float(cls, yuv: torch.Tensor | np.ndarray, info: VideoInfo, index: int = 0) -> Frame:
        """Inverse of to_yuv444_float: [3, H, W] normalised YUV -> a frame in info.pix_fmt.

        Chroma is box-downsampled for 4:2:0/4:2:2; values are clamped and rounded to codes (half to
        even). YUV formats go through the C kernels (one pass, no torch) whether `yuv` is a numpy
        array or a tensor, so the encoder's reconstruction and the decoder's output are made by the
        same code; the torch path below is the fallback (and rgb24/gray) and gives the same codes.
        """
        fmt = info.fmt
        if fmt.rgb:
            from gsvc_cli.video.colour import yuv_to_rgb

            rgb = yuv_to_rgb(_as_tensor(yuv).detach().float(), info.color_matrix, info.color_range, 8)
            return cls.from_rgb_float(rgb, info, index)
        planes = _codes_native(yuv, fmt) if fmt.planes == 3 else None
        if planes is None:
            planes = _codes_torch(_as_tensor(yuv), fmt)
        return cls(planes, info.pix_fmt, info.color_matrix, info.color_range, index)

    @classmethod
    def from_rgb_float(cls, rgb: torch.Tensor, info: VideoInfo, index: int = 0) -> Frame:
        """[3, H, W] RGB in [0, 1] -> a frame in info.pix_fmt (matrix/range from info)."""
        import torch

        from gsvc_cli.video.colour import rgb_to_yuv

        fmt = info.fmt
        rgb = rgb.detach().to(torch.float32).clamp(0.0, 1.0)
        if fmt.rgb:
            arr = (rgb * 255.0).round().permute(1, 2, 0).contiguous().numpy().astype(np.uint8)
            return cls((arr,), info.pix_fmt, info.color_matrix, info.color_range, index)
        yuv = rgb_to_yuv(rgb, info.color_matrix, info.color_range, fmt.bits)
        return cls.from_yuv444_float(yuv, info, index)

    def convert(self, info: VideoInfo) -> Frame:
        """This frame in info's pix_fmt/matrix/range (a no-op when they already match)."""
        if (self.pix_fmt, self.color_matrix, self.color_range) == (
            info.pix_fmt, info.color_matrix, info.color_range
        ):
            return self
        src, dst = self.fmt, info.fmt
        same_colour = (self.color_matrix, self.color_range) == (info.color_matrix, info.color_range)
        if not src.rgb and not dst.rgb and same_colour and src.planes == 3:
            yuv = self.to_yuv444_float()
            if src.bits != dst.bits:  # shift codes: 8-bit 235 <-> 10-bit 940
                yuv = yuv * (float(src.peak) * 2.0 ** (dst.bits - src.bits) / float(dst.peak))
            return Frame.from_yuv444_float(yuv, info, self.index)
        return Frame.from_rgb_float(self.to_rgb_float(), info, self.index)


_native_failed: list[str] = []


def _codes_native(yuv: torch.Tensor | np.ndarray, fmt: PixFmt) -> tuple[np.ndarray, ...] | None:
    """The code planes of `yuv` from the C kernels, or None when they cannot be built (logged once)."""
    from gsvc_cli.render.capi import yuv444_to_codes
    from gsvc_cli.render.capi_build import KernelBuildError

    if _native_failed:
        return None
    if not isinstance(yuv, np.ndarray):
        yuv = yuv.detach().to("cpu").float().numpy()
    try:
        return yuv444_to_codes(yuv, fmt.peak, fmt.shift_x, fmt.shift_y)
    except KernelBuildError as error:
        _native_failed.append(str(error))
        log.warning("%s; converting frames with torch instead", error)
        return None


def _codes_torch(yuv: torch.Tensor, fmt: PixFmt) -> tuple[np.ndarray, ...]:
    """The code planes of `yuv` [3, H, W] with torch: the fallback of `_codes_native`, same codes."""
    import torch

    from gsvc_cli.video.colour import downsample_chroma_pair

    # In place, in as few passes as possible: this runs once per decoded frame.
    yuv = yuv.detach().to(torch.float32).clamp(0.0, 1.0).mul_(float(fmt.peak))
    planes = [yuv[0]]
    if fmt.planes == 3:
        if fmt.shift_x or fmt.shift_y:  # both chroma planes in one pooling call
            planes.extend(downsample_chroma_pair(yuv[1:3], fmt.shift_x, fmt.shift_y).unbind(0))
        else:
            planes.extend((yuv[1], yuv[2]))
    # Values are already in [0, peak], so rounding keeps them there; torch converts to integers
    # faster than numpy's astype.
    codes = torch.uint8 if fmt.bits <= 8 else torch.int32
    dtype = np.uint8 if fmt.bits <= 8 else np.uint16
    return tuple(p.round().to(codes).numpy().astype(dtype, copy=False) for p in planes)


def _as_tensor(yuv: torch.Tensor | np.ndarray) -> torch.Tensor:
    import torch

    return torch.from_numpy(yuv) if isinstance(yuv, np.ndarray) else yuv
