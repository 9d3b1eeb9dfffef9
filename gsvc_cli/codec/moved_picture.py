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

from collections.abc import Callable
from dataclasses import replace

import numpy as np

from gsvc_cli.codec.bitstream.motion_vectors import MotionVectors
from gsvc_cli.errors import FormatError

QUARTER_TAPS = np.array([[0, 128, 0, 0], [-9, 111, 29, -3], [-8, 72, 72, -8], [-3, 29, 111, -9]],
                        dtype=np.float32) / np.float32(128)
"""Weights of pixels i - 1 .. i + 2 for a read at i + f/4, f = 0..3 (the Keys cubic, exact in
float32; FORMAT.md "M-frame")."""

SHARP_TAPS = np.array([[0, 0, 0, 64, 0, 0, 0, 0], [-1, 4, -10, 58, 17, -5, 1, 0],
                       [-1, 4, -11, 40, 40, -11, 4, -1], [0, 1, -5, 17, 58, -10, 4, -1]],
                      dtype=np.float32) / np.float32(64)
"""Weights of pixels i - 3 .. i + 4 for a read at i + f/4 through the 8-tap filter (HEVC's luma
interpolation filter, exact in float32): sharper than the cubic, so a chain of M-frames over fine
detail keeps it (measured on mobile: +1.4 dB after 5 chained moves; foreman's noisier detail
prefers the cubic, so the encoder chooses per frame)."""


def quarter_taps(sharp: bool) -> np.ndarray:
    """The [4, T] tap table of a quarter-pixel field: SHARP_TAPS or QUARTER_TAPS."""
    return SHARP_TAPS if sharp else QUARTER_TAPS


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
    in whole or quarter pixels), coordinates clamped to the frame (edges replicated); with
    motion.overlapped, blended at the cells' borders (`overlap_blend`). Through the C kernel when
    it builds (gsvc_cli.render.capi), else numpy: the same bits either way."""
    _, height, width = picture.shape
    check_grid(motion, width, height, "M-frame")
    from gsvc_cli.render.capi import move_picture as move_native
    from gsvc_cli.render.capi_build import KernelBuildError

    try:
        return move_native(picture, motion.vectors, motion.cell, motion.per_pixel,
                           overlapped=motion.overlapped, sharp=motion.sharp)
    except KernelBuildError:
        return move_picture_numpy(picture, motion)


def move_picture_numpy(picture: np.ndarray, motion: MotionVectors) -> np.ndarray:
    """move_picture without the C kernel."""
    _, height, width = picture.shape
    check_grid(motion, width, height, "M-frame")
    if motion.overlapped:
        return overlap_blend(motion, lambda field: _move_numpy(picture, field))
    return _move_numpy(picture, motion)


def border_weights(cell: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Along one axis of `size` pixels cut into cells of `cell`: each pixel's own weight (float32)
    and the side (-1, 0, +1) of the neighbour cell it blends with. The k = max(1, cell // 8)
    pixels next to a cell's edge (none when cell is 1) blend, the one j pixels in from the edge
    keeping (2k + 2j + 1) / 4k of its own prediction: 3/4 at the edge when k is 1, a ramp from
    near 1/2 to near 1 for larger cells (FORMAT.md, "Overlapped cells")."""
    k = max(1, cell // 8) if cell > 1 else 0
    offset = np.arange(size) % cell
    from_left, from_right = offset, cell - 1 - offset
    side = np.where(from_left < k, -1, np.where(from_right < k, 1, 0))
    j = np.where(side < 0, from_left, from_right)
    own = np.ones(size, dtype=np.float32)
    blend = side != 0
    own[blend] = (np.float32(2 * k + 1) + np.float32(2) * j[blend].astype(np.float32)) / np.float32(4 * k)
    return own, side


def overlap_blend(motion: MotionVectors, move: Callable[[MotionVectors], np.ndarray]) -> np.ndarray:
    """Overlapped cells: a pixel near a cell's border is its own cell's prediction blended with
    the prediction its neighbour's vector gives (edges: the horizontal, the vertical and the
    diagonal neighbour), so a field's block edges do not show as steps that residual splats,
    smooth by nature, cannot fix. move(field) gives the plain moved picture of a field; each
    neighbour's prediction is the plain move of the field shifted by one cell (clamped at the
    frame). One float32 operation at a time in a fixed order: exact on every machine."""
    gh, gw = motion.vectors.shape[:2]
    cell = motion.cell
    plain = replace(motion, overlapped=False)
    own = move(plain)
    _, height, width = own.shape
    wx, side_x = border_weights(cell, width)
    wy, side_y = border_weights(cell, height)
    predictions: dict[tuple[int, int], np.ndarray] = {}

    def shifted(dy: int, dx: int) -> np.ndarray:
        if (dy, dx) not in predictions:
            rows = np.clip(np.arange(gh) + dy, 0, gh - 1)
            cols = np.clip(np.arange(gw) + dx, 0, gw - 1)
            vectors = np.ascontiguousarray(motion.vectors[rows][:, cols])
            same = np.array_equal(vectors, motion.vectors)
            predictions[dy, dx] = own if same else move(replace(plain, vectors=vectors))
        return predictions[dy, dx]

    def by_side(dy_of: np.ndarray, dx_of: np.ndarray) -> np.ndarray:
        """Per pixel, the prediction of the neighbour at (dy_of [H, 1], dx_of [1, W]) cells (own
        where both are 0)."""
        out = own
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                mask = (dy_of == dy) & (dx_of == dx)
                if (dy, dx) != (0, 0) and mask.any():
                    out = np.where(mask[None], shifted(dy, dx), out)
        return out

    rows_side, cols_side = side_y[:, None], side_x[None, :]
    across = by_side(np.zeros_like(rows_side), cols_side)
    down = by_side(rows_side, np.zeros_like(cols_side))
    diagonal = by_side(rows_side, cols_side)
    ax = (np.float32(1) - wx)[None, None, :]  # the neighbours' shares
    ay = (np.float32(1) - wy)[None, :, None]
    top = own + ax * (across - own)  # exactly own where a pixel does not blend or vectors agree
    bottom = down + ax * (diagonal - down)
    return np.clip(top + ay * (bottom - top), 0.0, 1.0).astype(np.float32)


def _move_numpy(picture: np.ndarray, motion: MotionVectors) -> np.ndarray:
    """The plain move (no overlap) in numpy."""
    _, height, width = picture.shape
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
    """move_picture for quarter-pixel vectors: one gather of the (cell + T - 1)^2 window each
    cell's T taps reach (T: 4 for the cubic, 8 for the sharp filter), then the horizontal and the
    vertical filter with each cell's weights, clamped to [0, 1] (both overshoot at edges). Cells
    are the last two axes, so every multiply-add runs over whole planes of cells, not over rows of
    `cell` pixels."""
    channels, height, width = picture.shape
    cell = motion.cell
    gh, gw = motion.vectors.shape[:2]
    taps = quarter_taps(motion.sharp)
    count = taps.shape[1]
    back = -motion.vectors  # reading at p + back / 4
    whole = np.floor_divide(back, 4)
    frac = back - 4 * whole
    steps = np.arange(cell + count - 1)[:, None, None]
    first = count // 2 - 1  # taps before the read position
    top = (np.arange(gh) * cell)[:, None] + whole[..., 1] - first  # [gh, gw]: first tap row of each cell
    left = (np.arange(gw) * cell)[None, :] + whole[..., 0] - first
    rows = np.clip(top + steps, 0, height - 1) * width  # [cell + T - 1, gh, gw]
    cols = np.clip(left + steps, 0, width - 1)
    at = rows[:, None] + cols[None, :]  # [cell + T - 1 (y), cell + T - 1 (x), gh, gw]: flat indices
    flat = picture.reshape(channels, -1)
    window = np.stack([flat[c][at] for c in range(channels)])  # [C, cell + T - 1, cell + T - 1, gh, gw]
    wx = taps[frac[..., 0]].transpose(2, 0, 1)  # [T, gh, gw]
    wy = taps[frac[..., 1]].transpose(2, 0, 1)
    across = wx[0] * window[:, :, 0:cell]
    for tap in range(1, count):
        across += wx[tap] * window[:, :, tap:tap + cell]
    out = wy[0] * across[:, 0:cell]
    for tap in range(1, count):
        out += wy[tap] * across[:, tap:tap + cell]
    out = out.transpose(0, 3, 1, 4, 2).reshape(channels, gh * cell, gw * cell)[:, :height, :width]
    return np.clip(out, 0.0, 1.0)
