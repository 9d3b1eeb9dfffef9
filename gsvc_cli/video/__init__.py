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

Formats are chosen by file name (or `fmt`): .y4m, .yuv (raw planar), .mp4/.mkv/.mov (H.264 via
libx264: a widely playable High-profile yuv420p stream at `crf` (default 18), or with `lossless`
the exact qp-0 stream in the source's pixel format), .png (one frame) or a pattern such as
out_%04d.png (a sequence). "-" is standard input (Y4M) or standard output (Y4M, or raw with
fmt="yuv"). Reading also takes anything FFmpeg decodes (MP4, MKV, WebM, images). File outputs are
atomic.
"""

from __future__ import annotations

import sys
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
STDIO = "-"  # the path that means standard input (open_video) or standard output (open_writer)
STDIN_NAME = Path("<stdin>")  # how messages name standard input
DEFAULT_CRF = 18  # playable H.264 output: visually transparent for gsvc's own artefacts
# Formats Y4M and raw .yuv hold; anything else (rgb24) is written as the 4:4:4 YUV it converts to.
_YUV_FALLBACK = {"rgb24": "yuv444p"}


def open_video(path: Path | str, *, size: tuple[int, int] | None = None, fps: Fraction | None = None,
               pix_fmt: str | None = None, start: int = 0, frames: int | None = None,
               color_matrix: str = "", color_range: str = "limited") -> VideoReader:
    """Open a video (or a still image as a one-frame video) for lazy reading.

    size (width, height), fps and pix_fmt describe raw .yuv input and are required for it; for
    other formats fps overrides the file's rate, and size/pix_fmt, when given, must match.
    start/frames select frames [start, start + frames). color_matrix/range apply to raw input.
    Raises InputError for missing, unreadable, corrupt or empty files, UsageError for bad options.
    """
    if str(path) == STDIO:
        return _open_stdin(size, fps, pix_fmt, start, frames)
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


def _open_stdin(size: tuple[int, int] | None, fps: Fraction | None, pix_fmt: str | None, start: int,
                frames: int | None) -> VideoReader:
    """A Y4M stream on standard input, as x264/x265/SvtAv1EncApp read it: its length is unknown."""
    from gsvc_cli.video.y4m import Y4mReader

    if start < 0:
        raise UsageError(f"{STDIN_NAME}: --start must be 0 or more")
    if frames is not None and frames < 1:
        raise UsageError(f"{STDIN_NAME}: --frames must be 1 or more")
    if sys.stdin is None or sys.stdin.isatty():
        raise UsageError(f"{STDIN_NAME}: is a terminal, not a Y4M stream",
                         hint="pipe one in, e.g. ffmpeg -i IN -f yuv4mpegpipe - | gsvc encode - -o OUT.gsvc")
    reader = Y4mReader(STDIN_NAME, start, frames, stream=sys.stdin.buffer)
    info = reader.info
    if fps is not None:
        reader.info = info = info.with_(fps=fps)
    if size is not None and size != (info.width, info.height):
        raise UsageError(f"{STDIN_NAME}: is {info.width}x{info.height}, "
                         f"not the --size {size[0]}x{size[1]} given")
    if pix_fmt is not None and pix_fmt != info.pix_fmt:
        raise UsageError(f"{STDIN_NAME}: pixel format is {info.pix_fmt}, not the --pix-fmt {pix_fmt} given")
    return reader


def open_writer(path: Path | str, info: VideoInfo, *, crf: int | None = None,
                overwrite: bool = False, preset: str = "medium", lossless: bool = False,
                pix_fmt: str | None = None, fmt: str | None = None) -> VideoWriter:
    """Open a writer for `path` ("-": standard output); frames in other formats are converted.

    The format follows the name, or `fmt` ("y4m", "yuv", "mp4", "mkv", "mov", "png"): .y4m,
    .yuv, .mp4/.mkv/.mov (H.264: playable High-profile yuv420p at `crf`, default DEFAULT_CRF; with
    `lossless` the exact qp-0 stream in the source's pixel format, which is what `gsvc eval`
    needs), .png or a %d pattern (PNG sequence). Standard output takes y4m (default) or yuv.
    `pix_fmt` asks for another pixel format; Y4M/.yuv of an RGB video default to yuv444p, which
    they can hold. File outputs are atomic and refuse an existing target unless overwrite.
    """
    path = Path(path)
    to_stdout = str(path) == STDIO
    if fmt is not None:
        fmt = fmt.lower().lstrip(".")
        if fmt not in ("y4m", "yuv"):
            raise UsageError(f"--format {fmt}: choose y4m or yuv (other formats follow the file name)")
    suffix = f".{fmt}" if fmt else (".y4m" if to_stdout else path.suffix.lower())
    if to_stdout and suffix not in (".y4m", ".yuv"):
        raise UsageError(f"-o -: standard output takes y4m or yuv, not {suffix[1:]}",
                         hint="write a file for mp4/mkv/png, or pipe y4m into ffmpeg")
    container = suffix in CONTAINER_SUFFIXES
    if crf is not None and not container:
        raise UsageError(f"{path}: --crf applies only to .mp4/.mkv/.mov output")
    if lossless and not container:
        raise UsageError(f"{path}: --lossless applies only to .mp4/.mkv/.mov output "
                         "(.y4m, .yuv and .png are always exact)")
    if lossless and crf is not None:
        raise UsageError(f"{path}: --lossless and --crf cannot be used together")
    if pix_fmt is not None:
        get_pix_fmt(pix_fmt)
        if suffix == ".png":
            raise UsageError(f"{path}: --pix-fmt does not apply to PNG output (always RGB or gray)")
        info = info.with_(pix_fmt=pix_fmt)
    elif suffix == ".y4m" or suffix in RAW_SUFFIXES:
        info = info.with_(pix_fmt=_YUV_FALLBACK.get(info.pix_fmt, info.pix_fmt))
    elif container and not lossless:
        info = info.with_(pix_fmt="yuv420p")  # what browsers, phones and players decode
    if to_stdout:
        from gsvc_cli.video.writers import StreamWriter

        return StreamWriter(sys.stdout.buffer, info, y4m=suffix == ".y4m")
    if suffix == ".y4m" or suffix in RAW_SUFFIXES:
        from gsvc_cli.video.writers import RawWriter

        return RawWriter(path, info, overwrite, y4m=suffix == ".y4m")
    if container:
        from gsvc_cli.video.writers import PyAVWriter

        return PyAVWriter(path, info, overwrite, None if lossless else (DEFAULT_CRF if crf is None else crf),
                          preset)
    if suffix == ".png":
        from gsvc_cli.video.writers import PngWriter

        return PngWriter(path, info, overwrite)
    raise UsageError(f"{path}: unknown output format {suffix or '(no suffix)'} "
                     "(use .y4m, .yuv, .mp4, .mkv or .png)")
