"""Video in and out: every format gsvc reads or writes, behind one small API.

Reading::

    with open_video(path, start=0, frames=None) as reader:   # raw .yuv also needs size/fps/pix_fmt
        reader.info          # VideoInfo: width, height, fps (exact Fraction), pix_fmt,
                             #   color_matrix ("bt601"/"bt709"/"bt2020"), color_range ("limited"/"full"),
                             #   frame_count (None when unknown), path
        for frame in reader: # Frame, one at a time (bounded memory)
            frame.y, frame.u, frame.v        # numpy planes at native resolution (uint8/uint16)
            frame.to_yuv444_float()          # torch [3, H, W] float32, code value / peak, chroma upsampled
            frame.to_rgb_float()             # torch [3, H, W] float32 RGB in [0, 1]

Writing::

    with open_writer(out_path, info, crf=None, overwrite=False) as writer:
        writer.write(Frame.from_rgb_float(rgb, info))   # or from_yuv444_float(yuv, info)

Formats are chosen by file name: .y4m, .yuv (raw planar), .mp4/.mkv/.mov (H.264 via libx264,
lossless qp 0 unless `crf`), .png (one frame) or a pattern such as out_%04d.png (a sequence).
Reading also takes anything FFmpeg decodes (MP4, MKV, WebM, images). Outputs are atomic.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

from gsvc_cli.errors import InputError, UsageError
from gsvc_cli.video.base import VideoReader, VideoWriter
from gsvc_cli.video.frame import Frame
from gsvc_cli.video.info import VideoInfo, default_color_matrix
from gsvc_cli.video.pixfmt import PIX_FMTS, PixFmt, get_pix_fmt

__all__ = [
    "PIX_FMTS", "Frame", "PixFmt", "VideoInfo", "VideoReader", "VideoWriter",
    "default_color_matrix", "get_pix_fmt", "open_video", "open_writer",
]

RAW_SUFFIXES = (".yuv", ".raw")
CONTAINER_SUFFIXES = (".mp4", ".mkv", ".mov", ".m4v")


def open_video(path: Path | str, *, size: tuple[int, int] | None = None, fps: Fraction | None = None,
               pix_fmt: str | None = None, start: int = 0, frames: int | None = None,
               color_matrix: str = "", color_range: str = "limited") -> VideoReader:
    """Open a video (or a still image as a one-frame video) for lazy reading.

    size (width, height), fps and pix_fmt describe raw .yuv input and are required for it; for
    other formats fps overrides the file's rate, and size/pix_fmt, when given, must match.
    start/frames select frames [start, start + frames). color_matrix/range apply to raw input.
    Raises InputError for missing, unreadable, corrupt or empty files, UsageError for bad options.
    """
    path = Path(path)
    if start < 0:
        raise UsageError(f"{path}: --start must be 0 or more")
    if frames is not None and frames < 1:
        raise UsageError(f"{path}: --frames must be 1 or more")
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a directory, expected a video file")
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None
    if path.suffix.lower() in RAW_SUFFIXES:
        from gsvc_cli.video.rawyuv import RawYuvReader

        return RawYuvReader(path, size, fps, pix_fmt, start, frames, color_matrix, color_range)
    if path.stat().st_size == 0:
        raise InputError(f"{path}: file is empty (zero frames)")
    reader: VideoReader
    with open(path, "rb") as f:
        magic = f.read(9)
    if magic == b"YUV4MPEG2":
        from gsvc_cli.video.y4m import Y4mReader

        reader = Y4mReader(path, start, frames)
        if fps is not None:
            reader.info = reader.info.with_(fps=fps)
    else:
        from gsvc_cli.video.pyav_reader import PyAVReader

        reader = PyAVReader(path, start, frames, fps)
    info = reader.info
    if size is not None and size != (info.width, info.height):
        reader.close()
        raise UsageError(f"{path}: is {info.width}x{info.height}, not the --size {size[0]}x{size[1]} given")
    if pix_fmt is not None and pix_fmt != info.pix_fmt:
        reader.close()
        raise UsageError(f"{path}: pixel format is {info.pix_fmt}, not the --pix-fmt {pix_fmt} given")
    return reader


def open_writer(path: Path | str, info: VideoInfo, *, crf: int | None = None,
                overwrite: bool = False, preset: str = "medium") -> VideoWriter:
    """Open an atomic writer for `path`; frames in other formats are converted to info's.

    The format follows the name: .y4m, .yuv, .mp4/.mkv/.mov (H.264, lossless unless crf),
    .png or a %d pattern (PNG sequence). Refuses an existing target unless overwrite.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if crf is not None and suffix not in CONTAINER_SUFFIXES:
        raise UsageError(f"{path}: --crf applies only to .mp4/.mkv/.mov output")
    if suffix == ".y4m" or suffix in RAW_SUFFIXES:
        from gsvc_cli.video.writers import RawWriter

        return RawWriter(path, info, overwrite, y4m=suffix == ".y4m")
    if suffix in CONTAINER_SUFFIXES:
        from gsvc_cli.video.writers import PyAVWriter

        return PyAVWriter(path, info, overwrite, crf, preset)
    if suffix == ".png":
        from gsvc_cli.video.writers import PngWriter

        return PngWriter(path, info, overwrite)
    raise UsageError(f"{path}: unknown output format {suffix or '(no suffix)'} "
                     "(use .y4m, .yuv, .mp4, .mkv or .png)")
