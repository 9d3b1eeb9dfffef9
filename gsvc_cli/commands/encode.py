"""`gsvc encode IN -o OUT.gsvc`: fit every frame with Gaussian splats and write a .gsvc file."""

from __future__ import annotations

import enum
import os
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from gsvc_cli.atomic import check_output_path, refuse_same_file
from gsvc_cli.codec.encoder.presets import CUT_MARGIN_DB, PRESET_NAMES
from gsvc_cli.commands.common import (
    FpsOption,
    FramesOption,
    NoOverwriteOption,
    OverwriteOption,
    PixFmtOption,
    QuietOption,
    SizeOption,
    StartOption,
    VerboseOption,
    parse_fps,
    parse_size,
    progress_renderer,
    resolve_overwrite,
    stderr_console,
)
from gsvc_cli.errors import UsageError
from gsvc_cli.progress import report

if TYPE_CHECKING:  # the core imports torch: load it only when a command runs
    from rich.table import Table

    from gsvc_cli.chunked.encode import ChunkedSummary
    from gsvc_cli.codec.encoder.gop import EncoderSettings, EncodeSummary
    from gsvc_cli.codec.encoder.rate_control import RateTarget
    from gsvc_cli.video import Frame

DEFAULT_QUALITY = 33.0
VIDEO_SUFFIXES = (".y4m", ".yuv", ".raw", ".mp4", ".mkv", ".mov", ".m4v", ".webm", ".avi", ".png")


Preset = enum.StrEnum("Preset", {name: name for name in PRESET_NAMES})
"""Speed/quality trade-off of the fitter, as x264's --preset (the names of codec.encoder.presets)."""


HELP = f"""Encode a video into a .gsvc file: every frame becomes a set of 2D Gaussian splats.

Rate control takes one target. --quality Q (default {DEFAULT_QUALITY:g}; higher is better, as x264's
--crf but the other way round) is the primary mode: every decision (I or P, each splat's update,
how many splats to add, the quantiser steps) minimises distortion + lambda x bits with one
lambda = 2 ln2 x 10^(-Q/10), so Q is roughly the PSNR (dB, YUV 6:1:1 in the fitting space) the
encoder aims for. --bpp B (file bits per pixel, headers included) searches the quality that lands
within 1% of B: several whole encodes (typically 3-5), so it takes that much longer; when no
constant quality lands (the rate can jump between neighbouring qualities), up to two more passes
move the quality frame by frame to follow the closest pass's bits, scaled to B. --psnr and
--splats are the older per-frame targets, kept for experiments. Each GOP starts with an I-frame
fitted from scratch; P-frames start from the last I- or P-frame's splats, moved by the motion
found between the frames; M-frames move the previous decoded picture by a field of block vectors
(cheap where the picture just moves) and may add a few residual splats where it misses. Each
frame is the type of least cost (an I-frame also when --gop forces it).

"-" reads Y4M from standard input, as x264 and x265 do, so ffmpeg can feed any format in a pipe
(ffmpeg -i IN -f yuv4mpegpipe - | gsvc encode - -o OUT.gsvc). The length of a pipe is unknown, so
a --bpp target cannot be searched over several passes: it is then planned in one pass over a horizon
of 8 frames that grows as the stream goes on (a pipe of fewer than 8 frames can overshoot the
target); the header's frame count is written at the end. Files
that do not store their frame count (Matroska, WebM) have their packets counted first.

Prints a summary on stderr: frames, I/P/M counts, size, bpp, mean PSNR of the decoded frames and
speed. -v adds a per-frame table. Encoding is slow on a CPU (seconds per frame); try
--preset fast and --frames first.

Chunked and parallel encoding (--chunked, --workers N, --ray-address ADDR): one quick pass finds
hard cuts, and the video splits into chunks that each open with an I-frame: at every cut, and
within a shot every --gop frames (long shots split into equal parts). Chunks are encoded
independently, each on one CPU thread, and joined in frame order: the file is byte-identical
whatever the number of workers, and --bpp still counts the whole file. --workers N runs chunks on
a local Ray runtime that gsvc starts and stops: N worker processes, loopback interface only, no
dashboard, token authentication on. --ray-address ADDR sends them to an existing Ray cluster
instead, which must have gsvc installed; with --workers, Ray's RAY_ADDRESS variable does too (as
for ray.init()), and --ray-address local forces the local runtime. On a cluster, enable token
authentication (RAY_AUTH_MODE=token) and keep it on a trusted network: Ray runs code for whoever
reaches it.

Resume: a chunked encode keeps finished chunks in a work folder beside the output, .OUT.gsvc.parts/
(for out.gsvc: .out.gsvc.parts/). If the encode is interrupted (Ctrl-C, SIGTERM, SIGHUP, a lost
worker, a crash), run the same command with --resume: only missing chunks are encoded, and the
file is the same bytes as an uninterrupted run. The folder is removed once the file is complete;
nothing else is ever left behind. A chunk is retried once; a chunk that fails twice stops the
encode with an error naming it.

Examples:
gsvc encode in.y4m -o out.gsvc
gsvc encode in.y4m -o out.gsvc --quality 30 --preset fast  # smaller file, quicker encode
gsvc encode in.mp4 -o out.gsvc --bpp 0.4  # aim for a size: a search over --quality
gsvc encode in.y4m -o out.gsvc --splats 2000 --gop 30 --scenecut 0
gsvc encode in.yuv -o out.gsvc --size 352x288 --fps 30000/1001 --pix-fmt yuv420p
gsvc encode long.mp4 -o clip.gsvc --start 100 --frames 25 -y
ffmpeg -i in.mkv -f yuv4mpegpipe - | gsvc encode - -o out.gsvc
gsvc encode long.mp4 -o long.gsvc --preset fast --workers 2  # two cores
gsvc encode long.mp4 -o long.gsvc --preset fast --workers 2 --resume  # after an interruption
gsvc encode long.mp4 -o long.gsvc --ray-address 10.0.0.5:6379  # an existing Ray cluster
"""


def summary_line(summary: EncodeSummary, fps: Fraction) -> str:
    """x264-style closing line: frames, I/P/M, size, bpp, bitrate, PSNR and speed."""
    n = len(summary.frames)
    n_i = sum(f.frame_type == "I" for f in summary.frames)
    n_m = sum(f.frame_type == "M" for f in summary.frames)
    cuts = sum(f.scene_cut for f in summary.frames)
    kbps = 8.0 * summary.file_bytes * float(fps) / max(1, n) / 1000.0
    speed = n / summary.seconds if summary.seconds > 0 else float("inf")
    cut_text = f", {cuts} scene cut{'s' if cuts != 1 else ''}" if cuts else ""
    loss = summary.mean_quant_loss_db
    loss_text = f" (quantisation cost {loss:.2f} dB on I-frames)" if loss is not None else ""
    m_text = f", M {n_m}" if n_m else ""
    return (f"encoded {n} frames (I {n_i}, P {n - n_i - n_m}{m_text}{cut_text}) -> {summary.path}: "
            f"{summary.file_bytes} bytes, {summary.bpp:.4f} bpp, {kbps:.2f} kb/s, "
            f"PSNR YUV {summary.mean_psnr:.2f} dB{loss_text}, {summary.seconds:.1f} s "
            f"({summary.seconds / max(1, n):.2f} s/frame, {speed:.3f} fps)")


def frame_table(summary: EncodeSummary) -> Table:
    """One row per coded frame (for -v): bits of the whole record, payload bits per splat."""
    from rich.table import Table

    table = Table(title=f"{summary.path}: frames", title_justify="left")
    for name in ("frame", "type", "splats", "new", "deleted", "bits", "bits/splat", "PSNR YUV", "s"):
        table.add_column(name, justify="left" if name == "type" else "right")
    for f in summary.frames:
        kind = f.frame_type + (" (cut)" if f.scene_cut else "")
        per_splat = f.bits_per_splat.get("total", f.bits / max(1, f.n_splats))
        table.add_row(str(f.index), kind, str(f.n_splats), str(f.n_new), str(f.n_deleted), str(f.bits),
                      f"{per_splat:.1f}", f"{f.psnr:.2f}", f"{f.seconds:.1f}")
    return table


def rate_target(quality: float | None, bpp: float | None, psnr: float | None, splats: int | None
                ) -> RateTarget:
    """The one rate target asked for, or the default --quality."""
    from gsvc_cli.codec.encoder.rate_control import RateTarget

    if quality is None and bpp is None and psnr is None and splats is None:
        quality = DEFAULT_QUALITY
    # UsageError for none-or-several / bad values
    return RateTarget(bpp=bpp, psnr=psnr, splats=splats, quality=quality)


def encode_command(
    source: Path = typer.Argument(..., help="The video to encode (y4m, yuv, mp4, mkv, png, ...; "
                                            "- for Y4M on standard input).",
                                  show_default=False),
    output: Path = typer.Option(..., "--output", "-o", help="The .gsvc file to write.",
                                show_default=False),
    quality: float | None = typer.Option(
        None, "--quality",
        help=f"Constant quality, 0-70, higher is better (default {DEFAULT_QUALITY:g} when no target is "
             "given): lambda = 2 ln2 x 10^(-Q/10) for every rate-distortion decision."),
    bpp: float | None = typer.Option(None, "--bpp",
                                     help="Target bits per pixel of the whole file, within 1%: a search "
                                          "over --quality (several whole encodes)."),
    psnr: float | None = typer.Option(None, "--psnr", help="Target PSNR in dB (YUV 6:1:1) per frame."),
    splats: int | None = typer.Option(None, "--splats", help="Fixed number of splats per frame."),
    preset: Preset = typer.Option(Preset.medium, "--preset", help="Speed/quality trade-off."),
    gop: int = typer.Option(60, "--gop", help="Longest GOP in frames (1 = all I-frames)."),
    scenecut: float = typer.Option(
        2.0, "--scenecut",
        help="Scene-cut sensitivity in dB: a P-frame whose warm start beats a coarse block picture "
             "of the frame by less than this becomes an I-frame (0: off). With --quality or --bpp, "
             "any value above 0 keeps the cut test of those modes on: a frame whose best moved "
             f"picture beats that block picture by less than {CUT_MARGIN_DB:g} dB is an I-frame."),
    seed: int = typer.Option(0, "--seed", help="Random seed of the fitter (same seed, same file)."),
    start: int = StartOption,
    frames: int | None = FramesOption,
    size: str | None = SizeOption,
    fps: str | None = FpsOption,
    pix_fmt: str | None = PixFmtOption,
    chunked: bool = typer.Option(
        False, "--chunked", help="Encode in independent chunks in this process (the bytes --workers gives)."),
    workers: int | None = typer.Option(
        None, "--workers", show_default=False,
        help="Encode chunks on N workers of a local Ray runtime (loopback only, token auth)."),
    ray_address: str | None = typer.Option(
        None, "--ray-address", show_default=False,
        help="Encode chunks on the existing Ray cluster at ADDR (with --workers, default $RAY_ADDRESS; "
             "'local': gsvc's own runtime)."),
    resume: bool = typer.Option(
        False, "--resume",
        help="Continue an interrupted chunked encode from its work folder .OUT.gsvc.parts/ "
             "(implies --chunked)."),
    overwrite: bool = OverwriteOption,
    no_overwrite: bool = NoOverwriteOption,
    quiet: bool = QuietOption,
    verbose: bool = VerboseOption,
) -> None:
    from gsvc_cli.codec.encoder.gop import EncoderSettings, encode_video
    from gsvc_cli.video import open_video

    overwrite = resolve_overwrite(overwrite, no_overwrite)
    settings = EncoderSettings(rate_target(quality, bpp, psnr, splats), preset.value, gop, scenecut, seed)
    if str(output) == "-":
        raise UsageError("-o -: gsvc encode writes a .gsvc file, which cannot go to standard output "
                         "(its frame index is written at the end)")
    if str(source) != "-":
        refuse_same_file(output, source)
    if output.suffix.lower() in VIDEO_SUFFIXES:
        raise UsageError(f"{output}: gsvc encode writes a .gsvc file, not {output.suffix}",
                         hint=f"name it {output.with_suffix('.gsvc').name}; gsvc decode makes videos")
    check_output_path(output, overwrite)  # fail before the slow part, not after it
    if workers is not None and ray_address is None:  # Ray's convention, as ray.init() follows it
        ray_address = os.environ.get("RAY_ADDRESS") or None
    if ray_address == "local":
        ray_address = None
        workers = workers or os.cpu_count() or 1
    if chunked or resume or workers is not None or ray_address:
        summary, fps = _encode_chunked(source, output, settings, start=start, frames=frames,
                                       size=parse_size(size), fps=parse_fps(fps), pix_fmt=pix_fmt,
                                       workers=workers, ray_address=ray_address, resume=resume,
                                       overwrite=overwrite, quiet=quiet)
        if verbose:
            stderr_console().print(frame_table(summary))
        if not quiet:
            stderr_console().print(summary_line(summary, fps), markup=False, soft_wrap=True)
            stderr_console().print(chunk_line(summary), markup=False, soft_wrap=True)
        return
    with open_video(source, size=parse_size(size), fps=parse_fps(fps), pix_fmt=pix_fmt, start=start,
                    frames=frames) as reader:
        info = reader.info
        count = info.frame_count  # None for a pipe: rate control then plans GOP by GOP
        with progress_renderer(quiet) as progress:
            report(progress, "encode", 0, count)  # starts the bar's clock before the first frame
            def reopen() -> Iterator[Frame]:
                """The same frames afresh, for each pass of a --bpp search."""
                with open_video(source, size=parse_size(size), fps=parse_fps(fps), pix_fmt=pix_fmt,
                                start=start, frames=frames) as again:
                    yield from again

            # A pipe cannot be read twice: its --bpp is planned in one pass.
            frames_in = reopen if settings.target.bpp is not None and str(source) != "-" else reader
            summary = encode_video(frames_in, info, output, settings, frame_count=count,
                                   overwrite=overwrite, progress=progress)
    if verbose:
        stderr_console().print(frame_table(summary))
    if not quiet:
        stderr_console().print(summary_line(summary, info.fps), markup=False, soft_wrap=True)


def _encode_chunked(source: Path, output: Path, settings: EncoderSettings, *, start: int, frames: int | None,
                    size: tuple[int, int] | None, fps: Fraction | None, pix_fmt: str | None,
                    workers: int | None, ray_address: str | None, resume: bool, overwrite: bool,
                    quiet: bool) -> tuple[ChunkedSummary, Fraction]:
    """Chunked encode, serial or on Ray (gsvc_cli.chunked, gsvc_cli.parallel)."""
    import contextlib

    from gsvc_cli.chunked.encode import SerialRunner, SourceSpec, encode_chunked
    from gsvc_cli.video import open_video

    with open_video(source, size=size, fps=fps, pix_fmt=pix_fmt, start=start, frames=frames) as reader:
        info = reader.info
    spec = SourceSpec.of(source, start, size, fps, pix_fmt)
    with progress_renderer(quiet) as progress, contextlib.ExitStack() as stack:
        if workers is None and not ray_address:
            runner = SerialRunner(progress)
        else:
            from gsvc_cli.parallel.ray_runtime import RayRunner

            runner = stack.enter_context(RayRunner(workers, ray_address))
        summary = encode_chunked(spec, info, output, settings, runner, frame_count=frames, resume=resume,
                                 overwrite=overwrite, progress=progress)
    return summary, info.fps


def chunk_line(summary: ChunkedSummary) -> str:
    """How a chunked encode was split and run."""
    cuts = f", {len(summary.cuts)} at cuts" if summary.cuts else ""
    resumed = f", {summary.resumed} resumed from the work folder" if summary.resumed else ""
    return f"{summary.chunks} chunk{'s' * (summary.chunks != 1)}{cuts}{resumed}; {summary.runner}"


def register(app: typer.Typer) -> None:
    """Add `gsvc encode` to the app."""
    app.command("encode", help=HELP, no_args_is_help=True)(encode_command)
