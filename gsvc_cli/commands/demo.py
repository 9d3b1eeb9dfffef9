"""`gsvc demo`: the main job on a fresh machine: encode a real clip, decode it, measure it, show it."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer

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

if TYPE_CHECKING:
    from rich.table import Table

DEMO_CLIP = Path(__file__).resolve().parents[1] / "data" / "cars_320x240_5f.y4m"
DEFAULT_FRAMES = 3
DEFAULT_BPP = 0.4
ENCODED_NAME = "demo.gsvc"
DECODED_NAME = "demo_decoded.y4m"
X264_STREAM_NAME = "demo_x264.264"
X264_DECODED_NAME = "demo_x264_decoded.y4m"
COMPARE_NAME = "demo_compare.png"
SPLATS_NAME = "demo_splats.png"
OUTPUT_NAMES = (ENCODED_NAME, DECODED_NAME, X264_STREAM_NAME, X264_DECODED_NAME, COMPARE_NAME, SPLATS_NAME)

HELP = f"""Encode, decode and evaluate a small real clip bundled with gsvc, next to libx264.

Shows the codec working end to end on this machine, and honestly where it stands. The clip is
traffic on a road seen by a static camera (320x240, 25 fps, from intel/libvpl, MIT; see
gsvc_cli/data/SOURCE.md).

The clip's first --frames frames (default {DEFAULT_FRAMES}, at most 5) are encoded at --bpp
(default {DEFAULT_BPP:g}) with --preset (default fast), the .gsvc file is decoded to .y4m, and
libx264 (preset medium) encodes the same frames at the same bpp (the largest stream not above
gsvc's; x264's settings SEI not counted). Both are measured against the clip: PSNR, MS-SSIM and
VMAF, with the bpp and the time each step took, printed as one table. On 2 CPU cores and no GPU
this takes a minute or two.

Two pictures are written too: {COMPARE_NAME}, the first frame as source | gsvc | libx264 labelled
with bpp and PSNR, and {SPLATS_NAME}, the splats of that frame drawn as ellipses over it (any
.gsvc file: gsvc decode FILE --show-splats PNG).

Outputs ({", ".join(OUTPUT_NAMES)}) go to --out-dir, created if needed and kept; existing
outputs there are refused unless -y. Without --out-dir they go to a new temporary directory that is
removed at the end unless --keep.

Examples:
gsvc demo --out-dir demo_out  # then look at demo_out/{COMPARE_NAME}
gsvc demo --frames 5 --preset medium --keep  # longer, better, and keep the files
gsvc demo --bpp 0.2 --out-dir demo_out -y
"""


def _figure_table(rows: list[tuple[str, str, str]], title: str) -> Table:
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    table.add_column("figure")
    table.add_column("gsvc", justify="right")
    table.add_column("libx264", justify="right")
    for name, ours, theirs in rows:
        table.add_row(name, ours, theirs)
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
    from gsvc_cli.video import open_video, open_writer

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
    paths = {name: out_dir / name for name in OUTPUT_NAMES}
    for path in paths.values():
        check_output_path(path, overwrite)
    encoded, decoded = paths[ENCODED_NAME], paths[DECODED_NAME]
    if not quiet:
        stderr_console().print(f"gsvc demo: {frames} frames of {DEMO_CLIP.name}, --bpp {bpp:g} --preset "
                             f"{preset.value}; outputs in {out_dir}", markup=False, soft_wrap=True)
    try:
        with open_video(DEMO_CLIP, frames=frames) as reader:
            info = reader.info
            source = list(reader)  # at most 5 small frames: gsvc and libx264 both take them
        count = len(source)
        with progress_renderer(quiet) as progress:
            report(progress, "encode", 0, count)  # starts the bar's clock before the first frame
            # a function of the frames, not the frames: --bpp is then the encoder's search over
            # --quality (a few whole encodes of these small frames), as `gsvc encode --bpp` runs it
            summary = encode_video(lambda: iter(source), info, encoded, settings, frame_count=count,
                                   overwrite=overwrite, progress=progress)
        if not quiet:
            stderr_console().print(summary_line(summary, info.fps), markup=False, soft_wrap=True)
        from gsvc_cli.codec.decoder import decode_video  # after encoding: keeps startup short

        first = []
        with progress_renderer(quiet) as progress:
            decoding = decode_video(encoded, decoded, overwrite=overwrite, progress=progress,
                                    on_frame=lambda d: first.append(d) if not first else None)
        # libx264 at the bpp gsvc really spent, on the same frames
        from gsvc_cli.video.anchor import write_stream, x264_at_bpp

        t0 = time.perf_counter()
        anchor = x264_at_bpp(source, info, summary.bpp)
        x264_seconds = time.perf_counter() - t0
        write_stream(anchor.stream, paths[X264_STREAM_NAME], overwrite)
        with open_writer(paths[X264_DECODED_NAME], info.with_(pix_fmt="yuv420p"),
                         overwrite=overwrite) as writer:
            for frame in anchor.frames:
                writer.write(frame)
        t0 = time.perf_counter()
        with progress_renderer(quiet) as progress:
            result = evaluate(DEMO_CLIP, decoded, DEFAULT_METRICS, frames, progress)
        eval_seconds = time.perf_counter() - t0
        with progress_renderer(quiet) as progress:
            x264_result = evaluate(DEMO_CLIP, paths[X264_DECODED_NAME], DEFAULT_METRICS, frames, progress)
        from gsvc_cli.pictures import rgb_array, save_png, side_by_side, splat_picture

        with open_video(decoded, frames=1) as reader:
            ours = next(iter(reader))
        ours_psnr, theirs_psnr = result.frames[0]["psnr_yuv"], x264_result.frames[0]["psnr_yuv"]
        save_png(side_by_side([
            (rgb_array(source[0]), f"source ({DEMO_CLIP.name}, frame 0)"),
            (rgb_array(ours), f"gsvc: {summary.bpp:.3f} bpp, PSNR YUV {ours_psnr:.2f} dB"),
            (rgb_array(anchor.frames[0]), f"libx264: {anchor.bpp:.3f} bpp, PSNR YUV {theirs_psnr:.2f} dB"),
        ]), paths[COMPARE_NAME], overwrite)
        splats = first[0]
        save_png(splat_picture(rgb_array(ours), splats.splats,
                               f"gsvc frame 0: {splats.n_splats} splats (1-sigma ellipses)"),
                 paths[SPLATS_NAME], overwrite)
    finally:
        if temporary and not keep:
            shutil.rmtree(out_dir, ignore_errors=True)
    n = len(summary.frames)
    n_i = sum(f.frame_type == "I" for f in summary.frames)
    n_m = sum(f.frame_type == "M" for f in summary.frames)
    mean, theirs = result.mean, x264_result.mean
    x264_bytes = round(anchor.bpp * info.width * info.height * n / 8)
    rows = [
        ("frames (I/P/M)", f"{n} ({n_i}/{n - n_i - n_m}/{n_m})", f"{len(anchor.frames)}"),
        ("file size (bytes)", f"{summary.file_bytes}", f"{x264_bytes}"),
        ("bpp (target)", f"{summary.bpp:.4f} ({bpp:g})", f"{anchor.bpp:.4f} (crf {anchor.crf:.1f})"),
    ]
    for key, name, spec in (("psnr_yuv", "PSNR YUV 6:1:1 (dB)", ".2f"), ("psnr_y", "PSNR Y (dB)", ".2f"),
                            ("psnr_rgb", "PSNR RGB (dB)", ".2f"), ("msssim_y", "MS-SSIM Y", ".4f"),
                            ("vmaf", "VMAF (vmaf_v0.6.1)", ".2f")):
        rows.append((name, format(mean[key], spec), format(theirs[key], spec)))
    rows += [
        ("encode time (s)", f"{summary.seconds:.1f} ({summary.seconds / max(1, n):.1f} s/frame)",
         f"{x264_seconds:.2f} (CRF search)"),
        ("decode time (s)", f"{decoding.seconds:.2f}", ""),
        ("evaluate time (s)", f"{eval_seconds:.2f}", ""),
    ]
    table = _figure_table(rows, f"gsvc demo: {DEMO_CLIP.name}, {info.width}x{info.height}, "
                                f"--preset {preset.value}, against libx264 --preset medium")
    table.caption = (f"outputs kept in {out_dir}: {COMPARE_NAME} and {SPLATS_NAME} to look at"
                     if not temporary or keep
                     else f"{out_dir} removed (use --keep or --out-dir to keep the outputs and pictures)")
    stdout_console().print(table)


def register(app: typer.Typer) -> None:
    """Add `gsvc demo` to the app."""
    app.command("demo", help=HELP)(demo_command)
