"""VideoInfo: what a reader knows about a video before its first frame is used."""

from __future__ import annotations

from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

from gsvc_cli.video.pixfmt import PixFmt, get_pix_fmt

COLOR_MATRICES = ("bt601", "bt709", "bt2020")
UNSPECIFIED = 2  # H.273 "unspecified" for primaries and transfer characteristics
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
    sar: sample (pixel) aspect ratio, e.g. 128/117 for foreman's CIF; None when the file does not
    say (Y4M A0:0). Carried through .gsvc so a decoded video displays with the source's shape.
    color_primaries / color_trc: ITU-T H.273 code points the source was tagged with (1 = BT.709,
    6 = SMPTE 170M, ...); 2 (unspecified) when it did not say, and writers then derive them from
    the matrix. They only describe the video: no conversion depends on them.
    """

    width: int
    height: int
    fps: Fraction
    pix_fmt: str = "yuv420p"
    color_matrix: str = ""
    color_range: str = "limited"
    frame_count: int | None = None
    path: Path | None = None
    sar: Fraction | None = None
    color_primaries: int = UNSPECIFIED
    color_trc: int = UNSPECIFIED

    def __post_init__(self) -> None:
        if not self.color_matrix:
            object.__setattr__(self, "color_matrix", default_color_matrix(self.width, self.height))
        if not isinstance(self.fps, Fraction):
            object.__setattr__(self, "fps", Fraction(self.fps))
        if self.sar is not None and not isinstance(self.sar, Fraction):
            object.__setattr__(self, "sar", Fraction(self.sar))

    @property
    def fmt(self) -> PixFmt:
        """The PixFmt layout of `pix_fmt`."""
        return get_pix_fmt(self.pix_fmt)

    def with_(self, **changes) -> VideoInfo:
        """A copy with some fields changed (e.g. path or pix_fmt for an output)."""
        return replace(self, **changes)

    def description_params(self) -> dict[str, str]:
        """The .gsvc coding parameters that carry what the fixed header cannot: the sample aspect
        ratio and the source's colour primaries / transfer (docs/FORMAT.md); only what is known."""
        params: dict[str, str] = {}
        if self.sar is not None:
            params["sar"] = format_sar(self.sar)
        if self.color_primaries != UNSPECIFIED:
            params["colour_primaries"] = str(self.color_primaries)
        if self.color_trc != UNSPECIFIED:
            params["transfer_characteristics"] = str(self.color_trc)
        return params

    def with_description_params(self, params: dict[str, str]) -> VideoInfo:
        """Inverse of description_params: this info with what a .gsvc header's params say."""
        def code(key: str) -> int:
            value = params.get(key, "")
            return int(value) if value.isdigit() and 0 < int(value) < 256 else UNSPECIFIED

        return replace(self, sar=parse_sar(params.get("sar")), color_primaries=code("colour_primaries"),
                       color_trc=code("transfer_characteristics"))


def parse_sar(text: str | None) -> Fraction | None:
    """'128:117' (Y4M and .gsvc spelling) -> Fraction(128, 117); '0:0', '' or a bad value -> None."""
    if not text:
        return None
    try:
        num, den = (int(v) for v in text.replace("/", ":").split(":"))
    except ValueError:
        return None
    return Fraction(num, den) if num > 0 and den > 0 else None


def format_sar(sar: Fraction | None) -> str:
    """Fraction(128, 117) -> '128:117'; None -> '0:0' (Y4M's "unknown")."""
    return "0:0" if sar is None else f"{sar.numerator}:{sar.denominator}"
