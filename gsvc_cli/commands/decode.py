"""`gsvc decode IN.gsvc -o OUT`: render the splats of every frame back into a video."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from gsvc_cli.atomic import refuse_same_file
from gsvc_cli.commands.common import (
    NoOverwriteOption,
    OverwriteOption,
    QuietOption,
    StartOption,
    progress_renderer,
    resolve_overwrite,
    stderr_console,
)

if TYPE_CHECKING:  # the core imports torch: load it only when a command runs
    from gsvc_cli.codec.decoder import DecodeSummary

HELP = """Decode a .gsvc file into a video.

The output format follows the name: .y4m, raw .yuv, .mp4/.mkv/.mov (H.264, lossless unless --crf)
or a PNG sequence named with a pattern such as out_%04d.png. The pixel format is the one the
encoder's input had.

--start/--frames pick a range; decoding starts at the nearest I-frame before --start, so seeking
costs at most one GOP. A damaged frame stops the decode with exit status 1 and a message naming
it. With --ignore-errors (as ffmpeg's -err_detect ignore_err) the intact frames are written, the
damaged ones and the rest of their GOP (which depends on them) are left out and listed on stderr,
and the exit status is 0 as long as one frame could be decoded.

Examples:
gsvc decode in.gsvc -o out.y4m
gsvc decode in.gsvc -o out.mp4 --crf 18  # H.264 at a lossy quality instead of lossless
gsvc decode in.gsvc -o frames_%04d.png --start 30 --frames 10
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
    output: Path = typer.Option(..., "--output", "-o",
                                help="Output video: .y4m, .yuv, .mp4, .mkv or a pattern like out_%04d.png.",
                                show_default=False),
    start: int = StartOption,
    frames: int | None = typer.Option(None, "--frames", min=1, help="Decode at most this many frames."),
    crf: int | None = typer.Option(None, "--crf", min=0, max=51,
                                   help="H.264 quality for .mp4/.mkv/.mov (default: lossless)."),
    ignore_errors: bool = typer.Option(False, "--ignore-errors",
                                       help="Skip damaged frames instead of stopping (exit 0)."),
    overwrite: bool = OverwriteOption,
    no_overwrite: bool = NoOverwriteOption,
    quiet: bool = QuietOption,
) -> None:
    from gsvc_cli.codec.decoder import decode_video

    overwrite = resolve_overwrite(overwrite, no_overwrite)
    refuse_same_file(output, source)
    with progress_renderer(quiet) as progress:
        summary = decode_video(source, output, start=start, frames=frames, overwrite=overwrite,
                               ignore_errors=ignore_errors, crf=crf, progress=progress)
    if summary.bad_frames:  # only with --ignore-errors; said even with -q, like a warning
        n = len(summary.bad_frames)
        stderr_console.print(
            f"gsvc: warning: {source}: {n} damaged or undecodable frame{'s' if n != 1 else ''} "
            f"skipped ({_ranges(summary.bad_frames)}); {output} has {summary.frames} frames",
            markup=False, soft_wrap=True)
    if not quiet:
        stderr_console.print(summary_line(summary, output), markup=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add `gsvc decode` to the app."""
    app.command("decode", help=HELP, no_args_is_help=True)(decode_command)
