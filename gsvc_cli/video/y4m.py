"""YUV4MPEG2 (.y4m) reading and writing, done directly (no PyAV) to keep every header detail."""

from __future__ import annotations

import os
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

import numpy as np

from gsvc_cli.errors import InputError, UsageError
from gsvc_cli.video.base import VideoReader
from gsvc_cli.video.frame import Frame
from gsvc_cli.video.info import VideoInfo, format_sar, parse_sar
from gsvc_cli.video.pixfmt import PixFmt, get_pix_fmt

_MAGIC = b"YUV4MPEG2"
_FRAME = b"FRAME"
_HEADER_MAX = 4096

# Y4M 'C' tag <-> pix_fmt. Several 4:2:0 sitings read as yuv420p; we write ffmpeg's 420jpeg.
_C_TO_PIX = {
    "420jpeg": "yuv420p", "420paldv": "yuv420p", "420mpeg2": "yuv420p", "420": "yuv420p",
    "422": "yuv422p", "444": "yuv444p", "mono": "gray",
    "420p10": "yuv420p10le", "422p10": "yuv422p10le", "444p10": "yuv444p10le", "mono10": "gray10le",
}
_PIX_TO_C = {
    "yuv420p": "C420jpeg XYSCSS=420JPEG", "yuv422p": "C422 XYSCSS=422", "yuv444p": "C444 XYSCSS=444",
    "gray": "Cmono", "yuv420p10le": "C420p10 XYSCSS=420P10", "yuv422p10le": "C422p10 XYSCSS=422P10",
    "yuv444p10le": "C444p10 XYSCSS=444P10", "gray10le": "Cmono10",
}


def split_planes(buf: bytes | memoryview, fmt: PixFmt, width: int, height: int) -> tuple[np.ndarray, ...]:
    """Cut one raw planar frame (as in .yuv and Y4M) into numpy planes (views, no copy)."""
    planes = []
    offset = 0
    for shape in fmt.plane_shapes(width, height):
        count = int(np.prod(shape))
        planes.append(np.frombuffer(buf, dtype=fmt.dtype, count=count, offset=offset).reshape(shape))
        offset += count * fmt.bytes_per_sample
    if fmt.bits > 8:
        planes = [p.astype(np.uint16) for p in planes]
    return tuple(planes)


def parse_header(line: bytes, path: Path) -> tuple[VideoInfo, dict[str, str]]:
    """Parse the stream header line (without the newline) into a VideoInfo (frame_count unset)."""
    tokens = line.split(b" ")
    if tokens[0] != _MAGIC:
        raise InputError(f"{path}: not a Y4M file (no YUV4MPEG2 header)")
    width = height = 0
    fps = Fraction(25)
    chroma = "420jpeg"
    sar = None
    extras: dict[str, str] = {}
    for raw in tokens[1:]:
        tok = raw.decode("ascii", "replace")
        if not tok:
            continue
        key, val = tok[0], tok[1:]
        try:
            if key == "W":
                width = int(val)
            elif key == "H":
                height = int(val)
            elif key == "F":
                num, den = val.split(":")
                fps = Fraction(int(num), int(den))
            elif key == "C":
                chroma = val
            elif key == "A":
                sar = parse_sar(val)
            elif key == "I" and val not in ("p", "?"):
                raise InputError(f"{path}: interlaced Y4M (I{val}) is not supported")
            elif key == "X" and "=" in val:
                k, v = val.split("=", 1)
                extras[k] = v
        except (ValueError, ZeroDivisionError):
            raise InputError(f"{path}: bad Y4M header field {tok!r}") from None
    if width <= 0 or height <= 0:
        raise InputError(f"{path}: Y4M header has no valid size")
    if fps <= 0:
        raise InputError(f"{path}: Y4M header has a non-positive frame rate")
    if chroma not in _C_TO_PIX:
        raise InputError(f"{path}: unsupported Y4M pixel format C{chroma}")
    color_range = "full" if extras.get("COLORRANGE", "").upper() == "FULL" else "limited"
    info = VideoInfo(width, height, fps, _C_TO_PIX[chroma], color_range=color_range, path=path, sar=sar)
    return info, extras


class Y4mReader(VideoReader):
    """Streams frames from a .y4m file; seeks straight to --start when frame headers are plain.

    With `stream` (standard input, a pipe) nothing is seeked: frames are read in order, frames
    before --start are read and dropped, and the frame count is unknown (None) until the end.
    """

    def __init__(self, path: Path, start: int = 0, frames: int | None = None,
                 stream: BinaryIO | None = None) -> None:
        self.path = path
        self._seekable = stream is None
        self._file = stream if stream is not None else open(path, "rb")  # noqa: SIM115 (close())
        try:
            header = self._file.readline(_HEADER_MAX)
            if not header.startswith(_MAGIC):
                raise InputError(f"{path}: not a Y4M stream (no YUV4MPEG2 header)",
                                 hint=None if self._seekable else
                                 "pipe Y4M, e.g. ffmpeg -i IN -f yuv4mpegpipe - | gsvc encode - -o OUT.gsvc")
            if not header.endswith(b"\n"):
                raise InputError(f"{path}: not a Y4M file (no header line)")
            info, _ = parse_header(header[:-1], path)
            self._fmt = get_pix_fmt(info.pix_fmt)
            self._frame_bytes = self._fmt.frame_bytes(info.width, info.height)
            self._data_start = len(header)
            self._start, self._limit = start, frames
            if not self._seekable:
                self.info = info.with_(frame_count=None)
                return
            size = os.fstat(self._file.fileno()).st_size
            self._stride = self._frame_bytes + len(_FRAME) + 1  # assumes parameter-less FRAME lines
            available = (size - self._data_start) // self._stride
            if available == 0:
                raise InputError(f"{path}: Y4M file has no frames")
            if (size - self._data_start) % self._stride:
                available = None  # frame headers carry parameters, or the file is truncated
            count = None if available is None else max(0, available - start)
            if frames is not None:
                count = frames if count is None else min(frames, count)
            self.info = info.with_(frame_count=count)
            if count == 0:
                raise UsageError(f"{path}: --start {start} is past the last frame ({available} frames)")
        except BaseException:
            self.close()
            raise

    def __iter__(self) -> Iterator[Frame]:
        f = self._file
        if self._seekable:
            f.seek(self._data_start)
        index = 0
        if self._seekable and self._start and self.info.frame_count is not None:
            f.seek(self._data_start + self._start * self._stride)
            index = self._start
        produced = 0
        info = self.info
        while self._limit is None or produced < self._limit:
            line = f.readline(_HEADER_MAX)
            if not line:
                break
            if not line.startswith(_FRAME) or not line.endswith(b"\n"):
                raise InputError(f"{self.path}: corrupt Y4M frame header at frame {index}")
            data = f.read(self._frame_bytes)
            if len(data) != self._frame_bytes:
                raise InputError(f"{self.path}: truncated Y4M frame {index}")
            if index >= self._start:
                planes = split_planes(data, self._fmt, info.width, info.height)
                yield Frame(planes, info.pix_fmt, info.color_matrix, info.color_range, index)
                produced += 1
            index += 1
        if produced == 0:
            if 0 < index <= self._start:
                raise UsageError(f"{self.path}: --start {self._start} is past the last frame "
                                 f"({index} frames)")
            raise InputError(f"{self.path}: no frames to read")

    def close(self) -> None:
        if self._seekable:  # standard input is not ours to close
            self._file.close()


def y4m_header(info: VideoInfo) -> bytes:
    """The stream header line, in ffmpeg's wording (so ffmpeg-made files round-trip byte-exactly)."""
    if info.pix_fmt not in _PIX_TO_C:
        raise UsageError(f"{info.path}: Y4M cannot hold pixel format {info.pix_fmt} (use yuv420p/yuv444p)")
    fps = info.fps
    parts = [f"YUV4MPEG2 W{info.width} H{info.height} F{fps.numerator}:{fps.denominator} Ip "
             f"A{format_sar(info.sar)}",
             _PIX_TO_C[info.pix_fmt]]
    if info.color_range == "full":
        parts.append("XCOLORRANGE=FULL")
    return (" ".join(parts) + "\n").encode("ascii")
