"""`gsvc decode IN.gsvc -o OUT`: render the splats of every frame back into a video."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from gsvc_cli.atomic import check_output_path, refuse_same_file
from gsvc_cli.commands.common import (
    NoOverwriteOption,
    OverwriteOption,
    QuietOption,
    StartOption,
    is_stdout_terminal,
    progress_renderer,
    resolve_overwrite,
    stderr_console,
)
from gsvc_cli.errors import UsageError


class OutFormat(enum.StrEnum):
    """What -o - writes."""

    y4m = "y4m"
    yuv = "yuv"


if TYPE_CHECKING:  # the core imports torch: load it only when a command runs
    from gsvc_cli.codec.decoder import DecodeSummary

HELP = """Decode a .gsvc file into a video.

The output format follows the name: .y4m, raw .yuv, .mp4/.mkv/.mov (H.264) or a PNG sequence named
with a pattern such as out_%04d.png. "-o -" writes Y4M (or raw with --format yuv) to standard
output, for pipes into ffmpeg, x264 or a player; messages and progress stay on standard error.

.mp4/.mkv/.mov are made to be watched: H.264 High profile, yuv420p, --crf 18 (lower is better
and bigger), which browsers, phones and players accept. --lossless writes the exact decoded frames
instead (qp 0 in the source's pixel format, e.g. High 4:4:4 Predictive), which many players
refuse; `gsvc eval` wants that, or .y4m. Y4M and .yuv keep the source's pixel format (4:4:4 YUV
for an RGB source such as a PNG); --pix-fmt asks for another. The source's sample aspect ratio and
colour description are written into the output.

--show-splats PNG draws the splats of the first decoded frame (their 1-sigma ellipses over the
frame), to see what the codec made of it; -o can then be left out.

--start/--frames pick a range; decoding starts at the nearest I-frame before --start, so seeking
costs at most one GOP. A damaged frame stops the decode with exit status 1 and a message naming
it. With --ignore-errors (as ffmpeg's -err_detect ignore_err) the intact frames are written, the
damaged ones and the rest of their GOP (which depends on them) are left out and listed on stderr,
and the exit status is 0 as long as one frame could be decoded.

Examples:
gsvc decode in.gsvc -o out.y4m
gsvc decode in.gsvc -o out.mp4  # plays in a browser
gsvc decode in.gsvc -o exact.mkv --lossless  # exact frames, for gsvc eval
gsvc decode in.gsvc -o - | ffmpeg -i - -c:v libx264 out.mp4
gsvc decode in.gsvc -o frames_%04d.png --start 30 --frames 10
gsvc decode in.gsvc --show-splats splats.png --start 30 --frames 1
gsvc decode damaged.gsvc -o out.y4m --ignore-errors  # keep what is intact
"""


def _ranges(frames: list[int]) -> str:
    """[1, 2, 3, 7] -> '1-3, 7'."""
    parts: list[str] = []
    run_start = prev = None
    for k in frames + [None]:
        if prev is not None and k == prev + 1:
            prev = k
            continue
        if run_start is not None:
            parts.append(str(run_start) if run_start == prev else f"{run_start}-{prev}")
        run_start = prev = k
    return ", ".join(parts)


def summary_line(summary: DecodeSummary, output: Path) -> str:
    speed = summary.frames / summary.seconds if summary.seconds > 0 else float("inf")
    return (f"decoded {summary.frames} frames -> {output} in {summary.seconds:.2f} s "
            f"({speed:.2f} fps)")


def decode_command(
    source: Path = typer.Argument(..., help="The .gsvc file to decode.", show_default=False),
    output: Path | None = typer.Option(None, "--output", "-o",
                                       help="Output video: .y4m, .yuv, .mp4, .mkv, a pattern like "
                                            "out_%04d.png, or - for Y4M on standard output.",
                                       show_default=False),
    start: int = StartOption,
    frames: int | None = typer.Option(None, "--frames", min=1, help="Decode at most this many frames."),
    crf: int | None = typer.Option(None, "--crf", min=0, max=51,
                                   help="H.264 quality for .mp4/.mkv/.mov (default 18; lower is better)."),
    lossless: bool = typer.Option(False, "--lossless",
                                  help="Exact H.264 (qp 0, source pixel format) for .mp4/.mkv/.mov: "
                                       "what gsvc eval needs; many players refuse it."),
    pix_fmt: str | None = typer.Option(None, "--pix-fmt",
                                       help="Output pixel format (yuv420p, yuv444p, yuv420p10le, ...)."),
    out_format: OutFormat | None = typer.Option(None, "--format",
                                                help="y4m or yuv: the format of -o - (default y4m)."),
    show_splats: Path | None = typer.Option(None, "--show-splats",
                                            help="Also draw the first decoded frame's splats into this PNG.",
                                            show_default=False),
    ignore_errors: bool = typer.Option(False, "--ignore-errors",
                                       help="Skip damaged frames instead of stopping (exit 0)."),
    overwrite: bool = OverwriteOption,
    no_overwrite: bool = NoOverwriteOption,
    quiet: bool = QuietOption,
) -> None:
    from gsvc_cli.codec.decoder import decode_video

    overwrite = resolve_overwrite(overwrite, no_overwrite)
    if output is None and show_splats is None:
        raise UsageError("give -o/--output (or --show-splats PNG)")
    for target in (output, show_splats):
        if target is not None and str(target) != "-":
            refuse_same_file(target, source)
    if show_splats is not None:
        if show_splats.suffix.lower() != ".png":
            raise UsageError(f"{show_splats}: --show-splats writes a .png picture")
        check_output_path(show_splats, overwrite)
    drawn: list = []

    def keep_first(decoded) -> None:  # the splats of the first decoded frame, for the picture
        if show_splats is not None and not drawn:
            drawn.append(decoded)

    options = {"lossless": lossless, "pix_fmt": pix_fmt,
               "fmt": out_format.value if out_format is not None else None}
    if output is not None and str(output) == "-" and is_stdout_terminal():
        raise UsageError("-o -: standard output is a terminal, not a pipe",
                         hint="pipe it into a program, e.g. gsvc decode in.gsvc -o - | ffmpeg -i - out.mp4")
    if out_format is not None and (output is None or str(output) != "-"):
        raise UsageError("--format applies to -o - (files take their format from the name)")
    with progress_renderer(quiet) as progress:
        summary = decode_video(source, output, start=start, frames=frames, overwrite=overwrite,
                               ignore_errors=ignore_errors, crf=crf, progress=progress,
                               writer_options=options, on_frame=keep_first)
    if show_splats is not None and drawn:
        from gsvc_cli.pictures import write_splat_picture

        write_splat_picture(source, drawn[0], show_splats, overwrite)
    if summary.bad_frames:  # only with --ignore-errors; said even with -q, like a warning
        n = len(summary.bad_frames)
        stderr_console().print(
            f"gsvc: warning: {source}: {n} damaged or undecodable frame{'s' if n != 1 else ''} "
            f"skipped ({_ranges(summary.bad_frames)}); {output} has {summary.frames} frames",
            markup=False, soft_wrap=True)
    if not quiet:
        stderr_console().print(summary_line(summary, output if output is not None else show_splats),
                             markup=False, soft_wrap=True)
        if show_splats is not None:
            stderr_console().print(f"splats of frame {drawn[0].index} -> {show_splats}", markup=False,
                                 soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add `gsvc decode` to the app."""
    app.command("decode", help=HELP, no_args_is_help=True)(decode_command)
