"""VideoInfo: what a reader knows about a video before its first frame is used."""

from __future__ import annotations

from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

from gsvc_cli.video.pixfmt import PixFmt, get_pix_fmt

COLOR_MATRICES = ("bt601", "bt709", "bt2020")
COLOR_RANGES = ("limited", "full")  # the words of the .gsvc header (FileHeader.colour_range)


def default_color_matrix(width: int, height: int) -> str:
    """ffmpeg's convention when a file does not say: BT.709 for HD (above 576 lines), else BT.601."""
    return "bt709" if height > 576 or width > 1024 else "bt601"


@dataclass(frozen=True)
class VideoInfo:
    """Size, rate and colour description of a video.

    width/height: luma size in pixels. fps: exact frames per second (30000/1001 stays exact).
    pix_fmt: ffmpeg name ("yuv420p", "yuv444p", "yuv420p10le", "rgb24", ...).
    color_matrix: "bt601" / "bt709" / "bt2020"; color_range: "limited" (TV, 16-235) or "full" (PC, 0-255).
    frame_count: frames the reader will yield after --start/--frames, None when unknown.
    """

    width: int
    height: int
    fps: Fraction
    pix_fmt: str = "yuv420p"
    color_matrix: str = ""
    color_range: str = "limited"
    frame_count: int | None = None
    path: Path | None = None

    def __post_init__(self) -> None:
        if not self.color_matrix:
            object.__setattr__(self, "color_matrix", default_color_matrix(self.width, self.height))
        if not isinstance(self.fps, Fraction):
            object.__setattr__(self, "fps", Fraction(self.fps))

    @property
    def fmt(self) -> PixFmt:
        """The PixFmt layout of `pix_fmt`."""
        return get_pix_fmt(self.pix_fmt)

    def with_(self, **changes) -> VideoInfo:
        """A copy with some fields changed (e.g. path or pix_fmt for an output)."""
        return replace(self, **changes)
