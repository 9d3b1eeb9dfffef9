"""Motion for M-frames: block vectors chosen by D + lambda R, in whole pixels, then quarter pixels.

An M-frame is nothing but its field, so the field's bits are the frame's bits: the vector of least
error is not the best one when a neighbour's vector, which codes for almost nothing, explains the
block nearly as well (x264's motion search weighs a vector's bits the same way). Each block picks,
among the candidates searched, the vector of least luma error (weighted as the fitting space
weighs luma) plus lambda times its estimated bits as the field coder will code it: the difference
from its left neighbour (from the one above in the first column). Columns are chosen left to
right, all rows of a column at once, so a vector's predictor is already decided.

Frames up to motion.SEARCH_PIXELS are searched over every whole-pixel vector within RADIUS, and
(with `far`) also within REFINE_RADIUS of the vector a search on the frame downscaled FAR_SCALE
times finds (motion up to FAR_SCALE x RADIUS pixels: the Kodak pan moves 8 pixels a frame, beyond
RADIUS, and a field clipped at 7 cost it half its bits); larger frames are searched around the
vector of the downscaled block search (motion.block_motion) alone, within REFINE_RADIUS at full
resolution. `quarter_refine` then refines a whole-pixel field by half and
quarter pixels (as x264's subpixel refinement does), reading through the decoder's own filter
(moved_picture.move_picture: the cubic, or the 8-tap filter), so the errors it weighs are the ones
the M-frame will have. The per-cell sums and the choice run in native kernels (render.capi:
window_errors, quarter_errors, choose_vectors, window_sums), which sum in their own order, so a
near-tie may fall the other way than a plain sum would decide it.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, replace

import numpy as np
import torch

from gsvc_cli.codec.bitstream.motion_vectors import (
    MotionVectors,
    flag_contexts,
    median_predictor,
    neighbour_predictor,
)
from gsvc_cli.codec.encoder.motion import SEARCH_PIXELS, MotionField, block_motion, search_scale
from gsvc_cli.codec.moved_picture import move_picture
from gsvc_cli.render.capi import choose_vectors, quarter_errors, window_errors, window_sums

RADIUS = 7  # pixels searched around zero on frames up to SEARCH_PIXELS
REFINE_RADIUS = 2  # pixels searched around the downscaled search's vector
FAR_SCALE = 4  # small frames' far search runs on the frame downscaled this many times
FAR_SCALE_LARGE = 2  # large frames' far search: downscaled this many times block_motion's search_scale
QUARTER_STEPS = (2, 1)  # the half-pixel, then the quarter-pixel ring (in quarter pixels)


@dataclass(frozen=True)
class VectorCosts:
    """What a vector's residual costs beyond its components' codes: zero_bits for (0, 0),
    moving_bits for any other. The defaults are the 6.0 coding (a zero residual is two zero
    components, 1 bit each); `flagged` prices kind 5's zero flag from the share of zero residuals
    the last field had (a flag of probability p costs -log2 p). median: the block searches price a
    moving vector's components from the median of its left, upper and upper-right neighbours, as
    format 12.0's flagged fields code them (RDTuning.median_search). cell_bits: for a field on the
    last coded field's grid, each cell's ([gh, gw] float32) bits of a zero flag and of a moving one,
    by its bucket of that field's moving cells, as format 13.0 codes such a field's flags split
    (`flagged`; fields of other grids: zero_bits and moving_bits)."""

    zero_bits: float = 2.0
    moving_bits: float = 0.0
    median: bool = False
    cell_bits: tuple[np.ndarray, np.ndarray] | None = dataclasses.field(default=None, compare=False)

    @staticmethod
    def flagged(zero_share: float, median: bool = False, moving: np.ndarray | None = None,
                bucket_zero_share: tuple[float, ...] = ()) -> VectorCosts:
        """Flags priced from the last field's share of zeros; with its moving cells ([gh, gw] bool)
        and the share of zeros in each flag_contexts bucket, per cell by its bucket (shares clipped
        to [0.02, 0.98])."""
        share = min(0.95, max(0.05, zero_share))
        cell_bits = None
        if moving is not None and bucket_zero_share:
            shares = np.clip(np.asarray(bucket_zero_share, dtype=np.float64), 0.02, 0.98)
            bucket = flag_contexts(moving).reshape(moving.shape)
            cell_bits = ((-np.log2(shares)[bucket]).astype(np.float32),
                         (-np.log2(1.0 - shares)[bucket]).astype(np.float32))
        return VectorCosts(-math.log2(share), -math.log2(1.0 - share), median, cell_bits)

    def prices(self, gh: int, gw: int) -> tuple[np.ndarray, np.ndarray]:
        """([gh, gw] float32 bits of a zero flag, of a moving one) for a field of that grid."""
        if self.cell_bits is not None and self.cell_bits[0].shape == (gh, gw):
            return self.cell_bits
        return (np.full((gh, gw), self.zero_bits, dtype=np.float32),
                np.full((gh, gw), self.moving_bits, dtype=np.float32))


def vector_bits(residual: torch.Tensor, costs: VectorCosts = VectorCosts()) -> torch.Tensor:
    """Estimated bits of residual vectors [..., 2]: per component 1 + 2 log2(1 + |r|) (an
    Elias-gamma-like code; the field coder's models do about as well on fields of a few hundred
    cells), plus `costs`' flag; (0, 0) costs costs.zero_bits alone."""
    components = component_bits(residual)
    zero = (residual == 0).all(-1)
    if residual.dim() < 3:  # not a field: the flags' prices of no grid
        return torch.where(zero, torch.full_like(components, costs.zero_bits), components + costs.moving_bits)
    zero_bits, moving_bits = (torch.from_numpy(p) for p in costs.prices(*residual.shape[-3:-1]))
    return torch.where(zero, zero_bits.to(components.dtype), components + moving_bits)


def component_bits(residual: torch.Tensor) -> torch.Tensor:
    """The components' share of vector_bits: the sum over [..., 2] of 1 + 2 log2(1 + |r|)."""
    return (1.0 + 2.0 * torch.log2(1.0 + residual.abs())).sum(-1)


def picture_motion(reference: torch.Tensor, image: torch.Tensor, cell: int, lam: float,
                   luma_weight: float, coarse: MotionField | None = None,
                   costs: VectorCosts = VectorCosts(), far: bool = False) -> torch.Tensor:
    """Vectors [gh, gw, 2] int64 (x, y; whole pixels, image(p) ~ reference(p - v)) for the cells of
    `cell` pixels that tile the [H, W] luma planes from the top-left corner. lam: lambda per unit of
    weighted squared error (gop.Encoder's); luma_weight: luma's share of the channel weights.
    coarse: the downscaled block search to refine around (`coarse_field`; made when None) on large
    frames, and on small ones with `far`. far: also refine around a search that reaches further
    (small frames: at 1/FAR_SCALE size; large: FAR_SCALE_LARGE times as downscaled as `coarse`).
    costs: how the field coder prices a residual (VectorCosts)."""
    height, width = image.shape
    gh, gw = -(-height // cell), -(-width // cell)

    def around_coarse(scale: int | None, fresh: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Errors [K, gh, gw] and candidates [K, gh, gw, 2] within REFINE_RADIUS of the coarse field
        (`coarse`, unless `fresh` or None: a search at 1/scale size)."""
        r = REFINE_RADIUS
        near = [(dx, dy) for dy in range(-r, r + 1) for dx in range(-r, r + 1)]
        field = coarse if coarse is not None and not fresh else coarse_field(reference, image, scale)
        base = _coarse_vectors(field, cell, gh, gw)
        return (_window_errors(reference, image, cell, base, near),
                base[None] + torch.tensor(near, dtype=torch.int64)[:, None, None, :])

    if height * width <= SEARCH_PIXELS:
        offsets = [(dx, dy) for dy in range(-RADIUS, RADIUS + 1) for dx in range(-RADIUS, RADIUS + 1)]
        errors = _window_errors(reference, image, cell, torch.zeros(gh, gw, 2, dtype=torch.int64), offsets)
        candidates = torch.tensor(offsets, dtype=torch.int64)[:, None, None, :].expand(-1, gh, gw, 2)
        if far:
            far_errors, far_candidates = around_coarse(FAR_SCALE)
            errors = torch.cat([errors, far_errors])
            candidates = torch.cat([candidates, far_candidates])
    else:
        errors, candidates = around_coarse(None)
        if far:  # also around a search on the frame downscaled twice as far (motion beyond RADIUS there)
            far_errors, far_candidates = around_coarse(FAR_SCALE_LARGE * search_scale(height, width), True)
            errors = torch.cat([errors, far_errors])
            candidates = torch.cat([candidates, far_candidates])

    return _choose(errors * luma_weight, candidates, lam, costs, (image, reference, cell, luma_weight))


def quarter_refine(reference: np.ndarray, image: torch.Tensor, cell: int, vectors: torch.Tensor,
                   lam: float, luma_weight: float, neighbours: bool = False,
                   costs: VectorCosts = VectorCosts(), sharp: bool = False) -> torch.Tensor:
    """Quarter-pixel vectors [gh, gw, 2] int64 refined from the whole-pixel `vectors`: each cell
    tries the 8 vectors a half pixel around its own, then the 8 a quarter pixel around the result,
    by D + lam R as picture_motion chooses. reference: the previous picture's luma [1, H, W]
    (numpy float32); image: this frame's luma [H, W]. neighbours: each cell also tries its left
    and upper neighbours' vectors of the stage before (a residual of zero costs least). sharp:
    read through the 8-tap filter (moved_picture.SHARP_TAPS), else the cubic."""
    field = vectors * 4
    for step in QUARTER_STEPS:
        offsets = torch.tensor([(dx, dy) for dy in (-step, 0, step) for dx in (-step, 0, step)])
        candidates = field[None] + offsets[:, None, None, :]
        if neighbours:
            left = torch.cat([field[:, :1], field[:, :-1]], dim=1)
            above = torch.cat([field[:1], field[:-1]], dim=0)
            candidates = torch.cat([candidates, left[None], above[None]])
        errors = torch.from_numpy(quarter_errors(image.numpy(), reference[0], cell, candidates.numpy(),
                                                 sharp))
        field = _choose(errors * luma_weight, candidates, lam, costs)
    return field


def refine_field(reference: np.ndarray, image: np.ndarray, motion: MotionVectors, lam: float,
                 channel_weights: np.ndarray, costs: VectorCosts = VectorCosts(), passes: int = 2
                 ) -> MotionVectors:
    """The field `motion` polished by D + lam R over the whole picture as the M-frame will have
    it (overlapped or not, every channel weighted as J weighs it): cells of one colour of a
    checkerboard at a time, each trying its four neighbours' vectors and one step (a quarter or a
    whole pixel, as the field's unit) in each direction. The search above chooses each vector
    before the vectors right of it and below it exist, so it cannot see that a vector also sets
    its right neighbour's (and in the first column, its lower neighbour's) residual, nor that
    overlapped cells blend across edges; here the other colour is fixed, so both are exact under
    the bit model (vector_bits; with costs.median an estimate, as the median's upper-right input
    has a cell's own colour). reference, image: [C, H, W] float32; channel_weights: [C], sum 1."""
    vectors = motion.vectors.copy()
    gh, gw = vectors.shape[:2]
    rows, cols = np.mgrid[0:gh, 0:gw]
    reach = max(1, motion.cell // 8) if motion.overlapped else 0  # pixels a cell's vector reaches past it
    steps = [np.array(d) for d in ((1, 0), (-1, 0), (0, 1), (0, -1))]
    weights = np.asarray(channel_weights, dtype=np.float32)
    for _ in range(passes):
        for parity in (0, 1):
            mine = ((rows + cols) % 2 == parity)[..., None]

            neighbours = [vectors[np.clip(rows + dy, 0, gh - 1), np.clip(cols + dx, 0, gw - 1)]
                          for dy, dx in ((0, -1), (-1, 0), (0, 1), (1, 0))]
            best_cost: np.ndarray | None = None
            best = vectors
            for option in [vectors, *neighbours, *(vectors + d for d in steps)]:
                field = np.where(mine, option, vectors)
                try:
                    trial = replace(motion, vectors=np.ascontiguousarray(field))
                except ValueError:  # a step past the largest vector
                    continue
                cost = (window_sums(move_picture(reference, trial), image, weights, motion.cell, reach)
                        + lam * field_bits_by_cell(field, costs))
                if best_cost is None:
                    best_cost, best = cost, field
                else:
                    better = cost < best_cost
                    best_cost = np.where(better, cost, best_cost)
                    best = np.where(better[..., None], field, best)
            vectors = np.where(mine, best, vectors)
    return replace(motion, vectors=np.ascontiguousarray(vectors))


def field_bits_by_cell(field: np.ndarray, costs: VectorCosts) -> np.ndarray:
    """[gh, gw]: the estimated bits that depend on each cell's vector: its own residual and those
    of the cells that predict from it. From the left neighbour (in the first column from the one
    above): the right cell's (in the first column also the lower one's). With costs.median, as
    format 12.0 codes a moving cell: also the lower and lower-left cells' (the median's upper and
    upper-right inputs); the lower-left cell is of this cell's colour in refine_field's
    checkerboard, so there its bits are those of both trial vectors together (an estimate)."""
    predictor = neighbour_predictor(field)
    if costs.median and field.shape[0] > 1 and field.shape[1] > 1:
        moving = torch.from_numpy((field != predictor).any(-1))
        components = component_bits(torch.from_numpy((field - median_predictor(field)).astype(np.float32)))
        zero_bits, moving_bits = (torch.from_numpy(p) for p in costs.prices(*field.shape[:2]))
        own = torch.where(moving, components + moving_bits, zero_bits.to(components.dtype)).numpy()
    else:
        own = vector_bits(torch.from_numpy((field - predictor).astype(np.float32)), costs).numpy()
    bits = own.astype(np.float64)
    bits[:, :-1] += own[:, 1:]
    if costs.median:
        bits[:-1, :] += own[1:, :]
        bits[:-1, 1:] += own[1:, :-1]
    else:
        bits[:-1, 0] += own[1:, 0]
    return bits


def coarse_field(reference: torch.Tensor, image: torch.Tensor, scale: int | None = None) -> MotionField:
    """The downscaled block search cells refine around (one per frame, any cell); scale: the
    downscale factor (else block_motion's, which leaves frames up to SEARCH_PIXELS whole)."""
    return block_motion(reference, image, 16, scale=scale)


def _coarse_vectors(field: MotionField, cell: int, gh: int, gw: int) -> torch.Tensor:
    """The coarse field's vectors, rounded, at the centre of each cell."""
    centres_y = ((torch.arange(gh) * cell + cell // 2) // field.spacing).clamp(max=field.vectors.shape[0] - 1)
    centres_x = ((torch.arange(gw) * cell + cell // 2) // field.spacing).clamp(max=field.vectors.shape[1] - 1)
    return torch.round(field.vectors[centres_y][:, centres_x]).to(torch.int64)


def _window_errors(reference: torch.Tensor, image: torch.Tensor, cell: int, base: torch.Tensor,
                   offsets: list[tuple[int, int]]) -> torch.Tensor:
    """Squared error sums [K, gh, gw] of each cell moved by base + offset_k (reads clamped to the
    frame; the native kernel, render.capi.window_errors)."""
    errors = window_errors(image.numpy(), reference.numpy(), cell, base.numpy(),
                           np.array(offsets, dtype=np.int64))
    return torch.from_numpy(errors)


def _choose(errors: torch.Tensor, candidates: torch.Tensor, lam: float, costs: VectorCosts,
            own: tuple[torch.Tensor, torch.Tensor, int, float] | None = None) -> torch.Tensor:
    """Per cell, the candidate of least error + lam * bits (vector_bits of its residual from the
    left neighbour's choice), left to right (first column top down; render.capi.choose_vectors).
    With `own` (image and reference luma, the cell size, luma's weight), each cell also tries its
    predictor's own vector (x264 tries the predicted vector first), so a field can stay rigid
    across motion beyond the searched window."""
    arrays = None if own is None else (own[0].numpy(), own[1].numpy(), own[2], own[3])
    zero_bits, moving_bits = costs.prices(*errors.shape[-2:])
    return torch.from_numpy(choose_vectors(errors.numpy(), candidates.numpy(), lam, zero_bits, moving_bits,
                                           arrays, costs.median))


def luma_share(channel_weights: tuple[float, float, float]) -> float:
    """Luma's share of the fitting space's channel weights (6:1:1 -> 0.75)."""
    total = math.fsum(channel_weights)
    return channel_weights[0] / total
