"""M-frames: the previous decoded picture moved block by block, no splats (FORMAT.md, "M-frame").

A splat P-frame pays for every splat that must follow the motion; on many frames the previous
*picture*, its blocks copied from where the motion says, explains the next one nearly as well for a
few hundred bits (bench/pixel_prediction.py measured it). Whole-pixel vectors copy; quarter-pixel
vectors read through a 4-tap cubic (Keys, a = -1/2: sharp enough that a chain of moves does not
blur as bilinear reads would). The weights are dyadic and every product and sum is one float32
operation in a fixed order (the C kernel, ext/cpu/capi.cpp, with fused multiply-adds off; numpy
when the kernel cannot be built: the same bits), so the decoder reproduces the encoder's M-frame
bit for bit on any machine. The splat state is left untouched for the next splat P-frame.

numpy and the C library only: the decoder imports this and must not import torch.
"""

from __future__ import annotations

import numpy as np

from gsvc_cli.codec.bitstream.motion_vectors import MotionVectors
from gsvc_cli.errors import FormatError

QUARTER_TAPS = np.array([[0, 128, 0, 0], [-9, 111, 29, -3], [-8, 72, 72, -8], [-3, 29, 111, -9]],
                        dtype=np.float32) / np.float32(128)
"""Weights of pixels i - 1 .. i + 2 for a read at i + f/4, f = 0..3 (the Keys cubic, exact in
float32; FORMAT.md "M-frame")."""


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
    """picture [C, H, W] float32 with each cell's pixels read at p - v (v: the cell's vector (x, y)
    in whole or quarter pixels), coordinates clamped to the frame (edges replicated). Through the C
    kernel when it builds (gsvc_cli.render.capi), else numpy: the same bits either way."""
    _, height, width = picture.shape
    check_grid(motion, width, height, "M-frame")
    from gsvc_cli.render.capi import move_picture as move_native
    from gsvc_cli.render.capi_build import KernelBuildError

    try:
        return move_native(picture, motion.vectors, motion.cell, motion.per_pixel)
    except KernelBuildError:
        return move_picture_numpy(picture, motion)


def move_picture_numpy(picture: np.ndarray, motion: MotionVectors) -> np.ndarray:
    """move_picture without the C kernel."""
    _, height, width = picture.shape
    check_grid(motion, width, height, "M-frame")
    if motion.per_pixel == 4:
        return _move_quarter(picture, motion)
    cell = motion.cell
    vx = np.repeat(motion.vectors[:, :, 0], cell, axis=1)[:, :width]  # [gh, W]
    vy = np.repeat(motion.vectors[:, :, 1], cell, axis=0)[:height]  # [H, gw]
    rows = np.arange(height)[:, None] - np.repeat(vy, cell, axis=1)[:, :width]
    cols = np.arange(width)[None, :] - np.repeat(vx, cell, axis=0)[:height]
    np.clip(rows, 0, height - 1, out=rows)
    np.clip(cols, 0, width - 1, out=cols)
    return picture[:, rows, cols]


def _move_quarter(picture: np.ndarray, motion: MotionVectors) -> np.ndarray:
    """move_picture for quarter-pixel vectors: one gather of the (cell + 3)^2 window each cell's
    taps reach, then the horizontal and the vertical cubic with each cell's weights, clamped to
    [0, 1] (the cubic overshoots at edges). Cells are the last two axes, so every multiply-add runs
    over whole planes of cells, not over rows of `cell` pixels."""
    channels, height, width = picture.shape
    cell = motion.cell
    gh, gw = motion.vectors.shape[:2]
    back = -motion.vectors  # reading at p + back / 4
    whole = np.floor_divide(back, 4)
    frac = back - 4 * whole
    steps = np.arange(cell + 3)[:, None, None]
    top = (np.arange(gh) * cell)[:, None] + whole[..., 1] - 1  # [gh, gw]: first tap row of each cell
    left = (np.arange(gw) * cell)[None, :] + whole[..., 0] - 1
    rows = np.clip(top + steps, 0, height - 1) * width  # [cell + 3, gh, gw]
    cols = np.clip(left + steps, 0, width - 1)
    at = rows[:, None] + cols[None, :]  # [cell + 3 (y), cell + 3 (x), gh, gw]: flat indices
    flat = picture.reshape(channels, -1)
    window = np.stack([flat[c][at] for c in range(channels)])  # [C, cell + 3, cell + 3, gh, gw]
    wx = QUARTER_TAPS[frac[..., 0]].transpose(2, 0, 1)  # [4, gh, gw]
    wy = QUARTER_TAPS[frac[..., 1]].transpose(2, 0, 1)
    across = wx[0] * window[:, :, 0:cell]
    for tap in range(1, 4):
        across += wx[tap] * window[:, :, tap:tap + cell]
    out = wy[0] * across[:, 0:cell]
    for tap in range(1, 4):
        out += wy[tap] * across[:, tap:tap + cell]
    out = out.transpose(0, 3, 1, 4, 2).reshape(channels, gh * cell, gw * cell)[:, :height, :width]
    return np.clip(out, 0.0, 1.0)
