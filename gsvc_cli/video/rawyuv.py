"""Headerless planar .yuv files: the size, rate and pixel format must come from the user."""

from __future__ import annotations

import os
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

from gsvc_cli.errors import InputError, UsageError
from gsvc_cli.video.base import VideoReader
from gsvc_cli.video.frame import Frame
from gsvc_cli.video.info import VideoInfo
from gsvc_cli.video.pixfmt import get_pix_fmt
from gsvc_cli.video.y4m import split_planes


class RawYuvReader(VideoReader):
    """Streams frames from a raw .yuv file; --start seeks directly."""

    def __init__(self, path: Path, size: tuple[int, int] | None, fps: Fraction | None,
                 pix_fmt: str | None, start: int = 0, frames: int | None = None,
                 color_matrix: str = "", color_range: str = "limited") -> None:
        missing = [name for name, v in (("--size", size), ("--fps", fps), ("--pix-fmt", pix_fmt))
                   if v is None]
        if missing:
            raise UsageError(f"{path}: raw .yuv input needs {', '.join(missing)}")
        assert size is not None and fps is not None and pix_fmt is not None
        fmt = get_pix_fmt(pix_fmt)
        if fmt.rgb:
            raise UsageError(f"{path}: raw .yuv input must be a YUV or gray pixel format, not {pix_fmt}")
        width, height = size
        self.path = path
        self._fmt = fmt
        self._frame_bytes = fmt.frame_bytes(width, height)
        file_size = os.path.getsize(path)
        if file_size == 0:
            raise InputError(f"{path}: file is empty (zero frames)")
        if file_size % self._frame_bytes:
            raise InputError(
                f"{path}: size {file_size} bytes is not a whole number of {width}x{height} {pix_fmt} "
                f"frames ({self._frame_bytes} bytes each); check --size and --pix-fmt"
            )
        available = file_size // self._frame_bytes
        if start >= available:
            raise UsageError(f"{path}: --start {start} is past the last frame ({available} frames)")
        count = available - start if frames is None else min(frames, available - start)
        self._start = start
        self.info = VideoInfo(width, height, fps, pix_fmt, color_matrix, color_range, count, path)
        self._file = open(path, "rb")  # noqa: SIM115 (closed in close())

    def __iter__(self) -> Iterator[Frame]:
        info = self.info
        self._file.seek(self._start * self._frame_bytes)
        for k in range(info.frame_count or 0):
            data = self._file.read(self._frame_bytes)
            if len(data) != self._frame_bytes:
                raise InputError(f"{self.path}: truncated frame {self._start + k}")
            planes = split_planes(data, self._fmt, info.width, info.height)
            yield Frame(planes, info.pix_fmt, info.color_matrix, info.color_range, self._start + k)

    def close(self) -> None:
        self._file.close()
