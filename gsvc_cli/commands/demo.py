"""`gsvc demo`: the main job on a fresh machine: encode a real clip, decode it, measure it."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import typer
from rich.table import Table

from gsvc_cli.atomic import check_output_path
from gsvc_cli.commands.common import (
    NoOverwriteOption,
    OverwriteOption,
    QuietOption,
    progress_renderer,
    resolve_overwrite,
    stderr_console,
    stdout_console,
)
from gsvc_cli.commands.encode import Preset, summary_line
from gsvc_cli.errors import InputError, UsageError
from gsvc_cli.progress import report

DEMO_CLIP = Path(__file__).resolve().parents[1] / "data" / "vt2people_320x192_5f.y4m"
DEFAULT_FRAMES = 3
DEFAULT_BPP = 0.4
ENCODED_NAME = "demo.gsvc"
DECODED_NAME = "demo_decoded.y4m"

HELP = f"""Encode, decode and evaluate a small real clip bundled with gsvc.

Shows the codec working end to end on this machine. The clip is a webcam call with two people
(320x192, 12 fps, from openh264, BSD-2-Clause; see gsvc_cli/data/SOURCE.md).

The clip's first --frames frames (default {DEFAULT_FRAMES}, at most 5) are encoded at --bpp
(default {DEFAULT_BPP:g}) with --preset (default fast), the .gsvc file is decoded to .y4m, and the
decoded video is measured against the clip: PSNR, MS-SSIM and VMAF, with the bpp and the time each
step took, printed as a table. On 2 CPU cores and no GPU this takes a minute or two.

Outputs ({ENCODED_NAME}, {DECODED_NAME}) go to --out-dir, created if needed and kept; existing
outputs there are refused unless -y. Without --out-dir they go to a new temporary directory that is
removed at the end unless --keep.

Examples:
gsvc demo
gsvc demo --frames 5 --preset medium --keep  # longer, better, and keep the files
gsvc demo --bpp 0.2 --out-dir demo_out
"""


def _figure_table(rows: list[tuple[str, str]], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for name, value in rows:
        table.add_row(name, value)
    return table


def demo_command(
    bpp: float = typer.Option(DEFAULT_BPP, "--bpp", help="Target bits per pixel."),
    preset: Preset = typer.Option(Preset.fast, "--preset", help="Speed/quality trade-off."),
    frames: int = typer.Option(DEFAULT_FRAMES, "--frames", min=1, max=5,
                               help="How many frames of the bundled clip to encode."),
    out_dir: Path | None = typer.Option(None, "--out-dir",
                                        help="Directory for the outputs (default: a new temporary one)."),
    keep: bool = typer.Option(False, "--keep", help="Keep the temporary output directory."),
    overwrite: bool = OverwriteOption,
    no_overwrite: bool = NoOverwriteOption,
    quiet: bool = QuietOption,
) -> None:
    from gsvc_cli.codec.encoder.gop import EncoderSettings, encode_video
    from gsvc_cli.codec.encoder.rate_control import RateTarget
    from gsvc_cli.metrics.evaluate import DEFAULT_METRICS, evaluate
    from gsvc_cli.video import open_video

    overwrite = resolve_overwrite(overwrite, no_overwrite)
    settings = EncoderSettings(RateTarget(bpp=bpp), preset.value)  # UsageError for a bad --bpp
    if not DEMO_CLIP.is_file():
        raise InputError(f"{DEMO_CLIP}: the bundled demo clip is missing",
                         hint="reinstall gsvc; the clip ships as package data")
    temporary = out_dir is None
    if out_dir is None:
        out_dir = Path(tempfile.mkdtemp(prefix="gsvc-demo-"))
    elif out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"{out_dir}: exists and is not a directory (--out-dir)")
    else:
        out_dir.mkdir(parents=True, exist_ok=True)
    encoded, decoded = out_dir / ENCODED_NAME, out_dir / DECODED_NAME
    for path in (encoded, decoded):
        check_output_path(path, overwrite)
    if not quiet:
        stderr_console.print(f"gsvc demo: {frames} frames of {DEMO_CLIP.name}, --bpp {bpp:g} --preset "
                             f"{preset.value}; outputs in {out_dir}", markup=False, soft_wrap=True)
    try:
        with open_video(DEMO_CLIP, frames=frames) as reader, progress_renderer(quiet) as progress:
            info = reader.info
            count = info.frame_count or frames
            report(progress, "encode", 0, count)  # starts the bar's clock before the first frame
            summary = encode_video(reader, info, encoded, settings, frame_count=count,
                                   overwrite=overwrite, progress=progress)
        if not quiet:
            stderr_console.print(summary_line(summary, info.fps), markup=False, soft_wrap=True)
        from gsvc_cli.codec.decoder import decode_video  # after encoding: keeps startup short

        with progress_renderer(quiet) as progress:
            decoding = decode_video(encoded, decoded, overwrite=overwrite, progress=progress)
        t0 = time.perf_counter()
        with progress_renderer(quiet) as progress:
            result = evaluate(DEMO_CLIP, decoded, DEFAULT_METRICS, frames, progress)
        eval_seconds = time.perf_counter() - t0
    finally:
        if temporary and not keep:
            shutil.rmtree(out_dir, ignore_errors=True)
    n = len(summary.frames)
    n_i = sum(f.frame_type == "I" for f in summary.frames)
    mean = result.mean
    rows = [
        ("frames (I/P)", f"{n} ({n_i}/{n - n_i})"),
        ("file size", f"{summary.file_bytes} bytes"),
        ("bpp (target)", f"{summary.bpp:.4f} ({bpp:g})"),
        ("PSNR YUV 6:1:1 (dB)", f"{mean['psnr_yuv']:.2f}"),
        ("PSNR Y (dB)", f"{mean['psnr_y']:.2f}"),
        ("PSNR RGB (dB)", f"{mean['psnr_rgb']:.2f}"),
        ("MS-SSIM Y", f"{mean['msssim_y']:.4f}"),
        ("VMAF (vmaf_v0.6.1)", f"{mean['vmaf']:.2f}"),
        ("encode time (s)", f"{summary.seconds:.1f} ({summary.seconds / max(1, n):.1f} s/frame)"),
        ("decode time (s)", f"{decoding.seconds:.2f}"),
        ("evaluate time (s)", f"{eval_seconds:.2f}"),
    ]
    table = _figure_table(rows, f"gsvc demo: {DEMO_CLIP.name}, {info.width}x{info.height}, "
                                f"--preset {preset.value}")
    table.caption = (f"outputs kept in {out_dir}" if not temporary or keep
                     else f"{out_dir} removed (use --keep or --out-dir to keep the outputs)")
    stdout_console.print(table)


def register(app: typer.Typer) -> None:
    """Add `gsvc demo` to the app."""
    app.command("demo", help=HELP)(demo_command)
