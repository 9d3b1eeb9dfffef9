"""Everything else PyAV (FFmpeg) decodes: MP4, MKV, WebM, H.264/HEVC streams, PNG and other images."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from gsvc_cli.errors import InputError, UsageError
from gsvc_cli.video.base import VideoReader
from gsvc_cli.video.frame import Frame
from gsvc_cli.video.info import UNSPECIFIED, VideoInfo, default_color_matrix
from gsvc_cli.video.pixfmt import PIX_FMTS

# FFmpeg AVColorSpace codes -> our matrix names (others fall back to the size default).
_COLORSPACE = {1: "bt709", 5: "bt601", 6: "bt601", 9: "bt2020", 10: "bt2020"}
_JPEG_ALIASES = {"yuvj420p": "yuv420p", "yuvj422p": "yuv422p", "yuvj444p": "yuv444p"}


def _target_pix_fmt(fmt: av.VideoFormat) -> str:
    """The supported pix_fmt a decoded format maps to (itself when supported)."""
    name = _JPEG_ALIASES.get(fmt.name, fmt.name)
    if name in PIX_FMTS:
        return name
    comps = fmt.components
    if fmt.is_rgb or fmt.has_palette or len(comps) in (2, 4) or fmt.is_bayer:
        return "rgb24"
    deep = comps[0].bits > 8
    if len(comps) == 1:
        return "gray10le" if deep else "gray"
    sub_x = comps[0].width != comps[1].width
    sub_y = comps[0].height != comps[1].height
    base = "yuv420p" if sub_x and sub_y else "yuv422p" if sub_x else "yuv444p"
    return base + ("10le" if deep else "")


def _planes_of(frame: av.VideoFrame, pix_fmt: str) -> tuple[np.ndarray, ...]:
    """Copy an av.VideoFrame's planes into tight numpy arrays (strides removed)."""
    fmt = PIX_FMTS[pix_fmt]
    shapes = fmt.plane_shapes(frame.width, frame.height)
    out = []
    for plane, shape in zip(frame.planes, shapes, strict=False):
        rows = np.frombuffer(plane, dtype=np.uint8).reshape(-1, plane.line_size)[: shape[0]]
        row_bytes = int(np.prod(shape[1:])) * fmt.bytes_per_sample
        tight = rows[:, :row_bytes]
        arr = tight.copy().view("<u2").astype(np.uint16) if fmt.bits > 8 else tight.copy()
        out.append(arr.reshape(shape))
    return tuple(out)


class PyAVReader(VideoReader):
    """Decodes the first video stream with FFmpeg threads; the first frame is read at open time to
    validate the file and learn its colour description."""

    def __init__(self, path: Path, start: int = 0, frames: int | None = None,
                 fps: Fraction | None = None) -> None:
        self.path = path
        try:
            self._container = av.open(str(path), "r")
        except av.FFmpegError as exc:
            hint = (f"it is a .gsvc file: decode it first, gsvc decode {path} -o out.y4m"
                    if _is_gsvc(path) else None)
            raise InputError(f"{path}: cannot open as a video ({_ff_reason(exc)})", hint=hint) from None
        try:
            if not self._container.streams.video:
                raise InputError(f"{path}: has no video stream")
            stream = self._container.streams.video[0]
            stream.thread_type = "AUTO"
            self._stream = stream
            self._frames = self._decode()
            first = next(self._frames, None)
            if first is None:
                raise InputError(f"{path}: contains zero video frames")
            self._first = first
            pix_fmt = _target_pix_fmt(first.format)
            width, height = first.width, first.height
            rate = fps or stream.average_rate or stream.guessed_rate or stream.base_rate or Fraction(25)
            matrix = _COLORSPACE.get(int(first.colorspace or 2), default_color_matrix(width, height))
            jpeg = first.format.name in _JPEG_ALIASES
            color_range = "full" if (jpeg or int(first.color_range or 0) == 2) else "limited"
            if pix_fmt == "rgb24":
                color_range = "full"
            total = stream.frames or None
            if total is None and _is_still_image(self._container.format.name):
                total = 1  # a still image (PNG, JPEG, ...) is a one-frame video
            elif total is None:  # Matroska/WebM (and others) do not store it: count the packets
                total = _count_packets(path)
            if total is not None and start >= total:
                raise UsageError(f"{path}: --start {start} is past the last frame ({total} frames)")
            count = None if total is None else total - start
            if frames is not None:
                count = frames if count is None else min(frames, count)
            self._start, self._limit = start, frames
            sar = stream.sample_aspect_ratio or stream.codec_context.sample_aspect_ratio
            self.info = VideoInfo(width, height, Fraction(rate), pix_fmt, matrix, color_range, count, path,
                                  sar=Fraction(sar) if sar and sar > 0 else None,
                                  color_primaries=int(first.color_primaries or UNSPECIFIED),
                                  color_trc=int(first.color_trc or UNSPECIFIED))
        except BaseException:
            self._container.close()
            raise

    def _decode(self) -> Iterator[av.VideoFrame]:
        try:
            yield from self._container.decode(self._stream)
        except av.FFmpegError as exc:
            raise InputError(f"{self.path}: decoding failed ({_ff_reason(exc)})") from None

    def __iter__(self) -> Iterator[Frame]:
        if self._first is None:
            raise InputError(f"{self.path}: a PyAV reader can be iterated only once")
        first, self._first = self._first, None
        info = self.info
        produced = 0
        for index, av_frame in enumerate(itertools.chain([first], self._frames)):
            if self._limit is not None and produced >= self._limit:
                break
            if index < self._start:
                continue
            if av_frame.width != info.width or av_frame.height != info.height:
                raise InputError(f"{self.path}: frame {index} changes size, which is not supported")
            name = _JPEG_ALIASES.get(av_frame.format.name, av_frame.format.name)
            if name != info.pix_fmt:
                av_frame = av_frame.reformat(format=info.pix_fmt)
            planes = _planes_of(av_frame, info.pix_fmt)
            yield Frame(planes, info.pix_fmt, info.color_matrix, info.color_range, index)
            produced += 1
        if produced == 0:
            raise UsageError(f"{self.path}: --start {self._start} is past the last frame")

    def close(self) -> None:
        self._container.close()


def _count_packets(path: Path) -> int | None:
    """Frames of the first video stream, counted by demuxing (no decoding: cheap even for long
    files), for containers that do not store the count. None when the file cannot be demuxed."""
    try:
        with av.open(str(path), "r") as container:
            stream = container.streams.video[0]
            return sum(1 for packet in container.demux(stream) if packet.size > 0) or None
    except (av.FFmpegError, IndexError):
        return None


def _is_gsvc(path: Path) -> bool:
    """True when the file starts with the .gsvc magic (see docs/FORMAT.md)."""
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"GSVC"
    except OSError:
        return False


def _is_still_image(demuxer: str) -> bool:
    """FFmpeg's single-image demuxers are named like "png_pipe", "jpeg_pipe" or "image2"."""
    return demuxer.endswith("_pipe") or demuxer in ("image2", "image2pipe")


def _ff_reason(exc: Exception) -> str:
    """FFmpeg's own short reason, without the file name PyAV appends."""
    text = getattr(exc, "strerror", None) or str(exc)
    return str(text).split(":")[0].strip() or type(exc).__name__
