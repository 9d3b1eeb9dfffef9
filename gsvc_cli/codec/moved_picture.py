"""M-frames: the previous decoded picture moved block by block, no splats (FORMAT.md, "M-frame").

A splat P-frame pays for every splat that must follow the motion; on many frames the previous
*picture*, its blocks copied from where the motion says, explains the next one nearly as well for a
few hundred bits (bench/pixel_prediction.py measured it). The copy is whole pixels from the float
picture both ends already hold, so it is exact: the decoder reproduces the encoder's M-frame bit
for bit. The splat state is left untouched for the next splat P-frame.

numpy only: the decoder imports this and must not import torch.
"""

from __future__ import annotations

import numpy as np

from gsvc_cli.codec.bitstream.motion_vectors import MotionVectors
from gsvc_cli.errors import FormatError

PICTURE_CELLS = (8, 16, 32)
"""Block sizes (pixels) the encoder tries for an M-frame's field; the decoder accepts any size."""


def grid_shape(width: int, height: int, cell: int) -> tuple[int, int]:
    """(gh, gw): cells of `cell` pixels that cover the frame from its top-left corner."""
    return -(-height // cell), -(-width // cell)


def check_grid(motion: MotionVectors, width: int, height: int, what: str) -> None:
    """An M-frame's field must cover the frame exactly (FormatError otherwise)."""
    gh, gw = motion.vectors.shape[:2]
    if (gh, gw) != grid_shape(width, height, motion.cell):
        raise FormatError(f"{what}: M-frame field of {gw}x{gh} cells of {motion.cell} pixels does not "
                          f"cover a {width}x{height} frame")


def move_picture(picture: np.ndarray, motion: MotionVectors) -> np.ndarray:
    """picture [C, H, W] with each cell's pixels read at p - v (v: the cell's whole-pixel vector
    (x, y)), coordinates clamped to the frame (edges replicated)."""
    _, height, width = picture.shape
    check_grid(motion, width, height, "M-frame")
    cell = motion.cell
    vx = np.repeat(motion.vectors[:, :, 0], cell, axis=1)[:, :width]  # [gh, W]
    vy = np.repeat(motion.vectors[:, :, 1], cell, axis=0)[:height]  # [H, gw]
    rows = np.arange(height)[:, None] - np.repeat(vy, cell, axis=1)[:, :width]
    cols = np.arange(width)[None, :] - np.repeat(vx, cell, axis=0)[:height]
    np.clip(rows, 0, height - 1, out=rows)
    np.clip(cols, 0, width - 1, out=cols)
    return picture[:, rows, cols]
