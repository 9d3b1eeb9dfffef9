"""Progress reporting from the core to whoever is listening (the CLI draws it with rich).

The core never prints. Long operations take an optional `progress` callback and call it with a
`ProgressEvent`; passing None means nobody is listening.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ProgressEvent:
    """One step of a long operation.

    stage: what is running ("encode", "decode", "eval", "fit", ...).
    done/total: units finished so far and the total (None when unknown).
    info: free-form figures for display, e.g. {"type": "P", "psnr": 34.2, "bpp": 0.41}.
    """

    stage: str
    done: int
    total: int | None = None
    info: dict[str, Any] = field(default_factory=dict)


ProgressCallback = Callable[[ProgressEvent], None]


def report(callback: ProgressCallback | None, stage: str, done: int, total: int | None = None,
           **info: Any) -> None:
    """Send an event if someone listens; a no-op otherwise."""
    if callback is not None:
        callback(ProgressEvent(stage, done, total, dict(info)))
