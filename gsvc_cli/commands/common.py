"""CLI helpers shared by subcommands: option conventions, consoles, and the progress bar.

Every subcommand uses the same spelling for the same idea (`-y/--overwrite`, `-q/--quiet`, ...), so
these options are defined once here. Tables go to stdout; messages and progress go to stderr, so
`gsvc eval --json a b > out.json` stays clean.
"""

from __future__ import annotations

import contextlib
import functools
import sys
from collections.abc import Iterator
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import typer

from gsvc_cli.errors import UsageError
from gsvc_cli.progress import ProgressCallback, ProgressEvent

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import TaskID


# Consoles: results (tables, JSON) on stdout, everything else on stderr. Each is made on first use:
# importing rich is ~15 ms of every start-up, and a quiet decode never prints.
@functools.cache
def stdout_console() -> Console:
    """The console for results (tables, JSON)."""
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True)


@functools.cache
def stderr_console() -> Console:
    """The console for messages and progress."""
    from rich.console import Console

    return Console(stderr=True, highlight=False)


# Reusable option definitions (Typer copies an OptionInfo per parameter, sharing them is fine).
OverwriteOption = typer.Option(False, "--overwrite", "-y", help="Replace output files that exist.")
NoOverwriteOption = typer.Option(
    False, "--no-overwrite", "-n", help="Never replace output files; fail if one exists (the default)."
)
QuietOption = typer.Option(False, "--quiet", "-q", help="No progress bar and no summary on stderr.")
VerboseOption = typer.Option(False, "--verbose", "-v", help="Print extra detail on stderr.")
StartOption = typer.Option(0, "--start", min=0, help="First frame to read (0-based).")
FramesOption = typer.Option(None, "--frames", min=1, help="Read at most this many frames.")
SizeOption = typer.Option(None, "--size", help="Frame size WxH, needed for raw .yuv input.")
FpsOption = typer.Option(None, "--fps", help="Frame rate (e.g. 25 or 30000/1001), needed for raw .yuv.")
PixFmtOption = typer.Option(
    None, "--pix-fmt", help="Pixel format of raw .yuv input: yuv420p, yuv444p, yuv420p10le, ..."
)


def resolve_overwrite(overwrite: bool, no_overwrite: bool) -> bool:
    """Combine -y and -n into one decision; both at once is a usage error."""
    if overwrite and no_overwrite:
        raise UsageError("-y/--overwrite and -n/--no-overwrite cannot be used together")
    return overwrite


def parse_size(text: str | None) -> tuple[int, int] | None:
    """'352x288' -> (352, 288); None stays None."""
    if text is None:
        return None
    parts = text.lower().replace("*", "x").split("x")
    try:
        width, height = (int(p) for p in parts)
    except ValueError:
        raise UsageError(f"--size {text!r}: expected WxH, e.g. 352x288") from None
    if width <= 0 or height <= 0:
        raise UsageError(f"--size {text!r}: width and height must be positive")
    return width, height


def parse_fps(text: str | None) -> Fraction | None:
    """'30000/1001' or '29.97' or '25' -> exact Fraction (decimals kept as written)."""
    if text is None:
        return None
    try:
        fps = Fraction(text)
    except (ValueError, ZeroDivisionError):
        raise UsageError(f"--fps {text!r}: expected a number or a fraction like 30000/1001") from None
    if fps <= 0:
        raise UsageError(f"--fps {text!r}: must be positive")
    return fps


def _format_info(info: dict[str, Any]) -> str:
    parts = []
    for key, value in info.items():
        if isinstance(value, float):
            parts.append(f"{key} {value:.3f}" if abs(value) < 10 else f"{key} {value:.2f}")
        else:
            parts.append(f"{key} {value}")
    return "  ".join(parts)


@contextlib.contextmanager
def progress_renderer(quiet: bool = False, *, console: Console | None = None,
                      force: bool = False) -> Iterator[ProgressCallback]:
    """Yield a ProgressCallback that draws one rich bar per stage on stderr.

    No bar is drawn when `quiet` or when stderr is not a terminal (scripts and logs stay clean),
    unless `force`. Each event's `info` (type, psnr, bpp, ...) is shown after the bar, with an ETA.
    """
    if quiet:
        yield lambda event: None
        return
    console = console or stderr_console()
    if not (force or console.is_terminal):
        yield lambda event: None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        console=console,
        transient=False,
    )
    tasks: dict[str, TaskID] = {}

    def callback(event: ProgressEvent) -> None:
        task = tasks.get(event.stage)
        if task is None:
            task = progress.add_task(event.stage, total=event.total, info="")
            tasks[event.stage] = task
        progress.update(task, completed=event.done, total=event.total, info=_format_info(event.info))

    with progress:
        yield callback


def is_stdout_terminal() -> bool:
    """True when stdout is a terminal (rich tables) rather than a pipe."""
    return sys.stdout.isatty()
