"""Writers for Y4M, raw .yuv, MP4/MKV (H.264 through PyAV's libx264) and PNG sequences.

Every writer goes through a temp file beside the target (gsvc_cli.atomic), so an interrupted or
failed run leaves no partial output.
"""

from __future__ import annotations

import contextlib
import os
import re
from fractions import Fraction
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from gsvc_cli.atomic import atomic_output, check_output_path
from gsvc_cli.errors import GsvcError, UsageError
from gsvc_cli.video.base import VideoWriter
from gsvc_cli.video.frame import Frame
from gsvc_cli.video.info import UNSPECIFIED, VideoInfo
from gsvc_cli.video.y4m import y4m_header

_MATRIX_CODES = {"bt709": (1, 1, 1), "bt601": (6, 6, 6), "bt2020": (9, 9, 14)}  # space, prim, trc
_RANGE_CODES = {"limited": 1, "full": 2}


class _AtomicWriter(VideoWriter):
    """Holds the atomic_output context for one target file."""

    def __init__(self, path: Path, info: VideoInfo, overwrite: bool) -> None:
        self.path = path
        self.info = info.with_(path=path)
        self.frames_written = 0
        self._atomic = atomic_output(path, overwrite)
        self.tmp = self._atomic.__enter__()

    def _close_output(self) -> None:
        """Flush the format's trailer into self.tmp."""

    def _finish(self) -> None:
        if self.frames_written == 0:
            raise UsageError(f"{self.path}: no frames were written")
        self._close_output()
        self._atomic.__exit__(None, None, None)

    def _abort(self) -> None:
        with contextlib.suppress(Exception):
            self._close_output()
        error = GsvcError(f"{self.path}: writing aborted")
        with contextlib.suppress(GsvcError):
            self._atomic.__exit__(GsvcError, error, None)


class RawWriter(_AtomicWriter):
    """Planar frames one after another, with a Y4M header and FRAME markers when `y4m`."""

    def __init__(self, path: Path, info: VideoInfo, overwrite: bool, y4m: bool) -> None:
        header = y4m_header(info.with_(path=path)) if y4m else b""
        if not y4m and info.fmt.rgb:
            raise UsageError(f"{path}: raw .yuv output needs a YUV pixel format, not {info.pix_fmt}")
        super().__init__(path, info, overwrite)
        self._y4m = y4m
        self._file = open(self.tmp, "wb")  # noqa: SIM115 (closed in _close_output)
        self._file.write(header)

    def write(self, frame: Frame) -> None:
        frame = frame.convert(self.info)
        if self._y4m:
            self._file.write(b"FRAME\n")
        for plane in frame.raw_planes():
            self._file.write(plane)  # the array's buffer as it is: no bytes object, no join
        self.frames_written += 1

    def _close_output(self) -> None:
        self._file.close()


class StreamWriter(VideoWriter):
    """Y4M (or raw planar) frames on a stream such as standard output, for `-o -` pipes.

    A stream cannot be taken back: if the run fails half way, the reader has seen the frames so far
    and gsvc exits non-zero. A reader that closes the pipe early is reported as one error line.
    """

    def __init__(self, stream: BinaryIO, info: VideoInfo, y4m: bool = True) -> None:
        if not y4m and info.fmt.rgb:
            raise UsageError(f"-o -: raw output needs a YUV pixel format, not {info.pix_fmt}")
        self.path = Path("-")
        self.info = info.with_(path=None)
        self.frames_written = 0
        self._stream = stream
        self._y4m = y4m
        if y4m:
            self._put(y4m_header(self.info))

    def _put(self, data: bytes) -> None:
        try:
            self._stream.write(data)
        except BrokenPipeError:
            raise GsvcError("standard output: the reading end of the pipe closed early") from None

    def write(self, frame: Frame) -> None:
        frame = frame.convert(self.info)
        self._put((b"FRAME\n" if self._y4m else b"") + frame.tobytes())
        self.frames_written += 1

    def _finish(self) -> None:
        if self.frames_written == 0:
            raise UsageError("-o -: no frames were written")
        try:
            self._stream.flush()
        except BrokenPipeError:
            raise GsvcError("standard output: the reading end of the pipe closed early") from None

    def _abort(self) -> None:
        with contextlib.suppress(Exception):
            self._stream.flush()


class PyAVWriter(_AtomicWriter):
    """H.264 in MP4/MKV/MOV through libx264: at `crf` (High profile when yuv420p, so that browsers
    and phones play it), or lossless (qp 0, the source's pixel format) when crf is None."""

    def __init__(self, path: Path, info: VideoInfo, overwrite: bool, crf: int | None = None,
                 preset: str = "medium") -> None:
        fmt = info.fmt
        if (fmt.shift_x and info.width % 2) or (fmt.shift_y and info.height % 2):
            raise UsageError(f"{path}: H.264 needs an even frame size for {info.pix_fmt}, "
                             f"got {info.width}x{info.height} (write .y4m instead)")
        import av  # here, not at the top: Y4M and .yuv output (the decoder's usual case) starts faster

        super().__init__(path, info, overwrite)
        try:
            # faststart: the index goes first, so a browser can play the .mp4 while it downloads
            muxer = {"movflags": "+faststart"} if path.suffix.lower() in (".mp4", ".m4v", ".mov") else {}
            self._container = av.open(str(self.tmp), "w", options=muxer)
            codec = "libx264rgb" if fmt.rgb else "libx264"
            stream = self._container.add_stream(codec, rate=info.fps)
            stream.width, stream.height = info.width, info.height
            stream.pix_fmt = info.pix_fmt
            options = {"preset": preset}
            options.update({"qp": "0"} if crf is None else {"crf": str(crf)})
            if crf is not None and info.pix_fmt == "yuv420p":
                options["profile"] = "high"
            stream.options = options
            cc = stream.codec_context
            cc.time_base = Fraction(1) / info.fps
            if info.sar is not None:
                cc.sample_aspect_ratio = info.sar
            if not fmt.rgb:
                space, prim, trc = _MATRIX_CODES[info.color_matrix]
                # the source's own primaries/transfer when it named them; else the matrix's usual ones
                if info.color_primaries != UNSPECIFIED:
                    prim = info.color_primaries
                if info.color_trc != UNSPECIFIED:
                    trc = info.color_trc
                cc.colorspace, cc.color_primaries, cc.color_trc = space, prim, trc
                cc.color_range = _RANGE_CODES[info.color_range]
            self._stream = stream
        except (av.FFmpegError, ValueError) as exc:
            self._abort()
            raise UsageError(f"{path}: cannot write H.264 with {info.pix_fmt}: {exc}") from None

    def write(self, frame: Frame) -> None:
        import av

        frame = frame.convert(self.info)
        av_frame = av.VideoFrame(self.info.width, self.info.height, self.info.pix_fmt)
        for plane, array in zip(av_frame.planes, frame.planes, strict=True):
            rows = np.ascontiguousarray(array, dtype=frame.fmt.dtype).view(np.uint8)
            rows = rows.reshape(plane.height, -1)
            padded = np.zeros((plane.height, plane.line_size), dtype=np.uint8)
            padded[:, : rows.shape[1]] = rows
            plane.update(padded.tobytes())
        if not frame.fmt.rgb:
            space, _, _ = _MATRIX_CODES[self.info.color_matrix]
            av_frame.colorspace = space
            av_frame.color_range = _RANGE_CODES[self.info.color_range]
        av_frame.pts = self.frames_written
        av_frame.time_base = Fraction(1) / self.info.fps
        for packet in self._stream.encode(av_frame):
            self._container.mux(packet)
        self.frames_written += 1

    def _close_output(self) -> None:
        if getattr(self, "_container", None) is None:
            return
        try:
            for packet in self._stream.encode(None):
                self._container.mux(packet)
        finally:
            self._container.close()
            self._container = None


_PATTERN = re.compile(r"%0?\d*d")


class PngWriter(VideoWriter):
    """RGB PNG images: one file for a one-frame video, or a sequence named by a pattern like
    out_%04d.png (numbered from 1, as ffmpeg does). Files are renamed into place at the end."""

    def __init__(self, path: Path, info: VideoInfo, overwrite: bool) -> None:
        self.path = path
        self.info = info.with_(path=path)
        self.frames_written = 0
        self._overwrite = overwrite
        self._pattern = bool(_PATTERN.search(path.name))
        self._done: list[tuple[Path, Path]] = []
        check_output_path(self._target(0), overwrite)

    def _target(self, k: int) -> Path:
        return self.path.with_name(self.path.name % (k + 1)) if self._pattern else self.path

    def write(self, frame: Frame) -> None:
        if not self._pattern and self.frames_written >= 1:
            raise UsageError(f"{self.path}: more than one frame; use a pattern like out_%04d.png")
        target = self._target(self.frames_written)
        check_output_path(target, self._overwrite)
        if frame.fmt.planes == 1 and not frame.fmt.rgb and frame.fmt.bits == 8:
            array, pix_fmt = np.ascontiguousarray(frame.y), "gray"
        else:
            rgb = frame.to_rgb_float()
            array = (rgb * 255.0).round().clamp(0, 255).byte().permute(1, 2, 0).contiguous().numpy()
            pix_fmt = "rgb24"
        tmp = target.with_name(f".{target.stem}.{os.getpid()}.tmp.png")
        self._done.append((tmp, target))
        tmp.write_bytes(_encode_png(array, pix_fmt))
        self.frames_written += 1

    def _finish(self) -> None:
        if self.frames_written == 0:
            raise UsageError(f"{self.path}: no frames were written")
        for _, target in self._done:
            check_output_path(target, self._overwrite)
        for tmp, target in self._done:
            os.replace(tmp, target)

    def _abort(self) -> None:
        for tmp, _ in self._done:
            with contextlib.suppress(OSError):
                tmp.unlink()


def _encode_png(array: np.ndarray, pix_fmt: str) -> bytes:
    """One PNG file's bytes from an [H, W] gray or [H, W, 3] rgb24 uint8 array."""
    import av

    ctx: Any = av.CodecContext.create("png", "w")
    ctx.width, ctx.height, ctx.pix_fmt = array.shape[1], array.shape[0], pix_fmt
    packets = ctx.encode(av.VideoFrame.from_ndarray(array, format=pix_fmt))
    packets += ctx.encode(None)
    return b"".join(bytes(p) for p in packets)
