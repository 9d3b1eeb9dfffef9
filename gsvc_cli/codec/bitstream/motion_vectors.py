"""The motion field a P-frame carries, and the centre prediction both ends compute from it.

A P-frame's survivors are coded as differences from a *prediction*: the previous centre moved by
the motion at that centre. Splats that only follow the motion then cost nothing for their centres,
as a block in a classic codec costs nothing beyond its motion vector. The field is a grid of
integer vectors (in centre-quantiser units) at the centres of square cells of `cell` units; a
splat's vector is the bilinear interpolation of the four nearest, in integer arithmetic (exact on
every machine). A 1x1 grid is one global shift. FORMAT.md, "P-frame motion field", is the contract.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_CELLS = 1 << 16
"""Most vectors a field may hold (bounds a decoder's memory)."""
MAX_CELL = 1 << 16
"""Largest cell side in centre-quantiser units (keeps the interpolation inside int64)."""
MAX_VECTOR = 1 << 16
"""Largest |vector component| in centre-quantiser units."""


@dataclass(frozen=True)
class MotionVectors:
    """vectors [gh, gw, 2] int64 (x, y) at the centres of cells of `cell` units, from the origin.
    per_pixel: vector units per pixel of an M-frame's field (1: whole pixels, 4: quarter pixels);
    a P-frame's field is always 1 (its units are the centre quantiser's). overlapped: an M-frame's
    cells blend into their neighbours' at their borders (payload kind 6, gsvc_cli.codec.moved_picture).
    sharp: an M-frame's quarter-pixel reads go through the 8-tap filter, not the cubic (format 9.0,
    kinds 5 and 6 only).
    """

    vectors: np.ndarray
    cell: int
    per_pixel: int = 1
    overlapped: bool = False
    sharp: bool = False

    def __post_init__(self) -> None:
        v = self.vectors
        if v.ndim != 3 or v.shape[2] != 2 or v.shape[0] < 1 or v.shape[1] < 1:
            raise ValueError(f"motion vectors must be [gh, gw, 2], got {v.shape}")
        if v.shape[0] * v.shape[1] > MAX_CELLS or not 1 <= self.cell <= MAX_CELL:
            raise ValueError(f"motion field out of range: {v.shape[1]}x{v.shape[0]} cells of {self.cell}")
        if int(np.abs(v).max()) > MAX_VECTOR:
            raise ValueError("motion vector out of range")
        if self.per_pixel not in (1, 4):
            raise ValueError(f"vectors in 1/{self.per_pixel} pixels: only whole and quarter pixels exist")
        if self.sharp and self.per_pixel != 4:
            raise ValueError("the 8-tap filter reads quarter-pixel vectors only")

    @staticmethod
    def shift(dx: int, dy: int) -> MotionVectors:
        """One vector for every splat (a global shift)."""
        return MotionVectors(np.array([[[dx, dy]]], dtype=np.int64), 1)

    def is_zero(self) -> bool:
        return not self.vectors.any()

    def at(self, means: np.ndarray) -> np.ndarray:
        """The vector [N, 2] int64 at integer centres `means` [N, 2] (x, y): bilinear between cell
        centres, clamped at the borders, rounded half up: floor((sum w_ij v_ij + D^2/2) / D^2) with
        D = 2 * cell and weights in units of 1/D along each axis."""
        means = np.asarray(means, dtype=np.int64).reshape(-1, 2)
        gh, gw, _ = self.vectors.shape
        d = 2 * self.cell

        def axis(coord: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
            num = 2 * np.clip(coord, -(1 << 31), 1 << 31) - self.cell  # 2 * (coord - centre of cell 0)
            low = np.floor_divide(num, d)
            frac = num - low * d  # in [0, d)
            return np.clip(low, 0, size - 1), np.clip(low + 1, 0, size - 1), d - frac, frac

        x0, x1, wx0, wx1 = axis(means[:, 0], gw)
        y0, y1, wy0, wy1 = axis(means[:, 1], gh)
        v = self.vectors
        acc = (wy0[:, None] * (wx0[:, None] * v[y0, x0] + wx1[:, None] * v[y0, x1])
               + wy1[:, None] * (wx0[:, None] * v[y1, x0] + wx1[:, None] * v[y1, x1]))
        return np.floor_divide(acc + d * d // 2, d * d)

    def predict(self, values: np.ndarray) -> np.ndarray:
        """[N, 8] splat integers with their centres (columns 0, 1) moved by the field."""
        out = np.array(values, dtype=np.int64, copy=True)
        if len(out):
            out[:, 0:2] += self.at(out[:, 0:2])
        return out

    def residuals(self) -> tuple[np.ndarray, np.ndarray]:
        """What is coded: each component minus its left neighbour (the one above in column 0;
        zero for the first), in raster order."""
        return tuple(_neighbour_residuals(self.vectors[:, :, c]) for c in (0, 1))  # type: ignore[return-value]

    @staticmethod
    def from_residuals(rx: np.ndarray, ry: np.ndarray, gw: int, gh: int, cell: int,
                       per_pixel: int = 1, overlapped: bool = False, sharp: bool = False) -> MotionVectors:
        """Inverse of `residuals`."""
        planes = [_undo_residuals(r.reshape(gh, gw)) for r in (rx, ry)]
        return MotionVectors(np.stack(planes, axis=-1), cell, per_pixel, overlapped, sharp)


def median_residuals(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A flagged field's coding with median prediction (FORMAT.md "Flagged field", unit + 32):
    (moving [gh * gw] bool, residuals [K, 2] int64). A cell moves where its vector differs from its
    neighbour predictor (left; in column 0 the one above; zero for the first cell); a moving cell
    off the first row and column is coded against the per-component median of its left, upper and
    upper-right neighbours (the upper one in the last column), the others against the neighbour
    predictor. Vectors start new runs where the motion changes, and the rows above know those
    changes better than the left neighbour alone (H.264 predicts its vectors so)."""
    moving = moving_cells(vectors).reshape(-1)
    return moving, (vectors - median_predictor(vectors)).reshape(-1, 2)[moving]


def moving_cells(vectors: np.ndarray) -> np.ndarray:
    """[gh, gw] bool: the cells of a [gh, gw, 2] field whose vector differs from its neighbour
    predictor (those a flagged field codes with a zero flag of 0)."""
    return (vectors != neighbour_predictor(vectors)).any(-1)


FLAG_CONTEXTS = 6
"""Buckets of a flagged field's zero flags split by the last field's moving cells (format 13.0)."""


def flag_contexts(previous: np.ndarray) -> np.ndarray:
    """[gh * gw] int64 in [0, FLAG_CONTEXTS): for each cell, how many of it and its four
    neighbours moved in the previous M-frame's field `previous` ([gh, gw] bool, moving_cells).
    Where a field changes, the next one mostly changes too, and the decoder knows the last field
    before it reads this one (FORMAT.md "Flagged field")."""
    moved = np.pad(previous.astype(np.int64), 1)
    around = moved[1:-1, 1:-1] + moved[:-2, 1:-1] + moved[2:, 1:-1] + moved[1:-1, :-2] + moved[1:-1, 2:]
    return around.reshape(-1)


def median_predictor(vectors: np.ndarray) -> np.ndarray:
    """What each moving cell of a [gh, gw, 2] field is coded against under format 12.0: the
    per-component median of its left, upper and upper-right neighbours (the upper one in the last
    column); in the first row and column its neighbour predictor."""
    predictor = neighbour_predictor(vectors)
    if vectors.shape[0] > 1 and vectors.shape[1] > 1:
        predictor[1:, 1:] = median3(vectors[1:, :-1], vectors[:-1, 1:],
                                     np.concatenate([vectors[:-1, 2:], vectors[:-1, -1:]], axis=1))
    return predictor


def median3(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """The elementwise median of three integer arrays (FORMAT.md's med)."""
    return np.maximum(np.minimum(a, b), np.minimum(np.maximum(a, b), c))


def undo_median_residuals(moving: np.ndarray, residuals: np.ndarray, gh: int, gw: int) -> np.ndarray:
    """Vectors [gh, gw, 2] int64 from `median_residuals`' output (moving [gh * gw] bool, residuals
    [K, 2] of the K moving cells in raster order). Serial (each median needs the vector left of
    it): through the C library when it builds (render.capi.median_field), else in Python; the
    same integers either way."""
    full = np.zeros((gh * gw, 2), dtype=np.int64)
    full[moving] = residuals
    flags = moving.astype(np.uint8)
    from gsvc_cli.render.capi import median_field
    from gsvc_cli.render.capi_build import KernelBuildError

    try:
        return median_field(full.reshape(gh, gw, 2), flags.reshape(gh, gw))
    except KernelBuildError:
        return undo_median_reference(full.reshape(gh, gw, 2), flags.reshape(gh, gw))


def undo_median_reference(residuals: np.ndarray, moving: np.ndarray) -> np.ndarray:
    """undo_median_residuals one cell at a time in Python (the fallback, and the tests' yardstick):
    residuals [gh, gw, 2] (zero where a cell does not move), moving [gh, gw]."""
    gh, gw = moving.shape
    res = residuals.tolist()
    out = [[[0, 0] for _ in range(gw)] for _ in range(gh)]
    for r in range(gh):
        for c in range(gw):
            for k in (0, 1):
                if c == 0:
                    p = out[r - 1][0][k] if r else 0
                elif r == 0 or not moving[r, c]:
                    p = out[r][c - 1][k]
                else:
                    a, b = out[r][c - 1][k], out[r - 1][c][k]
                    d = out[r - 1][min(c + 1, gw - 1)][k]
                    p = max(min(a, b), min(max(a, b), d))
                out[r][c][k] = p + (res[r][c][k] if moving[r, c] else 0)
    return np.array(out, dtype=np.int64).reshape(gh, gw, 2)


def neighbour_predictor(grid: np.ndarray) -> np.ndarray:
    """Each cell's neighbour predictor on a [gh, gw, ...] grid: its left neighbour, in column 0 the
    one above, zero for the first cell."""
    pred = np.zeros_like(grid)
    pred[:, 1:] = grid[:, :-1]
    pred[1:, 0] = grid[:-1, 0]
    return pred


def _neighbour_residuals(plane: np.ndarray) -> np.ndarray:
    return (plane - neighbour_predictor(plane)).reshape(-1)


def _undo_residuals(residuals: np.ndarray) -> np.ndarray:
    out = residuals.astype(np.int64).copy()
    out[:, 0] = np.cumsum(out[:, 0])
    return np.cumsum(out, axis=1)
