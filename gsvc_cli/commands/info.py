"""`gsvc info IN.gsvc`: what a .gsvc file holds, as ffprobe / x265 --log-level show for theirs."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from gsvc_cli.commands.common import stdout_console

if TYPE_CHECKING:
    from rich.table import Table

PATTERN_MAX_CHARS = 80  # longer I/P patterns are shown as run-lengths of GOPs

HELP = """Describe a .gsvc file, as ffprobe does for other videos.

Shows the size, frame rate (exact and decimal), frames, duration, GOPs and their pattern of
frame types (I: fitted from scratch; P: the previous splats updated; M: the previous picture
moved, no splats), splats per frame (of the I- and P-frames), bytes and bits per splat by frame
type, bpp of the whole file, the encoder's
coding parameters and the format version.

Every payload is entropy-decoded (no rendering, so it is quick) to count bits per splat, which also
checks the whole file: a damaged or truncated file gives a one-line error and exit status 1.
--json prints the same facts with stable keys, per-frame rows included; --frames adds the
per-frame table to the text output.

Examples:
gsvc info clip.gsvc
gsvc info clip.gsvc --frames  # one row per frame as well
gsvc info clip.gsvc --json | jq .bpp
"""


def gop_pattern(types: list[str]) -> str:
    """'IPPPIPP' -> 'IPPP IPP'; when that is long, run-lengths of GOPs by their P- and M-frame
    counts: 'IP59 x4, IP20M12'."""
    gops: list[str] = []
    for t in types:
        if t == "I" or not gops:
            gops.append(t)
        else:
            gops[-1] += t
    text = " ".join(gops)
    if len(text) <= PATTERN_MAX_CHARS:
        return text
    tokens = ["I" + "".join(f"{t}{g.count(t)}" for t in "PM" if t in g) for g in gops]
    runs: list[list[Any]] = []
    for tok in tokens:
        if runs and runs[-1][0] == tok:
            runs[-1][1] += 1
        else:
            runs.append([tok, 1])
    return ", ".join(tok if n == 1 else f"{tok} x{n}" for tok, n in runs)


def _fps_text(fps: Fraction) -> str:
    return str(fps.numerator) if fps.denominator == 1 else f"{fps.numerator}/{fps.denominator}"


def describe(path: Path) -> dict[str, Any]:
    """Everything `gsvc info` reports, as JSON-ready data (the keys are a stable interface)."""
    from gsvc_cli.codec.bitstream.container import GsvcReader
    from gsvc_cli.codec.bitstream.frame_coding import GROUPS, decode_values

    with GsvcReader(path) as reader:
        header, index, file_bytes = reader.header, reader.index, reader.file_size
        rows: list[dict[str, Any]] = []
        prev, memory = None, None
        for k in range(len(index)):
            record = reader.read_frame(k)
            decoded = decode_values(record.payload, prev if record.frame_type == "P" else None,
                                    f"{path}: frame {k}", record.frame_type, memory)
            memory = decoded.memory
            prev = decoded.values if record.frame_type != "M" else prev  # an M-frame has no splats
            stats = decoded.stats
            motion = decoded.motion if record.frame_type == "M" else None
            rows.append({
                "frame": k, "type": record.frame_type, "splats": stats.n_splats, "new": stats.n_new,
                "deleted": stats.n_deleted, "bytes": index[k].record_length,
                "payload_bits": stats.payload_bits,
                "bits_per_splat": (stats.payload_bits / stats.n_splats
                                   if stats.n_splats and record.frame_type != "M" else None),
                "bits_by_group": {g: round(v, 3) for g, v in stats.bits_by_group().items()},
                "field": None if motion is None else {  # an M-frame's block vectors
                    "cell": motion.cell, "cells": int(motion.vectors.shape[0] * motion.vectors.shape[1]),
                    "unit": "1/4 px" if motion.per_pixel == 4 else "1 px",
                    "overlapped": motion.overlapped, "filter": _filter_name(motion),
                    "residual_splats": stats.n_splats},  # kind 4: splats added to the moved picture
            })
    fps = Fraction(header.fps_num, header.fps_den)
    n = len(rows)
    pixels = header.width * header.height
    types = [r["type"] for r in rows]
    by_type: dict[str, Any] = {}
    for t in ("I", "P", "M"):
        sel = [r for r in rows if r["type"] == t]
        # An M-frame's bits are mostly its field: per residual splat they would mislead.
        splats = sum(r["splats"] for r in sel) if t != "M" else 0
        total = sum(r["bytes"] for r in sel)
        groups = {g: sum(r["bits_by_group"][g] for r in sel) / splats if splats else None
                  for g in (*GROUPS, "side")}
        by_type[t] = {
            "count": len(sel), "bytes_total": total, "bytes_mean": total / len(sel) if sel else 0.0,
            "bits_per_splat": sum(r["payload_bits"] for r in sel) / splats if splats else None,
            "bits_per_splat_by_group": groups,
        }
    splat_counts = [r["splats"] for r in rows if r["type"] != "M"] or [0]  # not an M-frame's residual
    gop_lengths: list[int] = []
    for t in types:
        if t == "I" or not gop_lengths:
            gop_lengths.append(1)
        else:
            gop_lengths[-1] += 1
    return {
        "path": str(path),
        "format_version": f"{header.version[0]}.{header.version[1]}",
        "file_bytes": file_bytes,
        "width": header.width,
        "height": header.height,
        "fps": _fps_text(fps),
        "fps_decimal": float(fps),
        "frame_count": n,
        "duration_seconds": float(n / fps),
        "bpp": 8.0 * file_bytes / (pixels * max(1, n)),
        "bitrate_kbps": 8.0 * file_bytes * float(fps) / max(1, n) / 1000.0,
        "colour": {"space": header.colour_space, "matrix": header.matrix, "range": header.colour_range},
        "params": dict(header.params),
        "gops": len(gop_lengths),
        "gop_lengths": gop_lengths,
        "gop_pattern": gop_pattern(types),
        "splats": {"min": min(splat_counts), "mean": sum(splat_counts) / len(splat_counts),
                   "max": max(splat_counts)},
        "frame_types": by_type,
        "frames": rows,
    }


def _overview(facts: dict[str, Any]) -> Table:
    from rich.table import Table
    from rich.text import Text

    table = Table(title=facts["path"], title_justify="left", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    mib = facts["file_bytes"] / (1 << 20)
    sp = facts["splats"]
    rows = [
        ("format", f".gsvc {facts['format_version']}"),
        ("file size", f"{facts['file_bytes']} bytes ({mib:.2f} MiB)"),
        ("frame size", f"{facts['width']}x{facts['height']}"),
        ("frame rate", f"{facts['fps']} ({facts['fps_decimal']:.3f} fps)"),
        ("frames", f"{facts['frame_count']} ({facts['duration_seconds']:.3f} s)"),
        ("bpp", f"{facts['bpp']:.4f} ({facts['bitrate_kbps']:.2f} kb/s)"),
        ("GOPs", f"{facts['gops']}: {facts['gop_pattern']}"),
        ("splats/frame", f"min {sp['min']}, mean {sp['mean']:.1f}, max {sp['max']}"),
        ("colour", "{space}, {matrix}, {range} range".format(**facts["colour"])),
    ]
    rows += [(f"param {k}", v) for k, v in facts["params"].items()]
    for field, value in rows:
        table.add_row(field, Text(value))
    return table


def _filter_name(motion: Any) -> str | None:
    """How an M-frame's quarter-pixel reads are interpolated (None for whole pixels)."""
    if motion.per_pixel == 1:
        return None
    return "8-tap" if motion.sharp else "cubic"


def _field_text(field: dict[str, Any] | None) -> str:
    if field is None:
        return ""
    text = f"{field['cell']}px, {field['unit']}" + (f" {field['filter']}" if field["filter"] else "")
    text += ", overlapped" if field["overlapped"] else ""
    return text + (f", +{field['residual_splats']} residual splats" if field["residual_splats"] else "")


def _types_tables(facts: dict[str, Any]) -> tuple[Table, Table]:
    """(count, bytes and bits/splat by frame type; bits/splat by parameter group and frame type)."""
    from rich.table import Table

    from gsvc_cli.codec.bitstream.frame_coding import GROUPS

    groups = (*GROUPS, "side")
    sizes = Table(title="by frame type", title_justify="left")
    for name in ("type", "count", "bytes", "bytes/frame", "bits/splat"):
        sizes.add_column(name, justify="left" if name == "type" else "right")
    split = Table(title="bits/splat by parameter group", title_justify="left")
    for name in ("type", *groups):
        split.add_column(name, justify="left" if name == "type" else "right")
    for t, s in facts["frame_types"].items():
        if s["count"]:
            sizes.add_row(t, str(s["count"]), str(s["bytes_total"]), f"{s['bytes_mean']:.1f}",
                          _number(s["bits_per_splat"]))
            if t != "M":  # no splats
                split.add_row(t, *(_number(s["bits_per_splat_by_group"][g]) for g in groups))
    sizes.caption = "bytes: whole frame records; bits/splat: payload bits over splats"
    return sizes, split


def _number(value: float | None) -> str:
    """Two decimals, or '-' where there is nothing to divide by (an M-frame's bits per splat)."""
    return "-" if value is None else f"{value:.2f}"


def _frames_table(facts: dict[str, Any]) -> Table:
    from rich.table import Table

    table = Table(title="frames", title_justify="left")
    for name in ("frame", "type", "splats", "new", "deleted", "bytes", "bits/splat", "M field"):
        table.add_column(name, justify="left" if name in ("type", "M field") else "right")
    for r in facts["frames"]:
        field = r["field"]
        table.add_row(str(r["frame"]), r["type"], str(r["splats"]), str(r["new"]), str(r["deleted"]),
                      str(r["bytes"]), _number(r["bits_per_splat"]),
                      _field_text(field))
    return table


def info_command(
    source: Path = typer.Argument(..., help="The .gsvc file to describe.", show_default=False),
    as_json: bool = typer.Option(False, "--json", help="Print JSON with stable keys (per-frame rows too)."),
    frames: bool = typer.Option(False, "--frames", help="Also list every frame."),
) -> None:
    facts = describe(source)
    if as_json:
        stdout_console().file.write(json.dumps(facts, indent=2) + "\n")
        return
    stdout_console().print(_overview(facts))
    for table in _types_tables(facts):
        stdout_console().print(table)
    if frames:
        stdout_console().print(_frames_table(facts))


def register(app: typer.Typer) -> None:
    """Add `gsvc info` to the app."""
    app.command("info", help=HELP, no_args_is_help=True)(info_command)
