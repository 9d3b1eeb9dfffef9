"""Write outputs atomically: a temp file beside the target, renamed into place only on success.

This is how every command honours "no partial output file" and "never overwrite an input": the
target appears complete or not at all, and an interrupted run leaves nothing behind. SIGTERM and
SIGHUP count as interruptions too: while an atomic output is open they raise `Terminated`, so the
same cleanup runs as for Ctrl-C instead of the process dying mid-file.
"""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from gsvc_cli.errors import UsageError

TERMINATING_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class Terminated(BaseException):
    """SIGTERM or SIGHUP arrived: unwinds like Ctrl-C so every `finally` and cleanup runs.

    Not a KeyboardInterrupt: Typer turns those into a silent exit 130, and a terminated gsvc
    should say so and exit with 128 + the signal number, as a shell reports it."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"terminated by {signal.Signals(signum).name}")
        self.signum = signum


@contextlib.contextmanager
def signals_raise() -> Iterator[None]:
    """While the block runs, SIGTERM and SIGHUP raise `Terminated` in the main thread.

    Without this, Python dies on SIGTERM without unwinding, leaving temp files behind. Signals that
    were ignored (e.g. SIGHUP under nohup) stay ignored; outside the main thread this does nothing
    (only the main thread may set handlers). The previous handlers come back afterwards.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise Terminated(signum)

    previous = {}
    for sig in TERMINATING_SIGNALS:
        if signal.getsignal(sig) is not signal.SIG_IGN:
            previous[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def check_output_path(path: Path, overwrite: bool) -> None:
    """Refuse a target that exists (unless `overwrite`), is a directory, or lives in no directory."""
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{path}: is a directory, expected an output file")
    if path.exists() and not overwrite:
        raise UsageError(f"{path}: already exists (use -y/--overwrite to replace it)")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise UsageError(f"{path}: output directory {parent} does not exist")


def refuse_same_file(output: Path, *inputs: Path) -> None:
    """Refuse writing `output` when it names the same file as any input (never overwrite an input)."""
    output = Path(output)
    for inp in inputs:
        if inp is None:
            continue
        inp = Path(inp)
        same = False
        if output.exists() and inp.exists():
            with contextlib.suppress(OSError):
                same = os.path.samefile(output, inp)
        if same or output.resolve() == inp.resolve():
            raise UsageError(f"{output}: output is the same file as input {inp}")


@contextlib.contextmanager
def atomic_output(path: Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temp path in the target's directory; move it onto `path` only if the block succeeds.

    The temp name keeps the target's final suffix (".mp4", ".y4m", ...) so muxers that guess the
    format from the name pick the right one. On any exception, KeyboardInterrupt included, the temp
    file is removed and the exception propagates; the target is untouched. SIGTERM and SIGHUP
    raise `Terminated` meanwhile (see `signals_raise`), so they clean up the same way.
    """
    path = Path(path)
    check_output_path(path, overwrite)
    parent = path.parent if str(path.parent) else Path(".")
    with signals_raise():  # from before the temp file exists until it is gone or in place
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=parent)
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            yield tmp
            if not tmp.exists():
                raise FileNotFoundError(f"{tmp}: temp output vanished before it could be moved into place")
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
