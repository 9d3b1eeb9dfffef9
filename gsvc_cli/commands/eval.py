"""`gsvc eval REF DIST`: measure a decoded video against its source, the way codec people do."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from gsvc_cli.commands.common import (
    FpsOption,
    PixFmtOption,
    QuietOption,
    SizeOption,
    StartOption,
    parse_fps,
    parse_size,
    progress_renderer,
    stdout_console,
)
from gsvc_cli.errors import UsageError

if TYPE_CHECKING:
    from rich.table import Table

    from gsvc_cli.metrics.evaluate import EvalResult

HELP = """Compare DIST with the reference REF: PSNR (Y, U, V, 6:1:1 YUV, RGB), MS-SSIM (Y, RGB),
8x8 SSIM on Y, VMAF (vmaf_v0.6.1). REF and DIST may be in different formats (y4m, yuv, mp4,
mkv, png); sizes and frame counts must match unless --frames N compares the first N frames.
Prints the mean of every figure as a table; --json or --csv give per-frame values too.

To measure a .gsvc file, decode it to .y4m (or .mp4/.mkv with --lossless): gsvc decode's default
.mp4 is made for watching and adds H.264's own loss.

Examples:
gsvc eval source.y4m decoded.y4m
gsvc eval source.y4m exact.mkv  # from gsvc decode in.gsvc -o exact.mkv --lossless
gsvc eval source.y4m decoded.y4m --metrics psnr,msssim --json > scores.json
gsvc eval ref.yuv dist.yuv --size 352x288 --fps 25 --pix-fmt yuv420p
gsvc eval long.mp4 long_x264.mp4 --frames 100
"""

_LABELS = {
    "psnr_y": "PSNR Y (dB)", "psnr_u": "PSNR U (dB)", "psnr_v": "PSNR V (dB)",
    "psnr_yuv": "PSNR YUV 6:1:1 (dB)", "psnr_rgb": "PSNR RGB (dB)", "ssim_y": "SSIM Y (8x8)",
    "msssim_y": "MS-SSIM Y", "msssim_rgb": "MS-SSIM RGB", "vmaf": "VMAF (vmaf_v0.6.1)",
}


def _format(name: str, value: float) -> str:
    return f"{value:.4f}" if name.startswith(("ssim", "msssim")) else f"{value:.3f}"


def _table(result: EvalResult) -> Table:
    from rich.table import Table

    from gsvc_cli.metrics.evaluate import fps_text

    ref, dist = result.reference, result.distorted
    table = Table(title=f"{dist.path} vs {ref.path}", title_justify="left")
    table.add_column("metric")
    table.add_column("mean", justify="right")
    table.add_column("min", justify="right")
    table.add_column("max", justify="right")
    for name in result.columns:
        values = [row[name] for row in result.frames]
        table.add_row(_LABELS.get(name, name), _format(name, result.mean[name]),
                      _format(name, min(values)), _format(name, max(values)))
    table.caption = (f"{len(result.frames)} frames, {ref.width}x{ref.height} {ref.pix_fmt}, "
                     f"{fps_text(ref.fps)} fps")
    return table


def _csv(result: EvalResult) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["frame", *result.columns])
    for row in result.frames:
        writer.writerow([row["frame"], *(f"{row[c]:.6f}" for c in result.columns)])
    writer.writerow(["mean", *(f"{result.mean[c]:.6f}" for c in result.columns)])
    return out.getvalue()


def eval_command(
    reference: Path = typer.Argument(..., help="The reference (source) video.", show_default=False),
    distorted: Path = typer.Argument(..., help="The distorted (decoded) video.", show_default=False),
    metrics: str = typer.Option("psnr,msssim,vmaf", "--metrics", "-m",
                                help="Comma-separated: psnr, ssim, msssim, vmaf."),
    frames: int | None = typer.Option(None, "--frames", min=1,
                                      help="Compare only the first N frames (after --start)."),
    start: int = StartOption,
    as_json: bool = typer.Option(False, "--json", help="Print JSON (means and per-frame values)."),
    as_csv: bool = typer.Option(False, "--csv", help="Print CSV: one row per frame, then the means."),
    size: str | None = SizeOption,
    fps: str | None = FpsOption,
    pix_fmt: str | None = PixFmtOption,
    quiet: bool = QuietOption,
) -> None:
    if as_json and as_csv:
        raise UsageError("--json and --csv cannot be used together")
    # imported here so `gsvc --help` and other commands do not pay for torch
    from gsvc_cli.metrics.evaluate import evaluate, parse_metrics

    chosen = parse_metrics(metrics)
    raw = {"size": parse_size(size), "fps": parse_fps(fps), "pix_fmt": pix_fmt}
    options = {k: v for k, v in raw.items() if v is not None}

    def for_input(path: Path) -> dict:
        return options if path.suffix.lower() in (".yuv", ".raw") else {
            k: v for k, v in options.items() if k == "fps"}

    with progress_renderer(quiet or as_json or as_csv) as progress:
        result = evaluate(reference, distorted, chosen, frames, progress, start=start,
                          ref_options=for_input(reference), dist_options=for_input(distorted))
    if as_json:
        stdout_console().file.write(json.dumps(result.to_dict(), indent=2) + "\n")
    elif as_csv:
        stdout_console().file.write(_csv(result))
    else:
        stdout_console().print(_table(result))


def register(app: typer.Typer) -> None:
    """Add `gsvc eval` to the app."""
    app.command("eval", help=HELP, no_args_is_help=True)(eval_command)
