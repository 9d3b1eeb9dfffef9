"""The pixel formats gsvc reads and writes, and how their planes are laid out in memory.

Only planar layouts are used inside gsvc (plus packed rgb24 for images); anything else PyAV
decodes is converted to the nearest of these on the way in.
"""

from __future__ import annotations

from dataclasses import dataclass

from gsvc_cli.errors import UsageError


@dataclass(frozen=True)
class PixFmt:
    """Layout of one pixel format.

    name: ffmpeg's name. bits: bits per sample (8 or 10). planes: 1 (gray, rgb24) or 3 (Y, U, V).
    shift_x/shift_y: chroma subsampling as log2 factors (4:2:0 is 1/1, 4:4:4 is 0/0).
    rgb: packed RGB (one [H, W, 3] plane) instead of YUV.
    """

    name: str
    bits: int
    planes: int
    shift_x: int = 0
    shift_y: int = 0
    rgb: bool = False

    @property
    def dtype(self) -> str:
        """numpy dtype of one sample: uint8, or little-endian uint16 for >8 bits."""
        return "uint8" if self.bits <= 8 else "<u2"

    @property
    def bytes_per_sample(self) -> int:
        return 1 if self.bits <= 8 else 2

    @property
    def peak(self) -> int:
        """Largest code value (255 for 8-bit, 1023 for 10-bit): the PSNR peak."""
        return (1 << self.bits) - 1

    def plane_shapes(self, width: int, height: int) -> list[tuple[int, ...]]:
        """Array shape of every plane for a frame of width x height (odd sizes round chroma up)."""
        if self.rgb:
            return [(height, width, 3)]
        shapes: list[tuple[int, ...]] = [(height, width)]
        if self.planes == 3:
            cw = -(-width // (1 << self.shift_x))
            ch = -(-height // (1 << self.shift_y))
            shapes += [(ch, cw), (ch, cw)]
        return shapes

    def frame_bytes(self, width: int, height: int) -> int:
        """Bytes of one frame in raw planar form (.yuv, Y4M payload)."""
        total = 0
        for shape in self.plane_shapes(width, height):
            n = 1
            for s in shape:
                n *= s
            total += n
        return total * self.bytes_per_sample


PIX_FMTS: dict[str, PixFmt] = {
    f.name: f
    for f in (
        PixFmt("yuv420p", 8, 3, 1, 1),
        PixFmt("yuv422p", 8, 3, 1, 0),
        PixFmt("yuv444p", 8, 3, 0, 0),
        PixFmt("yuv420p10le", 10, 3, 1, 1),
        PixFmt("yuv422p10le", 10, 3, 1, 0),
        PixFmt("yuv444p10le", 10, 3, 0, 0),
        PixFmt("gray", 8, 1),
        PixFmt("gray10le", 10, 1),
        PixFmt("rgb24", 8, 1, rgb=True),
    )
}


def get_pix_fmt(name: str, *, where: str = "--pix-fmt") -> PixFmt:
    """Look up a supported pixel format; a UsageError lists the supported ones otherwise."""
    try:
        return PIX_FMTS[name]
    except KeyError:
        raise UsageError(
            f"{where}: unsupported pixel format {name!r} (supported: {', '.join(PIX_FMTS)})"
        ) from None
