"""The decoder: .gsvc records -> integers -> splats -> rendered frames.

Decoding is exact and deterministic: integers come out of the entropy decoder, P-frames add their
deltas to the previous frame's integers, and only then are floats made (`dequantise`) and rendered.
So the decoder reproduces the encoder's own reconstruction bit for bit. Seeking starts at the
nearest I-frame at or before the first requested frame.

Decoding does not import torch (it would double the start-up of a short decode): integers stay in
numpy, `dequantise_values` makes the floats the encoder makes, and the C library of the CPU kernels
(gsvc_cli.render.capi) renders them, compiled from the same sources as the torch extension the
encoder renders with. With $GSVC_RENDER_BACKEND set to another backend, or when that library
cannot be built (logged once), frames are rendered through gsvc_cli.render (torch) instead.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gsvc_cli.codec.bitstream.container import FileHeader, GsvcReader
from gsvc_cli.codec.bitstream.dequant import QuantSteps, dequantise_values
from gsvc_cli.codec.bitstream.frame_coding import CodingMemory, DecodedValues, decode_values
from gsvc_cli.codec.bitstream.motion_vectors import MotionVectors
from gsvc_cli.codec.moved_picture import check_grid, move_picture
from gsvc_cli.errors import FormatError, UsageError
from gsvc_cli.progress import ProgressCallback, report
from gsvc_cli.readahead import read_ahead
from gsvc_cli.video import Frame, VideoInfo, open_writer

if TYPE_CHECKING:
    from gsvc_cli.codec.splats import Splats

log = logging.getLogger("gsvc_cli.render")

SplatArrays = tuple[np.ndarray, np.ndarray, np.ndarray]
"""float32 means [N, 2], chol [N, 3], colors [N, 3]."""


def video_info(header: FileHeader, path: Path | None = None, frames: int | None = None) -> VideoInfo:
    """The VideoInfo of the decoded output (pixel format as the encoder's input had it)."""
    pix_fmt = header.params.get("pix_fmt", "yuv420p")
    return VideoInfo(
        width=header.width, height=header.height, fps=Fraction(header.fps_num, header.fps_den),
        pix_fmt=pix_fmt, color_matrix=header.matrix if header.matrix != "none" else "",
        color_range=header.colour_range,
        frame_count=frames if frames is not None else header.frame_count, path=path,
    ).with_description_params(header.params)  # sar, colour primaries/transfer (absent in 1.0 files)


@dataclass
class DecodedImage:
    """One decoded frame: its number, type and YUV 4:4:4 image [3,H,W] float32 numpy in [0,1], and
    the splats it was rendered from as float32 numpy (means [N,2], chol [N,3], colors [N,3]; for
    pictures of them, `gsvc decode --show-splats`)."""

    index: int
    frame_type: str
    image: np.ndarray
    n_splats: int
    arrays: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    @property
    def splats(self) -> Splats | None:
        """The splats as torch `Splats` (imports torch)."""
        if self.arrays is None:
            return None
        import torch

        from gsvc_cli.codec.splats import Splats

        return Splats(*(torch.from_numpy(a) for a in self.arrays))


_fallback: list[str] = []


def render_image(means: np.ndarray, chol: np.ndarray, colors: np.ndarray, height: int,
                 width: int, clamp: bool = True) -> np.ndarray:
    """The decoded picture of float32 splats: [3, height, width] float32 clamped to [0, 1], as the
    encoder's `render_splats` makes it (bit for bit: the same kernels); unclamped with clamp=False
    (an M-frame's residual, as the encoder's `render`)."""
    from gsvc_cli.render import ENV_BACKEND
    from gsvc_cli.render.capi import render_image as render_native
    from gsvc_cli.render.capi_build import KernelBuildError

    backend = os.environ.get(ENV_BACKEND, "").strip() or "auto"
    if backend in ("auto", "cpu") and not _fallback:
        try:
            return render_native(means, chol, colors, height, width, clamp=clamp)
        except KernelBuildError as error:
            if backend == "cpu":
                raise
            _fallback.append(str(error))
            log.warning("%s; rendering through torch instead", error)
    import torch

    from gsvc_cli.codec.splats import Splats, render_splats
    from gsvc_cli.render import render

    splats = Splats(*(torch.from_numpy(a) for a in (means, chol, colors)))
    if not clamp:
        return render(splats.means, splats.chol, splats.colors, height, width).numpy()
    return render_splats(splats, height, width).numpy()


@dataclass(frozen=True)
class PictureUpdate:
    """What an M-frame holds: its field and, in a kind-4 frame, residual splats (float32 arrays)
    rendered and added to the moved picture."""

    motion: MotionVectors
    residual: SplatArrays | None = None


def update_picture(picture: np.ndarray, update: PictureUpdate) -> np.ndarray:
    """An M-frame's picture: `picture` moved by the field, plus the residual's render, clamped to
    [0, 1] (float32 sums: the encoder's `moved + render(residual)`, bit for bit)."""
    moved = move_picture(picture, update.motion)
    if update.residual is None:
        return moved
    _, height, width = moved.shape
    out = render_image(*update.residual, height, width, clamp=False)
    np.add(moved, out, out=out)
    return np.clip(out, 0.0, 1.0, out=out)


def decode_frames(reader: GsvcReader, start: int = 0, count: int | None = None,
                  ignore_errors: bool = False) -> Iterator[DecodedImage]:
    """Yield decoded frames [start, start + count). With ignore_errors, a bad frame (and the rest of
    its GOP, which depends on it) is skipped instead of stopping the decode.

    The next frame's splats are entropy-decoded in a thread while this one renders (`read_ahead`):
    the render runs in C without the GIL, so on two cores the Python stage mostly overlaps it.
    An M-frame is the previous picture moved (`move_picture`); when decoding starts at one, the
    pictures it builds on are made first and not yielded.
    """
    height, width = reader.header.height, reader.header.width
    picture: np.ndarray | None = None
    for k, frame_type, content, shown in read_ahead(_splat_frames(reader, start, count, ignore_errors)):
        if isinstance(content, PictureUpdate):
            assert picture is not None  # _splat_frames yields an M-frame only after its reference
            picture, arrays = update_picture(picture, content), None
            n_splats = 0 if content.residual is None else len(content.residual[0])
        else:
            picture, n_splats, arrays = render_image(*content, height, width), len(content[0]), content
        if shown:
            yield DecodedImage(k, frame_type, picture, n_splats, arrays)


def _splat_frames(reader: GsvcReader, start: int, count: int | None, ignore_errors: bool
                  ) -> Iterator[tuple[int, str, SplatArrays | PictureUpdate, bool]]:
    """(index, type, float32 splat arrays or an M-frame's update, shown) of frames [start, start +
    count), plus (not shown) the frames before `start` that an M-frame at `start` builds on:
    `decode_frames` less the render."""
    total = len(reader)
    if start < 0 or start >= total:
        raise UsageError(f"{reader.path}: --start {start} is outside the file's {total} frames")
    end = total if count is None else min(total, start + count)
    first = reader.gop_start(start)
    height, width = reader.header.height, reader.header.width
    prev: np.ndarray | None = None  # integers of the last I- or P-frame
    steps: QuantSteps | None = None
    memory: CodingMemory | None = None  # the models and steps M-frames may repeat
    broken = False
    # since the last splat frame: its integers and steps, and the M-frames after it
    hidden: list[tuple[int, str, tuple[np.ndarray, QuantSteps] | PictureUpdate]] = []
    for k in range(first, end):
        what = f"{reader.path}: frame {k}"
        try:
            record = reader.read_frame(k)
            frame = decode_values(record.payload, prev if record.frame_type == "P" else None, what,
                                  memory=memory)
            memory = frame.memory
            if frame.frame_type != record.frame_type:
                raise FormatError(f"{what}: index says {record.frame_type}, payload says {frame.frame_type}")
            if frame.frame_type != "I" and broken:  # its reference is gone: undecodable
                if k not in reader.bad_frames:
                    reader.bad_frames.append(k)
                continue
            if frame.frame_type == "M":
                if prev is None:
                    raise FormatError(f"{what}: M-frame without a previous picture")
                assert frame.motion is not None
                check_grid(frame.motion, width, height, what)
        except FormatError:
            if not ignore_errors:
                raise
            if k not in reader.bad_frames:
                reader.bad_frames.append(k)
            prev, memory, broken = None, None, True
            continue
        broken = False
        content: SplatArrays | PictureUpdate | tuple[np.ndarray, QuantSteps]
        if frame.motion is not None:
            residual = dequantise_values(frame.values, frame.steps) if frame.steps is not None else None
            content = PictureUpdate(frame.motion, residual)
        else:
            steps = _steps_of(frame, steps, reader.path, k)
            prev = frame.values
            content = dequantise_values(frame.values, steps) if k >= start else (frame.values, steps)
        if k < start:  # kept in case frame `start` is an M-frame: it moves the picture before it
            hidden = [] if frame.frame_type != "M" else hidden
            hidden.append((k, frame.frame_type, content))
            continue
        if k == start and frame.frame_type == "M":
            for j, kind, earlier in hidden:
                made = earlier if isinstance(earlier, PictureUpdate) else dequantise_values(*earlier)
                yield j, kind, made, False
        yield k, frame.frame_type, content, True


def _steps_of(frame: DecodedValues, steps: QuantSteps | None, path: Path, k: int) -> QuantSteps:
    if frame.steps is not None:
        return frame.steps
    if steps is None:
        raise FormatError(f"{path}: frame {k}: P-frame without a preceding I-frame")
    return steps


@dataclass
class DecodeSummary:
    frames: int
    seconds: float
    bad_frames: list[int]


def decode_video(source: Path, output: Path | None, *, start: int = 0, frames: int | None = None,
                 overwrite: bool = False, ignore_errors: bool = False, crf: int | None = None,
                 progress: ProgressCallback | None = None, writer_options: dict[str, Any] | None = None,
                 on_frame: Callable[[DecodedImage], None] | None = None) -> DecodeSummary:
    """Decode `source` into a video file (y4m, yuv, mp4/mkv or a png pattern), atomically; "-" is
    standard output. writer_options go to `open_writer` (lossless, pix_fmt, fmt). on_frame sees
    every decoded frame (splats included); output None decodes for on_frame only."""
    begin = time.perf_counter()
    with GsvcReader(source, ignore_errors=ignore_errors) as reader:
        total = len(reader)
        if total == 0:
            raise FormatError(f"{source}: the file holds no frames")
        end = total if frames is None else min(total, start + frames)
        info = video_info(reader.header, output, end - start)
        written = 0
        with (open_writer(output, info, crf=crf, overwrite=overwrite, **(writer_options or {}))
              if output is not None else contextlib.nullcontext()) as writer:
            # Render straight into the output's pixel format when the bit depth allows (no detour
            # through the source's format: an RGB source written as Y4M stays exact 4:4:4 YUV).
            target = info if writer is None or writer.info.fmt.bits != info.fmt.bits else writer.info
            for decoded in decode_frames(reader, start, end - start, ignore_errors):
                if on_frame is not None:
                    on_frame(decoded)
                if writer is not None:
                    writer.write(Frame.from_yuv444_float(decoded.image, target, decoded.index))
                written += 1
                report(progress, "decode", written, end - start, type=decoded.frame_type)
            if written == 0:
                raise FormatError(f"{source}: no frame could be decoded")
        bad = sorted(set(getattr(reader, "bad_frames", [])))
    return DecodeSummary(written, time.perf_counter() - begin, bad)
